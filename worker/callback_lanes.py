"""Redis side of status callbacks: lanes, their schedule, and per-host circuit breakers.

A lane is one message's unfinished events (worker/lua/callback_lanes.lua). Events enter their
lane in the same Lua step that reads them from the stream, and a lane's next attempt is its
score in a sorted set: a drain finds due retries by score, however many lanes are backing
off. The consumer group's pending list only says which events are not finished yet.

Both live in Redis so every worker shares them: a lane is leased to one drain at a time, and a
host's breaker opens for all workers at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis import Redis
from redis.exceptions import ResponseError

from producer.core import lua
from producer.core.keys import Keys
from producer.core.redis_text import text

# An event's stream fields and its stored attempts ("n:epoch"), as Redis returned them: raw,
# so that a field that is not UTF-8 poisons that one event (callbacks.event_fields), not the
# drain's read.
Found = tuple[dict[bytes, bytes], bytes | None]


def receiver_host(url: str) -> str:
    """The breaker's and the cap's unit: "host:port" of a callback URL (never its userinfo)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"unusable callback_url: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("callback_url is not an http(s) URL with a host")
    return f"{parsed.host}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"


@dataclass
class Lane:
    """One message's unfinished events, leased to one drain."""

    key: bytes  # the message id exactly as stored: it goes back to Redis unchanged
    eids: list[str]
    url: str = ""
    host: str = ""  # "" when there is no usable callback_url
    url_error: str = ""  # why the callback_url is unusable (its events are poisoned)
    source: str = ""  # the key that created the message: its secrets sign, its policy applies
    refusal: str = ""  # why its URL may not be reached (its events are finished as refused)
    trial: bool = False  # holds its host's half-open trial: one POST decides
    format: str = "kirim"  # "nusasms": NusaSMS's DR callback (a GET at the final report)
    alias: str = ""  # the drop-in's 18-digit messageid (the ref_no of a "nusasms" callback)
    mid: str = field(init=False)

    def __post_init__(self) -> None:
        # Lossy on purpose: `mid` is only logged and looked up; the lane is finished and
        # settled by `key`, so an id that is not UTF-8 still leaves without stopping the drain.
        self.mid = text(self.key, errors="replace")

    def point_at(self, url: str) -> None:
        """Set the lane's callback URL and its host (or why it cannot be used)."""
        self.url = url
        if url:
            try:
                self.host = receiver_host(url)
            except ValueError as exc:
                self.url_error = str(exc)


class LaneStore:
    """Status-callback lanes in Redis, shared by every worker's drain."""

    def __init__(self, redis: Redis, keys: Keys, group: str, consumer: str) -> None:
        self.redis, self.keys, self.group, self.consumer = redis, keys, group, consumer
        self._intake = lua.register(redis, "callback_lanes", "callback_intake", package=lua.WORKER)
        self._sweep = lua.register(redis, "callback_lanes", "callback_sweep", package=lua.WORKER)
        self._finish = lua.register(redis, "callback_lanes", "callback_finish", package=lua.WORKER)
        self._take = lua.register(redis, "callback_take", package=lua.WORKER)
        self._settle = lua.register(redis, "callback_settle", package=lua.WORKER)

    def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start) unless it exists."""
        try:
            self.redis.xgroup_create(self.keys.events, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _index_keys(self) -> list[str]:
        k = self.keys
        return [k.events, k.callback_lanes, k.callback_due, k.callback_stats]

    def intake(self, count: int) -> tuple[int, list[str]]:
        """Read up to `count` new events into lanes: (how many, ids poisoned on the way)."""
        read, poisoned = self._intake(keys=self._index_keys(),
                                      args=[self.group, self.consumer, count, time.time()])
        return int(read), [text(e) for e in poisoned]

    def sweep(self, min_idle_ms: int, count: int) -> list[str]:
        """Index a page of long-pending events no lane holds; returns ids poisoned."""
        _, poisoned = self._sweep(keys=[*self._index_keys(), self.keys.callback_sweep],
                                  args=[self.group, self.consumer, min_idle_ms, count,
                                        time.time()])
        return [text(e) for e in poisoned]

    def take(self, count: int, lease_s: float) -> list[Lane]:
        """Lease up to `count` due lanes, soonest first, with their callback URLs and sources."""
        now = time.time()
        raw: Any = self._take(keys=[self.keys.callback_due, self.keys.callback_lanes],
                              args=[now, now + lease_s, count])
        lanes = [Lane(raw[i], text(raw[i + 1]).split()) for i in range(0, len(raw), 2)]
        pipe = self.redis.pipeline(transaction=False)
        for lane in lanes:
            pipe.hmget(self.keys.message(lane.mid), "callback_url", "source",
                       "callback_format", "nusasms_id")
        for lane, (url, source, fmt, alias) in zip(lanes, pipe.execute(), strict=True):
            # Lossy on purpose: one record's field that is not UTF-8 must not stop the take of
            # every lane (a mangled source has no secret: its events finish as unsigned).
            lane.point_at(text(url, errors="replace"))
            lane.source = text(source, errors="replace")
            lane.format = text(fmt, errors="replace") if fmt else "kirim"
            lane.alias = text(alias, errors="replace") if alias else ""
        return lanes

    def events(self, eids: Sequence[str]) -> dict[str, Found]:
        """Each event still in the stream, with its stored attempts."""
        pipe = self.redis.pipeline(transaction=False)
        for eid in eids:
            pipe.xrange(self.keys.events, eid, eid, count=1)
            pipe.hget(self.keys.callback_attempts, eid)
        replies = pipe.execute()
        found: dict[str, Found] = {}
        for eid, entries, attempts in zip(eids, replies[::2], replies[1::2], strict=True):
            if entries:
                found[eid] = (entries[0][1], attempts)
        return found

    def set_attempts(self, eid: str, attempts: int, next_at: float) -> None:
        """Store an event's failed POSTs and when the next may go."""
        self.redis.hset(self.keys.callback_attempts, eid, f"{attempts}:{next_at}")

    def finish(self, lane: Lane, eid: str, result: str, healthy_host: str = "") -> None:
        """Ack, delete and count one event; a delivered one also closes its host's breaker."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        self._finish(keys=[k.events, k.callback_attempts, k.callback_stats, k.callback_lanes],
                     args=[self.group, eid, lane.key, result], client=pipe)
        if healthy_host:
            pipe.delete(k.callback_breaker(healthy_host))
        pipe.execute()

    def settle(self, lane: Lane, when: float) -> None:
        """Give the lane back: due at `when` if it still has events."""
        self._settle(keys=[self.keys.callback_lanes, self.keys.callback_due],
                     args=[lane.key, when])


class Breaker:
    """Per-host circuit breakers in Redis (worker/lua/callback_breaker.lua)."""

    def __init__(self, redis: Redis, keys: Keys, failures: int, cooldown_s: float,
                 max_cooldown_s: float, trial_lease_s: float) -> None:
        self.redis, self.keys = redis, keys
        self.failures, self.cooldown_s, self.max_cooldown_s = failures, cooldown_s, max_cooldown_s
        self.trial_lease_s = trial_lease_s
        self.ttl_s = int(max_cooldown_s) + 3600  # a host that never comes back is forgotten
        self._script = lua.register(redis, "callback_breaker", package=lua.WORKER)

    def check(self, host: str, now: float) -> tuple[str, float]:
        """closed, open (until), busy (another drain's trial) or trial (ours: one POST)."""
        state, until = self._script(keys=[self.keys.callback_breaker(host)],
                                    args=["check", now, now + self.trial_lease_s])
        return text(state), float(until)

    def failed(self, host: str, now: float) -> tuple[str, float]:
        """Count a failed POST: closed, open (until: it already was) or opened (until)."""
        state, until = self._script(
            keys=[self.keys.callback_breaker(host)],
            args=["fail", now, self.failures, self.cooldown_s, self.max_cooldown_s, self.ttl_s])
        return text(state), float(until)
