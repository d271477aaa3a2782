"""Redis Sentinel failover mid-run: the master SIGKILLed while 800 messages go in.

Real processes on loopback: a master, two replicas and three Sentinels (tests/support/
sentinel.py), two workers and beat, the API and the Python client, all configured with
KIRIM_REDIS_SENTINELS and KIRIM_REDIS_MIN_REPLICAS=1. A producer thread enqueues 800
messages in batches (half through the API, half through KirimClient), each with an
idempotency key, resending a batch that failed (503 / StoreUnavailable) as a client would.
The master is SIGKILLed once 300 are in. Then: every accepted message has a record and
reaches a final state (none lost), the sandbox accepted none twice, nothing was restarted.
Printed: failover time, 503s during it, lost / duplicated / unknown (README's table).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from producer.client import KirimClient
from producer.core.contract import State
from producer.core.enqueue import Accepted
from producer.core.errors import StoreUnavailable
from tests.support.api_server import api_keys_setting
from tests.support.reliability import REACHED, check_run
from tests.support.sentinel import SentinelCluster
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import TEST_ENV, Workers

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

MESSAGES = 800
BATCH = 20
KILL_AFTER = 300
PACE_S = 0.15  # between batches: about 7 s of enqueueing, the kill in its middle
ENDED = frozenset({*REACHED, State.UNKNOWN})


@dataclass
class Produced:
    """What the producer thread saw: accepted ids ({id: (to, text)}), refusals, timings."""

    texts: dict[str, tuple[str, str]] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)
    refused_at: list[float] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _items(first: int) -> list[dict[str, str]]:
    return [{"channel": "sms", "to": f"62817{i:07d}", "text": f"failover run {i}",
             "idempotency_key": f"failover-{i}"} for i in range(first, first + BATCH)]


def _produce(api, kirim: KirimClient, out: Produced, stop: threading.Event) -> None:
    """Enqueue MESSAGES in batches, alternating API and Python client; resend on failure."""
    for n, first in enumerate(range(0, MESSAGES, BATCH)):
        items = _items(first)
        while not stop.is_set():
            try:
                if n % 2 == 0:
                    reply = api.client.post("/v1/messages/batch", json={"messages": items})
                    if reply.status_code != 200:
                        out.refusals[f"api {reply.status_code}"] += 1
                        out.refused_at.append(time.monotonic())
                        time.sleep(0.1)
                        continue
                    results = [(r["id"], r["to"]) for r in reply.json()["results"]]
                else:
                    accepted = kirim.send_many(items)
                    failed = [r for r in accepted if not isinstance(r, Accepted)]
                    if failed:  # each item its own error: resend the batch (same keys)
                        raise failed[0]
                    results = [(r.id, r.to) for r in accepted if isinstance(r, Accepted)]
            except StoreUnavailable as exc:
                out.refusals[f"client {type(exc).__name__}"] += 1
                out.refused_at.append(time.monotonic())
                time.sleep(0.1)
                continue
            except Exception as exc:  # reported by the test, not lost in a thread
                out.errors.append(repr(exc))
                time.sleep(0.1)
                continue
            for (mid, to), item in zip(results, items, strict=True):
                out.texts[mid] = (to, item["text"])
            out.accepted_at.append(time.monotonic())
            break
        time.sleep(PACE_S)


def _probe(api, seen: list[tuple[float, int, float]], stop: threading.Event) -> None:
    """GET /healthz every 0.1 s: (when, status, seconds it took); 0 for no answer."""
    while not stop.is_set():
        at = time.monotonic()
        try:
            status = api.anon.get("/healthz").status_code
        except Exception:  # counted as no answer
            status = 0
        seen.append((at, status, time.monotonic() - at))
        time.sleep(0.1)


def test_a_master_killed_mid_run_loses_nothing_and_sends_nothing_twice(
        sandbox, api_factory, tmp_path):
    started = time.monotonic()
    (tmp_path / "redis").mkdir()
    cluster = SentinelCluster(tmp_path / "redis").start()
    env = {**TEST_ENV, **cluster.env(), "KIRIM_NUSASMS_URL": sandbox.url,
           "KIRIM_REDIS_MIN_REPLICAS": "1", "KIRIM_REDIS_WAIT_TIMEOUT_MS": "500"}
    api = api_factory({**env, "KIRIM_API_KEYS": api_keys_setting()})
    pool = Workers(env, tmp_path)
    settings = settings_from_env(env)
    out = Produced()
    stop = threading.Event()
    try:
        sandbox.configure(latency_ms=30)
        procs = [pool.start(concurrency=8) for _ in range(2)]
        procs.append(pool.beat())
        with KirimClient(settings, source="test") as kirim:
            warm = kirim.send("sms", "6281700009999", "failover warm-up")
            wait_states(kirim, [warm], REACHED, timeout_s=30)  # the workers are up
            producer = threading.Thread(target=_produce, args=(api, kirim, out, stop))
            producer.start()
            health: list[tuple[float, int, float]] = []
            threading.Thread(target=_probe, args=(api, health, stop), daemon=True).start()
            wait_for(lambda: len(out.texts) >= KILL_AFTER, 40, f"{KILL_AFTER} accepted",
                     interval_s=0.02)
            assert sandbox.stats()["accepted"] > 0, "no send before the kill"
            killed_at = time.monotonic()
            old = cluster.kill_master()
            cluster.wait_new_master(old)
            promoted_s = time.monotonic() - killed_at
            producer.join(60)
            assert not producer.is_alive(), "the producer did not finish within 60 s"
            assert len(out.texts) == MESSAGES, f"accepted {len(out.texts)} of {MESSAGES}"
            wait_states(kirim, list(out.texts), ENDED, timeout_s=60)
            result = check_run(kirim, sandbox, out.texts, ENDED, started)
            unknown = result.states[State.UNKNOWN]
        exited = [p.pid for p in procs if p.poll() is not None]
    except AssertionError:
        print(pool.logs(), api.logs())
        raise
    finally:
        stop.set()
        pool.stop_all()
        cluster.stop()
    after = [t for t in out.accepted_at if t > killed_at]
    resumed_s = (after[0] - killed_at) if after else float("nan")
    unhealthy = [(at - killed_at, code) for at, code, _ in health if code != 200]
    slowest = max((took for at, _, took in health if at > killed_at - 1), default=0.0)
    print(result.line(f"Sentinel failover: master SIGKILLed after {KILL_AFTER} of {MESSAGES}"
                      " messages, MIN_REPLICAS=1"))
    print(f"[reliability] failover: Sentinels promoted a replica after {promoted_s:.1f} s;"
          f" first accept after the kill {resumed_s:.1f} s; refusals {dict(out.refusals)};"
          f" lost 0; duplicated {result.duplicates}; unknown {unknown};"
          f" producer errors {out.errors[:3]}")
    print(f"[reliability] failover: /healthz not 200 {len(unhealthy)}x"
          f" (s after the kill, status: {[(round(t, 1), c) for t, c in unhealthy[:8]]});"
          f" slowest /healthz {slowest:.1f} s")
    assert exited == [], f"processes exited instead of following the failover: {exited}"
    assert all(code in (200, 503) for _, code in unhealthy), unhealthy  # 503, never a 500
    assert result.duplicates == 0
    assert not out.errors, out.errors[:5]
