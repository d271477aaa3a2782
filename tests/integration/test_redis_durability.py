"""KIRIM_REDIS_MIN_REPLICAS against real redis-servers: a master, two replicas, three Sentinels.

The primitive (producer/core/durability.py): a write and its WAIT on one connection, enough
replicas or NotReplicated, no WAIT at all with 0; the accept path raising 503-worthy
StoreUnavailable when replicas do not confirm; and the clients built from
KIRIM_REDIS_SENTINELS following a failover (scripts reloaded on the new master).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from producer.client import KirimClient
from producer.core.durability import Durability, NotReplicated
from producer.core.errors import StoreUnavailable
from producer.core.redis_connect import connect_redis
from tests.support.sentinel import SentinelCluster
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for
from tests.support.workers import TEST_ENV

pytestmark = [pytest.mark.timeout(120)]

INCR = "return redis.call('INCR', KEYS[1])"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    """A fresh master + 2 replicas + 3 Sentinels for one test."""
    found = SentinelCluster(tmp_path).start()
    yield found
    found.stop()


def _wait_calls(client: redis_lib.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def _pause_replicas(cluster: SentinelCluster, sig: int) -> None:
    for port in cluster.data_ports[1:]:
        os.killpg(cluster.procs[port].pid, sig)


def test_a_script_call_waits_for_replicas_and_reloads_after_noscript(cluster):
    settings = settings_from_env({**TEST_ENV, **cluster.env(),
                                  "KIRIM_REDIS_MIN_REPLICAS": "2"})
    client = connect_redis(settings)
    master = cluster.client(cluster.data_ports[0])
    script = client.register_script(INCR)
    durable = Durability.from_settings(settings)
    assert durable.run_script(client, script, ["n"], []) == 1
    master.script_flush()  # as on a new master after a failover: the script is unknown
    assert durable.run_script(client, script, ["n"], []) == 2
    # Two calls, each refused once (never loaded, then flushed): EVALSHA+WAIT, load, again.
    assert _wait_calls(master) == 4
    for port in cluster.data_ports[1:]:  # what WAIT confirmed is on every replica
        assert cluster.client(port).get("n") == "2"


def test_zero_replicas_sends_no_wait(cluster):
    settings = settings_from_env({**TEST_ENV, **cluster.env()})
    client = connect_redis(settings)
    master = cluster.client(cluster.data_ports[0])
    script = client.register_script(INCR)
    durable = Durability.from_settings(settings)
    assert not durable.enabled
    client.script_load(INCR)
    assert durable.run_script(client, script, ["n"], []) == 1
    assert durable.run_script(client, script, ["n"], []) == 2
    pipe = client.pipeline(transaction=False)
    pipe.incr("m")
    assert durable.execute(pipe) == [1]
    # Exactly what was asked: one EVALSHA per call, no WAIT (no extra round trip).
    stats = master.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 2
    assert _wait_calls(master) == 0


def test_replicas_that_do_not_answer_make_not_replicated(cluster):
    settings = settings_from_env({**TEST_ENV, **cluster.env(), "KIRIM_REDIS_MIN_REPLICAS": "1",
                                  "KIRIM_REDIS_WAIT_TIMEOUT_MS": "300"})
    client = connect_redis(settings)
    script = client.register_script(INCR)
    durable = Durability.from_settings(settings)
    _pause_replicas(cluster, signal.SIGSTOP)
    try:
        with pytest.raises(NotReplicated) as raised:
            durable.run_script(client, script, ["n"], [])
        assert raised.value.acked == 0 and "KIRIM_REDIS_MIN_REPLICAS is 1" in str(raised.value)
        assert client.get("n") == b"1"  # made on the master, just not confirmed
        pipe = client.pipeline(transaction=False)
        pipe.incr("n")
        with pytest.raises(NotReplicated):
            durable.execute(pipe)
    finally:
        _pause_replicas(cluster, signal.SIGCONT)
    assert durable.run_script(client, script, ["n"], []) == 3


def test_an_accept_not_confirmed_by_replicas_is_store_unavailable(cluster):
    env = {**TEST_ENV, **cluster.env(), "KIRIM_REDIS_MIN_REPLICAS": "1",
           "KIRIM_REDIS_WAIT_TIMEOUT_MS": "300"}
    with KirimClient(settings_from_env(env), source="test") as kirim:
        first = kirim.submit({"channel": "sms", "to": "6281200000001", "text": "durable 1"})
        assert first.state == "queued"
        _pause_replicas(cluster, signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailable) as raised:
                kirim.submit({"channel": "sms", "to": "6281200000002", "text": "durable 2",
                              "idempotency_key": "durable-2"})
        finally:
            _pause_replicas(cluster, signal.SIGCONT)
        message = str(raised.value)
        assert isinstance(raised.value, NotReplicated), message
        assert "Idempotency-Key" in message and "may still be sent" in message
        # Resent with the same key once the replicas are back: the first write, confirmed.
        again = kirim.submit({"channel": "sms", "to": "6281200000002", "text": "durable 2",
                              "idempotency_key": "durable-2"})
        assert again.duplicate


def test_clients_follow_a_failover_and_reload_their_scripts(cluster):
    settings = settings_from_env({**TEST_ENV, **cluster.env(), "KIRIM_REDIS_MIN_REPLICAS": "1"})
    client = connect_redis(settings)
    script = client.register_script(INCR)
    durable = Durability.from_settings(settings)
    assert durable.run_script(client, script, ["n"], []) == 1
    assert script(keys=["plain"]) == 1
    old = cluster.kill_master()
    new = cluster.wait_new_master(old)

    def works() -> bool:
        try:
            return bool(durable.run_script(client, script, ["n"], []))
        except (redis_lib.RedisError, NotReplicated):
            return False

    wait_for(works, 30, "the client to write on the new master")
    assert client.connection_pool.get_master_address()[1] == new
    # A confirmed write survived the failover; redis-py's Script reloads on NOSCRIPT too.
    assert int(client.get("n") or 0) >= 2
    assert script(keys=["plain"]) == 2


def test_the_api_answers_503_while_replicas_do_not_confirm(cluster, api_factory):
    from tests.support.api_server import api_keys_setting

    api = api_factory({**TEST_ENV, **cluster.env(), "KIRIM_API_KEYS": api_keys_setting(),
                       "KIRIM_REDIS_MIN_REPLICAS": "1", "KIRIM_REDIS_WAIT_TIMEOUT_MS": "300"})
    body = {"channel": "sms", "to": "6281200000003", "text": "durable api"}
    headers = {"Idempotency-Key": "durable-api"}
    warm = api.client.post("/v1/messages", json={**body, "text": "warm"})  # script loaded
    assert warm.status_code == 202, warm.text
    _pause_replicas(cluster, signal.SIGSTOP)
    try:
        reply = api.client.post("/v1/messages", json=body, headers=headers)
    finally:
        _pause_replicas(cluster, signal.SIGCONT)
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == "store_unavailable"
    assert "replication not confirmed" in error["message"]
    assert "nothing was written" not in error["message"]  # it was, on the master
    again = api.client.post("/v1/messages", json=body, headers=headers)
    assert again.status_code in (200, 202) and again.json()["duplicate"], again.text


def test_a_worker_calls_the_provider_only_once_replicas_confirm_its_claim(cluster, sandbox):
    """The claim and the *calling* mark (worker/lua/start.lua) and the `sent` move WAIT for
    a replica: unconfirmed, the provider is not called and the message is queued again."""
    from producer.core.contract import State
    from worker.pipeline import SendPipeline
    from worker.services import build_services

    env = {**TEST_ENV, **cluster.env(), "KIRIM_NUSASMS_URL": sandbox.url,
           "KIRIM_REDIS_MIN_REPLICAS": "1", "KIRIM_REDIS_WAIT_TIMEOUT_MS": "300"}
    settings = settings_from_env(env)
    master = cluster.client(cluster.data_ports[0])
    with KirimClient(settings, source="test") as kirim:
        svc = build_services(settings, kirim.celery)
        try:
            accepted = kirim.submit({"channel": "sms", "to": "6281200000009", "text": "wait"})

            def task() -> tuple[dict[str, object], str]:
                record = kirim.store.get(accepted.id)
                assert record is not None
                return record.job.to_task(), record.get("dispatch") or ""

            _pause_replicas(cluster, signal.SIGSTOP)
            try:
                assert SendPipeline(svc).process(*task()) == "not_replicated"
            finally:
                _pause_replicas(cluster, signal.SIGCONT)
            record = kirim.store.get(accepted.id)
            assert record is not None and record.state == State.QUEUED
            assert record.get("attempts") == "0"  # (its old *calling* mark goes at the next claim)
            assert sandbox.stats()["accepted"] == 0, "the provider was called unconfirmed"
            waits = _wait_calls(master)
            assert SendPipeline(svc).process(*task()) == "sent"
            assert sandbox.stats()["accepted"] == 1
            assert _wait_calls(master) - waits >= 2  # the start step and the `sent` move
            for port in cluster.data_ports[1:]:
                assert cluster.client(port).hget(f"kirim:msg:{accepted.id}", "state") == "sent"
        finally:
            svc.close()
