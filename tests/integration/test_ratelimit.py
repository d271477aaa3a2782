"""The GCRA rate limiter against a real Redis: burst, rate, the exact bound, many processes.

The bound GCRA gives, with tolerance (burst - 1) / rate: any closed span of d seconds holds at
most floor(d * rate) + burst grants (a grant at t needs TAT - t <= tolerance, and every grant
since the span's first pushed TAT on by 1 / rate). For 1 s at 50/s with burst 5: 55.
"""

from __future__ import annotations

import bisect
import math
import multiprocessing
import time
from typing import Any

import pytest
import redis as redis_lib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.core.keys import Keys
from worker.ratelimit import RateLimiter

KEY = Keys().rate_limit
T0 = 1_700_000_000.0  # a fixed "now" for tests that pass time explicitly


def max_grants(span_s: float, rate_per_s: float, burst: int) -> int:
    """GCRA's bound on the grants in a closed span of span_s seconds."""
    return math.floor(span_s * rate_per_s + 1e-9) + burst


def worst_span(times_us: list[int], rate_per_s: float, burst: int) -> int:
    """How far the tightest closed span [t_i, t_j] comes to the bound (<= 0 means within it)."""
    times_us = sorted(times_us)
    worst = -burst
    for i, start in enumerate(times_us):
        for j in range(i, len(times_us)):
            inside = bisect.bisect_right(times_us, times_us[j]) - i
            span = (times_us[j] - start) / 1e6
            worst = max(worst, inside - max_grants(span, rate_per_s, burst))
    return worst


def test_burst_goes_at_once_then_one_per_interval(redis):
    limiter = RateLimiter(redis, KEY, rate_per_s=50, burst=5)
    assert [limiter.acquire(T0) for _ in range(5)] == [0.0] * 5
    assert limiter.acquire(T0) == pytest.approx(0.02, abs=1e-6)
    assert limiter.acquire(T0 + 0.02) == 0.0
    assert limiter.acquire(T0 + 0.02) == pytest.approx(0.02, abs=1e-6)
    # Idle until the TAT (T0 + 6 intervals): the whole burst is back, and no more.
    assert [limiter.acquire(T0 + 0.12) for _ in range(6)][4:] == [0.0, pytest.approx(0.02)]


def test_a_refusal_takes_nothing(redis):
    limiter = RateLimiter(redis, KEY, rate_per_s=10, burst=1)
    assert limiter.acquire(T0) == 0.0
    state = redis.get(KEY)
    for offset in (0.0, 0.05, 0.099999):
        assert limiter.acquire(T0 + offset) == pytest.approx(0.1 - offset, abs=1e-6)
    assert redis.get(KEY) == state
    assert limiter.acquire(T0 + 0.1) == 0.0


def test_with_redis_time_and_the_key_disappears_when_idle(redis):
    limiter = RateLimiter(redis, KEY, rate_per_s=50, burst=5)
    assert [limiter.acquire() for _ in range(5)] == [0.0] * 5
    wait_s, at_s = limiter.attempt()
    assert 0 < wait_s <= 0.02
    assert abs(at_s - time.time()) < 1.0  # Redis's clock, the same machine's
    assert 0 < redis.pttl(KEY) <= 110  # until the TAT (5 intervals at most) and 10 ms
    time.sleep(0.13)
    assert not redis.exists(KEY)
    assert limiter.acquire() == 0.0


def test_acquire_blocking_sleeps_through_a_short_wait(redis):
    limiter = RateLimiter(redis, KEY, rate_per_s=20, burst=1)
    assert limiter.acquire_blocking(max_sleep_s=0.25) == 0.0
    started = time.monotonic()
    assert limiter.acquire_blocking(max_sleep_s=0.25) == 0.0
    assert 0.03 < time.monotonic() - started < 0.2
    started = time.monotonic()
    wait_s = limiter.acquire_blocking(max_sleep_s=0.01)  # too long to sleep: the caller reschedules
    assert 0.01 < wait_s <= 0.05
    assert time.monotonic() - started < 0.01


def test_limiters_on_different_keys_are_independent(redis):
    one = RateLimiter(redis, KEY, rate_per_s=1, burst=1)
    other = RateLimiter(redis, KEY + ":other", rate_per_s=1, burst=1)
    assert one.acquire(T0) == 0.0 and other.acquire(T0) == 0.0
    assert one.acquire(T0) > 0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_rejects_nonsense_settings(redis, rate, burst):
    with pytest.raises(ValueError, match="rate_per_s must be > 0 and burst >= 1"):
        RateLimiter(redis, KEY, rate_per_s=rate, burst=burst)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rate=st.sampled_from([50.0, 3.0, 7.5, 1000.0]),
    burst=st.integers(1, 6),
    steps_us=st.lists(st.one_of(st.just(0), st.integers(0, 400_000)), max_size=60),
)
def test_grants_stay_within_the_bound_and_waits_are_exact(redis, rate, burst, steps_us):
    redis.delete(KEY)
    limiter = RateLimiter(redis, KEY, rate_per_s=rate, burst=burst)

    def acquire(at_us: int) -> float:
        wait_s = limiter.acquire(at_us / 1e6)
        # The key's TTL runs in real time, which this test's invented time does not follow.
        redis.persist(KEY)
        return wait_s

    now_us, granted = round(T0 * 1e6), []
    for step in steps_us:
        now_us += step
        wait_s = acquire(now_us)
        if wait_s == 0.0:
            granted.append(now_us)
            continue
        # The wait is exact: a microsecond earlier is still refused (and takes nothing).
        wait_us = round(wait_s * 1e6)
        assert acquire(now_us + wait_us - 1) == pytest.approx(1e-6)
        now_us += wait_us
        assert acquire(now_us) == 0.0
        granted.append(now_us)
    assert worst_span(granted, rate, burst) <= 0


# --- eight processes sharing one limit -------------------------------------------------

PROCESSES, RATE, BURST, DURATION_S = 8, 50, 5, 2.0


def _hammer(url: str, start: Any, results: Any) -> None:
    """One process: try for DURATION_S, polling at least every millisecond while refused."""
    client = redis_lib.Redis.from_url(url)
    limiter = RateLimiter(client, KEY, rate_per_s=RATE, burst=BURST)
    granted, tries = [], 0
    start.wait()
    deadline = time.monotonic() + DURATION_S
    while time.monotonic() < deadline:
        wait_s, at_s = limiter.attempt()
        tries += 1
        if wait_s == 0.0:
            granted.append(round(at_s * 1e6))
        else:
            time.sleep(min(wait_s, 0.001))
    results.put((granted, tries))
    client.close()


def test_processes_share_one_limit(redis_url, capsys):
    # fork: the children start in milliseconds (spawn takes seconds on a small machine).
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(redis_url, start, results))
             for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    replies = [results.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0
    granted = sorted(t for times, _ in replies for t in times)
    tries = sum(n for _, n in replies)
    in_one_s = max(bisect.bisect_right(granted, t + 1_000_000) - i for i, t in enumerate(granted))
    span_s = (granted[-1] - granted[0]) / 1e6
    with capsys.disabled():
        print(f"\nrate limiter, {PROCESSES} processes, {RATE}/s burst {BURST}, {DURATION_S} s:"
              f" {len(granted)} granted of {tries} tries; most in any closed 1 s span"
              f" {in_one_s} (bound {RATE + BURST}); steady rate"
              f" {(len(granted) - BURST) / span_s:.2f}/s over {span_s:.3f} s")
    assert in_one_s <= RATE + BURST
    assert worst_span(granted, RATE, BURST) <= 0
    assert len(granted) >= 0.95 * RATE * DURATION_S
