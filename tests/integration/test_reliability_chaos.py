"""The chaos run: 1,500 messages, 6 worker SIGKILLs and one Redis restart (AOF), all at once.

Nothing lost, nothing sent twice, and `unknown` only where the provider may have the
message: a sender lost before its *calling* mark is requeued, and so is one lost between
the mark and its write (its call journal says so, worker/journal.py), so at most a handful
of `unknown` messages never reached the provider (issue 12's target: 3, from 49).
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from producer.client import KirimClient
from producer.core.contract import State
from tests.support.reliability import REACHED, check_run
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import TEST_ENV, Workers

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow, pytest.mark.alone]

MESSAGES = 1500
KILLS = 6
THREADS = 4
REDIS_DOWN_S = 3.0
ENDED = frozenset({*REACHED, State.UNKNOWN, State.DEAD, State.DEFERRED})


def test_kills_and_a_redis_restart_lose_nothing_and_leave_almost_no_blind_unknown(
        aof_redis, sandbox, tmp_path):
    started = time.monotonic()
    env = {**TEST_ENV, "KIRIM_REDIS_URL": aof_redis.url, "KIRIM_NUSASMS_URL": sandbox.url}
    settings = settings_from_env(env)
    sandbox.configure(latency_ms=30)
    workers = Workers(env, tmp_path)
    pool = [workers.start(concurrency=THREADS) for _ in range(3)]
    workers.beat()
    try:
        with KirimClient(settings, source="chaos") as kirim:
            texts = {f"62816{i:07d}": f"chaos run no {i}" for i in range(MESSAGES)}
            results = kirim.send_many([{"channel": "sms", "to": to, "text": t}
                                       for to, t in texts.items()])
            by_id = {r.id: (r.to or "", texts[r.to or ""]) for r in results}
            wait_for(lambda: sandbox.stats()["accepted"] >= 20, 60, "the first sends")
            _chaos(workers, pool, aof_redis)
            wait_states(kirim, list(by_id), ENDED, timeout_s=150)
            out = check_run(kirim, sandbox, by_id, ENDED, started)
            blind = _unknown_never_seen(kirim, sandbox, by_id)
    except AssertionError:
        print(workers.logs())
        raise
    finally:
        workers.stop_all()
    unknown = out.states[State.UNKNOWN]
    print(out.line(f"{MESSAGES} messages, {KILLS} SIGKILLs, Redis down {REDIS_DOWN_S:.0f} s"))
    print(f"[reliability] unknown: {unknown}, of which reached the provider:"
          f" {unknown - blind}, did not: {blind}")
    assert out.duplicates == 0
    assert blind <= 3, f"{blind} unknown messages never reached the provider"
    assert out.states[State.DEAD] == 0 and out.states[State.DEFERRED] == 0


def _chaos(workers: Workers, pool: list, redis) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL a random worker every second, six times; restart Redis after the third."""
    rng = random.Random(12)
    for kill in range(KILLS):
        victim = pool.pop(rng.randrange(len(pool)))
        workers.kill(victim, signal.SIGKILL)
        pool.append(workers.start(concurrency=THREADS))
        if kill == 2:
            redis.stop()
            time.sleep(REDIS_DOWN_S)
            redis.start()  # same port, same AOF
        time.sleep(1.0)


def _unknown_never_seen(kirim: KirimClient, sandbox, by_id) -> int:  # type: ignore[no-untyped-def]
    """How many `unknown` messages the provider never accepted."""
    counts = sandbox.counts()
    ids = list(by_id)
    return sum(1 for mid, state in zip(ids, kirim.store.states(ids), strict=True)
               if state == State.UNKNOWN and not counts.get(by_id[mid]))
