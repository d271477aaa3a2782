"""Status callbacks under bad receivers: backoff and drop, the per-host cap, the circuit
breaker, a retry behind hundreds backing off, and poisoned events. Real Redis, real worker and
beat processes, real HTTP receivers on loopback (tests/support/receiver.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from producer.client import KirimClient
from producer.core.contract import State
from producer.core.keys import Keys
from tests.support.processes import free_port
from tests.support.receiver import Receiver, all_posted_in_order, life
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import Workers

pytestmark = pytest.mark.timeout(180)

KEYS = Keys()
GROUP = "callbacks"

ReceiverFactory = Callable[..., Receiver]


def host_of(receiver: Receiver) -> str:
    """The breaker's name for a receiver: host:port."""
    return httpx.URL(receiver.url).netloc.decode()


def log_lines(workers: Workers, event: str) -> list[dict[str, Any]]:
    """Every JSON log line of every worker whose event is `event`."""
    lines = []
    for path in sorted(workers.logdir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                entry = json.loads(line)
                if entry.get("event") == event:
                    lines.append(entry)
    return lines


def scrape(port: int) -> dict[str, float]:
    """kirim_status_callbacks_total by result, from a worker's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {s.labels["result"]: s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == "kirim_status_callbacks_total"}


def group_ready(redis: Redis) -> bool:
    """Whether a drain has run (it creates the consumer group)."""
    return bool(redis.exists(KEYS.events)) and any(
        g["name"] == GROUP for g in redis.xinfo_groups(KEYS.events))


def assert_all_finished(redis: Redis) -> None:
    """No event left anywhere: stream, pending list, lanes, schedule, attempts."""
    wait_for(lambda: not redis.exists(KEYS.callback_due), 10, "the last lane settled")
    assert redis.xlen(KEYS.events) == 0
    assert redis.xpending(KEYS.events, GROUP)["pending"] == 0
    for key in (KEYS.callback_lanes, KEYS.callback_due, KEYS.callback_attempts):
        assert not redis.exists(key), key


BACKOFF = {"KIRIM_STATUS_CALLBACK_MAX_ATTEMPTS": "4", "KIRIM_STATUS_CALLBACK_BASE_DELAY_S": "0.5",
           "KIRIM_STATUS_CALLBACK_MAX_DELAY_S": "4",
           "KIRIM_STATUS_CALLBACK_BREAKER_FAILURES": "100"}


def test_a_refused_callback_backs_off_and_is_dropped_once(
        kirim: KirimClient, workers: Workers, redis: Redis,
        receiver_factory: ReceiverFactory) -> None:
    refusing = receiver_factory(status=500)
    port = free_port()
    workers.start(queues="reports", extra_env={**BACKOFF, "KIRIM_METRICS_PORT": str(port)})
    workers.beat()
    # No sending lane: each message has exactly one event, its creation.
    for i in range(2):
        kirim.send_sms(f"62812555{i:05d}", "never sent", callback_url=refusing.url)
    stored: dict[str, set[str]] = {}

    def dropped() -> bool:
        for eid, value in redis.hgetall(KEYS.callback_attempts).items():
            stored.setdefault(eid, set()).add(value)
        return redis.hget(KEYS.callback_stats, "dropped") == "2"

    wait_for(dropped, 40, "both events dropped", interval_s=0.02)
    time.sleep(2.5)  # a dropped event is never POSTed again
    hits = refusing.by_event()
    assert sorted(hits) == sorted(stored) and len(hits) == 2
    ratios = []
    for eid, tries in hits.items():
        assert len(tries) == 4 and len({t["body"] for t in tries}) == 1, tries
        attempts = sorted((int(v.partition(":")[0]), float(v.partition(":")[2]))
                          for v in stored[eid])
        assert [n for n, _ in attempts] == [1, 2, 3], attempts
        for n, next_at in attempts:
            ceiling = min(4.0, 0.5 * 2 ** (n - 1))
            delay = next_at - tries[n - 1]["t"]
            assert ceiling / 2 - 0.05 <= delay <= ceiling + 0.3, (n, delay)
            gap = tries[n]["t"] - tries[n - 1]["t"]
            assert delay - 0.05 <= gap <= delay + 2.0, (n, delay, gap)  # + one beat tick
            ratios.append(delay / ceiling)
    assert max(ratios) - min(ratios) > 0.01, "backoff is jittered"
    assert_all_finished(redis)
    drops = log_lines(workers, "status_callback_dropped")
    assert sorted(d["event_id"] for d in drops) == sorted(hits), drops
    assert all(d["attempts"] == 4 for d in drops)
    assert len(log_lines(workers, "status_callback_retry")) == 6
    assert scrape(port).get("dropped") == 2 and scrape(port).get("retry") == 6


ISOLATION = {"KIRIM_STATUS_CALLBACK_TIMEOUT_S": "1", "KIRIM_STATUS_CALLBACK_MAX_ATTEMPTS": "3",
             "KIRIM_STATUS_CALLBACK_BASE_DELAY_S": "0.3",
             "KIRIM_STATUS_CALLBACK_MAX_DELAY_S": "1.2", "KIRIM_STATUS_CALLBACK_PER_HOST": "2",
             "KIRIM_STATUS_CALLBACK_BREAKER_FAILURES": "3",
             "KIRIM_STATUS_CALLBACK_BREAKER_COOLDOWN_S": "0.6", "KIRIM_DR_FIRST_POLL_S": "600"}


class BreakerWatch:
    """Samples hosts' breakers in Redis: for each opening, when it was first seen open."""

    def __init__(self, redis: Redis, hosts: list[str]) -> None:
        self.redis, self.hosts = redis, hosts
        self.seen: dict[str, dict[float, float]] = {h: {} for h in hosts}  # until → first seen
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BreakerWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(5)

    def _run(self) -> None:
        while not self.done.wait(0.02):
            for host in self.hosts:
                now = time.time()
                until = float(self.redis.hget(KEYS.callback_breaker(host), "open_until") or 0)
                if until > now:
                    self.seen[host].setdefault(until, now)

    def hits_while_open(self, receiver: Receiver) -> list[float]:
        """Arrival times of POSTs that came while the receiver's breaker was seen open."""
        windows = self.seen[host_of(receiver)].items()
        return [h["t"] for h in receiver.hits
                if any(seen + 0.05 < h["t"] < until - 0.05 for until, seen in windows)]


def test_a_dead_and_a_hanging_receiver_do_not_slow_a_healthy_one(
        kirim: KirimClient, workers: Workers, redis: Redis,
        receiver_factory: ReceiverFactory) -> None:
    healthy, refusing = receiver_factory(), receiver_factory(status=500)
    hanging = receiver_factory(hang_s=10)
    workers.start(extra_env=ISOLATION)
    workers.beat()
    wait_for(lambda: group_ready(redis), 30, "the first drain")
    with BreakerWatch(redis, [host_of(refusing), host_of(hanging)]) as watch:
        stuck = [kirim.send_sms(f"62812555{i:05d}", "hangs", callback_url=hanging.url)
                 for i in range(3)]
        bad = kirim.send_sms("6281255500010", "refused", callback_url=refusing.url)
        good = [kirim.send_sms(f"628125550{i:04d}", "ok", callback_url=healthy.url)
                for i in range(20, 24)]
        wait_states(kirim, [*stuck, bad, *good], {State.SENT})
        wait_for(lambda: all_posted_in_order(kirim, healthy, good), 20, "healthy callbacks")
        events = len(life(kirim, bad))

        def refused_to_the_end() -> bool:
            tries = refusing.by_event()
            return len(tries) == events and all(len(t) == 3 for t in tries.values())

        wait_for(refused_to_the_end, 60, "the refused events tried 3 times each")
        time.sleep(1.5)
    late = [h["t"] - json.loads(h["body"])["at"] for h in healthy.hits]
    assert max(late) < 3.0, f"healthy callbacks took up to {max(late):.2f}s"
    assert all(h["status"] == 200 for h in healthy.hits)
    tries = refusing.by_event()
    assert len(tries) == events and all(len(t) == 3 for t in tries.values()), tries
    assert 1 <= hanging.most_in_flight <= 2, hanging.most_in_flight
    opened = {e["host"] for e in log_lines(workers, "status_callback_breaker_open")}
    assert opened == {host_of(refusing), host_of(hanging)}, opened
    assert watch.seen[host_of(hanging)] and watch.seen[host_of(refusing)]
    assert watch.hits_while_open(hanging) == [] and watch.hits_while_open(refusing) == []


def test_a_due_retry_is_found_behind_hundreds_backing_off(
        kirim: KirimClient, workers: Workers, redis: Redis,
        receiver_factory: ReceiverFactory) -> None:
    refusing, flaky = receiver_factory(status=500), receiver_factory(fail_first=1)
    crowd = kirim.send_many([{"channel": "sms", "to": f"6281255{i:05d}", "text": "crowd",
                              "callback_url": refusing.url} for i in range(250)])
    assert all(not isinstance(a, Exception) for a in crowd)
    late = kirim.send_sms("6281255599999", "behind the crowd", callback_url=flaky.url)
    workers.start(queues="reports", extra_env={
        "KIRIM_STATUS_CALLBACK_BASE_DELAY_S": "0.5", "KIRIM_STATUS_CALLBACK_MAX_DELAY_S": "8",
        "KIRIM_STATUS_CALLBACK_MAX_ATTEMPTS": "50",
        "KIRIM_STATUS_CALLBACK_BREAKER_FAILURES": "1",
        "KIRIM_STATUS_CALLBACK_BREAKER_COOLDOWN_S": "0.5"})
    workers.beat()
    wait_for(lambda: [h["status"] for h in flaky.hits] == [500, 200], 30,
             "the retry of the last event, behind 250 pending")
    assert json.loads(flaky.hits[1]["body"])["id"] == late
    assert flaky.hits[0]["headers"]["webhook-id"] == flaky.hits[1]["headers"]["webhook-id"]
    # The drain acks the delivered event just after the receiver answered 200.
    wait_for(lambda: redis.xpending(KEYS.events, GROUP)["pending"] == 250, 5,
             "the delivered event acknowledged, the 250 refused ones still pending")
    # The crowd's host has an open breaker: its events wait without spending attempts.
    spent = sum(int(v.partition(":")[0]) for v in redis.hgetall(KEYS.callback_attempts).values())
    assert spent == len(refusing.hits) < 20, (spent, len(refusing.hits))


def test_poisoned_events_are_finished_and_the_rest_delivered(
        kirim: KirimClient, workers: Workers, redis: Redis,
        receiver_factory: ReceiverFactory) -> None:
    rec = receiver_factory()
    raw = kirim.redis
    poison = [raw.xadd(KEYS.events, {"junk": "no message id"}),
              raw.xadd(KEYS.events, {"id": "m-bad-at", "state": "queued", "at": "soon"}),
              raw.xadd(KEYS.events, {"id": "m-bad-bytes", "state": b"\xff\xfe", "at": "1"})]
    first = kirim.send_sms("6281255500001", "after the junk", callback_url=rec.url)
    poison.append(raw.xadd(KEYS.events, {"id": first, "state": "sending", "at": "nan"}))
    broken = kirim.send_sms("6281255500002", "its record is garbage", callback_url=rec.url)
    raw.hset(KEYS.message(broken), "callback_url", "not a url")
    good = [first, *(kirim.send_sms(f"628125550000{i}", "fine", callback_url=rec.url)
                     for i in (3, 4))]
    workers.start(extra_env={"KIRIM_DR_FIRST_POLL_S": "600"})  # no DR event
    workers.beat()
    wait_states(kirim, [*good, broken], {State.SENT})
    wait_for(lambda: all_posted_in_order(kirim, rec, good), 30, "the good callbacks")
    wait_for(lambda: redis.xlen(KEYS.events) == 0, 15, "every event finished")
    expected = len(poison) + len(life(kirim, broken))
    assert redis.hget(KEYS.callback_stats, "poisoned") == str(expected)
    lines = log_lines(workers, "status_callback_poisoned")
    ids = [e["event_id"] for e in lines]
    assert len(ids) == len(set(ids)) == expected, lines
    assert {p.decode() for p in poison} <= set(ids)
    assert all(json.loads(h["body"])["id"] in good for h in rec.hits)
    assert not [p for p in workers.logdir.glob("*.log") if "raised unexpected" in p.read_text()]
    assert_all_finished(redis)
