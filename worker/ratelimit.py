"""The account's global send rate: GCRA in one Lua script, shared by every worker process.

All state is one Redis string (the theoretical arrival time) that expires once the limiter
is idle, so workers can come and go. Time is Redis `TIME` in microseconds unless a test
passes `now`. `burst` is how many sends may go at once after an idle spell; over any span of
d seconds at most `rate_per_s * d + burst` are granted.
"""

from __future__ import annotations

import math
import time

from redis import Redis

from producer.core import lua
from producer.core.durability import Durability
from producer.core.redis_text import text

_US_PER_S = 1_000_000


class RateLimiter:
    """A GCRA limiter of `rate_per_s` sends a second with bursts of up to `burst`."""

    def __init__(self, redis: Redis, key: str, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(
                f"rate limiter {key!r}: rate_per_s must be > 0 and burst >= 1,"
                f" got {rate_per_s} and {burst}"
            )
        self.redis = redis
        self.key = key
        self.rate_per_s = rate_per_s
        self.burst = burst
        # Whole microseconds keep the script's arithmetic exact; rounding up means the limit
        # is never exceeded, at a cost under 1 µs per interval (1e-9 absorbs float noise).
        self.interval_us = max(1, math.ceil(_US_PER_S / rate_per_s - 1e-9))
        # burst - 1 intervals of tolerance let `burst` sends through at the same instant.
        self.tolerance_us = (burst - 1) * self.interval_us
        self._script = lua.register(redis, "gcra", "rate", package=lua.WORKER)
        self._calling = lua.register(redis, "gcra", "calling", package=lua.WORKER)

    def acquire(self, now: float | None = None) -> float:
        """Take one send slot: 0.0 if granted, else the seconds to wait (nothing taken)."""
        return self.attempt(now)[0]

    def attempt(self, now: float | None = None) -> tuple[float, float]:
        """Like `acquire`, also returning the time (epoch seconds) the decision was made at."""
        now_arg = "" if now is None else str(round(now * _US_PER_S))
        wait_us, at_us = self._script(
            keys=[self.key], args=[self.interval_us, self.tolerance_us, now_arg]
        )
        return int(wait_us) / _US_PER_S, int(at_us) / _US_PER_S

    def mark_calling(self, record_key: str, claim_id: str,
                     durability: Durability | None = None, api: str = "") -> tuple[str, float]:
        """Take one slot and mark the claimed message *calling* (calling.lua), atomically.

        ("calling", 0.0) once marked; ("wait", seconds) when the limit says not yet (nothing
        taken); ("lost", why) when `claim_id` no longer holds a live lease on the message.
        With `durability`, replicas confirm the mark (NotReplicated if they do not); `api`
        ("v1") is recorded with it when the call does not go through the legacy API.
        """
        keys = [self.key, record_key]
        args = [self.interval_us, self.tolerance_us, claim_id, api]
        status, detail = (durability or Durability()).run_script(self.redis, self._calling,
                                                                 keys, args)
        status = text(status)
        if status == "wait":
            return status, int(detail) / _US_PER_S
        return status, 0.0

    def acquire_blocking(self, max_sleep_s: float) -> float:
        """Sleep through waits totalling at most max_sleep_s: 0.0 once granted, else the wait."""
        slept_s = 0.0
        while True:
            wait_s = self.acquire()
            # Bounded in total, not per wait: under contention a thread could lose every
            # race, and a task holding a worker thread that long should reschedule instead.
            if wait_s == 0.0 or slept_s + wait_s > max_sleep_s:
                return wait_s
            time.sleep(wait_s)
            slept_s += wait_s
