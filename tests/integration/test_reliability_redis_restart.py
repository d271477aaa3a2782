"""Redis (AOF on) restarted mid-run: the API says 503 meanwhile, everything reconnects, no loss."""

from __future__ import annotations

import time

import httpx
import pytest

from producer.client import KirimClient
from producer.core.contract import State
from tests.support.api_server import api_keys_setting
from tests.support.reliability import REACHED, check_run
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import TEST_ENV, Workers

pytestmark = [pytest.mark.timeout(200), pytest.mark.slow]

DOWN_S = 5.0


def _batch(api, first: int, n: int) -> dict[str, tuple[str, str]]:
    items = [{"channel": "sms", "to": f"62814{i:07d}", "text": f"restart run {i}"}
             for i in range(first, first + n)]
    reply = api.client.post("/v1/messages/batch", json={"messages": items})
    assert reply.status_code == 200, reply.text
    return {r["id"]: (r["to"], f"restart run {first + j}")
            for j, r in enumerate(reply.json()["results"])}


def test_redis_restart_is_survived_by_api_and_workers(aof_redis, sandbox, api_factory,
                                                      tmp_path):
    started = time.monotonic()
    env = {**TEST_ENV, "KIRIM_REDIS_URL": aof_redis.url, "KIRIM_NUSASMS_URL": sandbox.url}
    api = api_factory({**env, "KIRIM_API_KEYS": api_keys_setting()})
    pool = Workers(env, tmp_path)
    settings = settings_from_env(env)
    restarted: list[str] = []
    try:
        sandbox.configure(latency_ms=30)
        roles = {pool.start(concurrency=8).pid: "worker" for _ in range(2)}
        roles[pool.beat().pid] = "beat"
        texts = _batch(api, 0, 600)
        wait_for(lambda: sandbox.stats()["accepted"] >= 30, 30, "the first sends")
        aof_redis.stop()
        refusals = _while_down(api, DOWN_S)
        aof_redis.start()  # same port, same AOF directory
        assert refusals and all(code == 503 for code in refusals), refusals
        wait_for(lambda: _accepts(api), 30, "the API to accept messages again")
        texts |= _batch(api, 600, 200)
        with KirimClient(settings, source="test") as kirim:
            ended = {*REACHED, State.UNKNOWN}
            wait_for(lambda: _supervise(pool, roles, restarted) or all(
                s in ended for s in kirim.store.states(list(texts))), 90, "a settled run")
            wait_states(kirim, list(texts), ended, timeout_s=1)
            out = check_run(kirim, sandbox, texts, frozenset({*REACHED, State.UNKNOWN}),
                                started)
        print(out.line(f"Redis (AOF) down {DOWN_S:.0f} s mid-run, API answered"
                       f" {len(refusals)}x 503"))
        # Workers reconnect by themselves (worker/broker_transport.py fixes kombu's
        # AttributeError on reconnect) and beat waits Redis out (worker/beat.py).
        print(f"[reliability] processes that exited and were restarted by the supervisor:"
              f" {restarted or 'none'}")
        assert restarted == [], f"stopped instead of reconnecting: {restarted}"
        assert out.duplicates == 0
    except AssertionError:
        print(pool.logs(), api.logs())
        raise
    finally:
        pool.stop_all()


def _supervise(pool: Workers, roles: dict[int, str], restarted: list[str]) -> bool:
    """Restart exited workers and beat, as systemd (Restart=always) or Kubernetes would."""
    for proc in list(pool.procs):
        role = roles.get(proc.pid)
        if role and proc.poll() is not None:
            del roles[proc.pid]
            new = pool.start(concurrency=8) if role == "worker" else pool.beat()
            roles[new.pid] = role
            restarted.append(role)
    return False


def _while_down(api, down_s: float) -> list[int]:
    """POST messages and GET /healthz while Redis is down: every status code seen."""
    codes: list[int] = []
    deadline = time.monotonic() + down_s
    i = 0
    while time.monotonic() < deadline:
        i += 1
        reply = api.client.post("/v1/messages", json={
            "channel": "sms", "to": "6281500000001", "text": f"while down {i}"})
        codes.append(reply.status_code)
        assert reply.json()["error"]["code"] == "store_unavailable", reply.text
        codes.append(api.anon.get("/healthz").status_code)
        time.sleep(0.5)
    return codes


def _accepts(api) -> bool:
    try:
        reply = api.client.post("/v1/messages", json={
            "channel": "sms", "to": "6281500000002", "text": "back again"})
    except httpx.HTTPError:
        return False
    return reply.status_code == 202
