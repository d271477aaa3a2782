"""Each API key's rate limit, shared by every API replica (a GCRA limiter in Redis).

A request costs the number of messages it carries (a batch of 500 costs 500), so a key's
`rate_per_s` is in messages. Refused requests change nothing and get 429 with Retry-After.

The check runs on the event loop through an asyncio Redis client: a thread-pool hop per
request (the sync client) halved single-message enqueue throughput.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis as AsyncRedis

from producer.api.auth import Caller
from producer.api.errors import ApiError
from producer.core import lua
from producer.core.keys import Keys
from producer.core.redis_connect import connect_async_redis
from producer.core.settings import Settings


class KeyQuota:
    """Takes messages from a key's allowance, or says how long to wait."""

    def __init__(self, settings: Settings, keys: Keys) -> None:
        self.keys = keys
        # One Redis, or the master the Sentinels name (redis.asyncio's Sentinel).
        self.redis: AsyncRedis = connect_async_redis(settings)
        self._take = self.redis.register_script(lua.source(lua.CORE, "key_rate"))

    async def take(self, caller: Caller, cost: int) -> None:
        """Consume `cost` messages of `caller`'s rate, or raise ApiError (429, or 422 when
        `cost` is more than the key may ever send at once)."""
        rate = caller.policy.rate_per_s or 1.0
        burst = caller.policy.burst or 1
        if cost > burst:
            # Never allowed, however long the client waits: not a 429 with Retry-After.
            raise ApiError(422, "over_burst", f"messages: {cost} in one request; key"
                           f" {caller.name!r} may send at most {burst} at once (its burst):"
                           " split the batch", "messages")
        interval_us = max(1, round(1_000_000 / rate))
        wait_us = int(await self._take(keys=[self.keys.key_rate(caller.name)],
                                       args=[interval_us, burst, cost]))
        if wait_us > 0:
            wait_s = math.ceil(wait_us / 1_000_000)
            raise ApiError(429, "rate_limited", f"key {caller.name!r} is over its rate of"
                           f" {rate:g} messages/s: retry after {wait_s} s", None,
                           headers={"Retry-After": str(wait_s)})

    async def aclose(self) -> None:
        """Release the async connections."""
        await self.redis.aclose()
