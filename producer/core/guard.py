"""The recipient guard: keeps sends under NusaSMS's -77 (same text) and -78 (per number) caps.

Each recipient has two rolling windows in one Redis sorted set per (route, recipient)
(member = "<text hash>:<message id>", score = microseconds since the epoch): the same-text
window counts the members of one text hash, the per-recipient window all of them but the
provider's -77 fill (`fill_text`). The worker calls `reserve` right before the provider call
(check and reserve in one Lua script, so any number of workers stay within the limits):
ZRANGEBYSCORE, GET (the block), ZADD, PEXPIRE in the common case. At enqueue time the same
read-only check (`guard_check.lua`) runs inside the producer's accept script for fast
feedback (`peek` is that check on its own), and never writes. After the provider itself
answers -77/-78, `block` stops the recipient until a time.

Routes: SMS and OTP go out through the same NusaSMS SMS API to the same destination number,
so the provider counts them together and they share the route "sms"; WhatsApp is a separate
API with its own counts, route "wa". An OTP therefore uses up the recipient's SMS allowance.

Window boundary: an entry at time t counts while now < t + window_s and is gone at
now == t + window_s, to the microsecond.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from redis import Redis
from redis.commands.core import Script

from producer.core import lua
from producer.core.keys import Keys
from producer.core.redis_text import text

GuardReason = Literal["same_text", "per_recipient", "blocked"]

_ROUTES = {"sms": "sms", "otp": "sms", "wa": "wa"}
_US_PER_S = 1_000_000


@dataclass(frozen=True)
class GuardLimits:
    """The guard's window and caps (NusaSMS publishes the same-text cap of 10, not the other)."""

    window_s: int = 86400
    same_text_limit: int = 10
    per_recipient_limit: int = 50

    def __post_init__(self) -> None:
        for name in ("window_s", "same_text_limit", "per_recipient_limit"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"GuardLimits.{name} must be at least 1, got {value}")


@dataclass(frozen=True)
class GuardDecision:
    """Whether a message may go now; if not, why and when (epoch seconds) it could."""

    allowed: bool
    reason: GuardReason | None
    retry_at: float | None


def route_for(channel: str) -> str:
    """The guard route of a channel: "sms" for sms and otp, "wa" for wa."""
    try:
        return _ROUTES[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}: expected one of sms, otp, wa") from None


def _now_arg(now: float | None) -> str:
    """A script's time argument: microseconds, or "" for the script to use Redis TIME."""
    return "" if now is None else str(round(now * _US_PER_S))


def decision_of(reply: list[Any]) -> GuardDecision:
    """GuardDecision from a guard script's {allowed, reason, retry_us} reply."""
    allowed, reason, retry_us = (text(v) for v in reply)
    if allowed == "1":
        return GuardDecision(True, None, None)
    return GuardDecision(False, cast(GuardReason, reason), int(retry_us) / _US_PER_S)


class RecipientGuard:
    """Rolling-window caps per recipient and per (recipient, text), shared through Redis."""

    def __init__(self, redis: Redis, keys: Keys, limits: GuardLimits) -> None:
        self._redis = redis
        self._keys = keys
        self._limits = limits
        self._reserve = lua.register(redis, "guard_check", "guard_reserve", "guard_reserve_run")
        self._peek = lua.register(redis, "guard_check", "guard_peek")
        self._block = lua.register(redis, "guard_block")

    def reserve(
        self, message_id: str, route: str, recipient: str, text_hash: str,
        now: float | None = None,
    ) -> GuardDecision:
        """Check and count one send atomically; the same message id never counts twice.

        The send path makes this same reservation inside worker/lua/start.lua (one library,
        guard_reserve.lua); this entry runs it alone, at a given time (`now`) if asked."""
        args = [message_id, text_hash, _now_arg(now), *self._limit_args()]
        return decision_of(self._run(self._reserve, route, recipient, args))

    def peek(
        self, route: str, recipient: str, text_hash: str, now: float | None = None
    ) -> GuardDecision:
        """What `reserve` would answer now, without writing anything."""
        args = [text_hash, _now_arg(now), *self._limit_args()]
        return decision_of(self._run(self._peek, route, recipient, args))

    def check_spec(self, route: str, recipient: str, text_hash: str
                   ) -> tuple[list[str], list[str]]:
        """Keys and arguments for a `guard_check` (or `guard_reserve`) run inside another
        script (accept.lua, worker/lua/start.lua): keys [guard_recipient, guard_block],
        arguments [text_hash, window_us, same_text_limit, per_recipient_limit]."""
        return (self._keys_for(route, recipient),
                [text_hash, *(str(a) for a in self._limit_args())])

    @staticmethod
    def off_spec(placeholder_key: str) -> tuple[list[str], list[str]]:
        """check_spec's layout for a message the guard does not apply to (its script's
        "guard on" flag is "0"): placeholder keys and arguments the script never reads."""
        return [placeholder_key] * 2, ["", "0", "0", "0"]

    def release(self, message_id: str, route: str, recipient: str, text_hash: str) -> None:
        """Uncount a reserved message the provider did not take."""
        with self._redis.pipeline(transaction=True) as pipe:
            for key, member in self.slot(message_id, route, recipient, text_hash):
                pipe.zrem(key, member)
            pipe.execute()

    def slot(self, message_id: str, route: str, recipient: str, text_hash: str
             ) -> list[tuple[str, str]]:
        """The (window key, member) pairs that count one message: what `release` removes,
        for a caller that removes them inside another atomic step."""
        return [(self._keys.guard_recipient(route, recipient), f"{text_hash}:{message_id}")]

    def fill_text(self, route: str, recipient: str, text_hash: str) -> None:
        """Count this text to this recipient as at its cap for a whole window from now.

        After the provider itself answered -77 (its count is ahead of ours: another system
        shares the account, or its day is not ours), every queued copy of the text is then
        deferred by the guard, as our own count would have done, instead of being sent and
        refused one by one. The fill entries ("<text_hash>:provider-77:<i>") count in the
        text's window only, not in the recipient's: they stand for sends the provider counted,
        not ours.
        """
        key = self._keys.guard_recipient(route, recipient)
        now_us = round(time.time() * _US_PER_S)
        fill = {f"{text_hash}:provider-77:{i}": now_us
                for i in range(self._limits.same_text_limit)}
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, fill)
            pipe.pexpire(key, self._limits.window_s * 1000 + 10)
            pipe.execute()

    def block(self, route: str, recipient: str, until: float) -> None:
        """Refuse the recipient until `until` (epoch seconds); never shortens a longer block."""
        key = self._keys.guard_block(route, recipient)
        self._block(keys=[key], args=[str(round(until * _US_PER_S))])

    def _limit_args(self) -> list[int]:
        limits = self._limits
        return [limits.window_s * _US_PER_S, limits.same_text_limit, limits.per_recipient_limit]

    def _run(
        self, script: Script, route: str, recipient: str, args: list[Any], client: Any = None,
    ) -> list[Any]:
        return script(keys=self._keys_for(route, recipient), args=args, client=client)

    def _keys_for(self, route: str, recipient: str) -> list[str]:
        return [self._keys.guard_recipient(route, recipient),
                self._keys.guard_block(route, recipient)]


def fold_text_windows(redis: Redis, keys: Keys, scan_count: int = 1000,
                      unless_done: bool = False) -> int:
    """Upgrade the guard's data from the layout before one set per recipient: every
    per-text window (<prefix>:guard:t:<route>:<recipient>:<text hash>) folded into its
    recipient's set (guard_fold.lua, atomic per key, safe to run again and from several
    processes at once). Returns the entries moved. A pass that finds nothing sets
    `Keys.guard_folded`, and with `unless_done` a pass after that scans nothing: workers run
    it so when they start (worker/signals.py), `kirim upgrade-guard` always scans, e.g. once
    more after a rolling deploy, for what workers of the old layout wrote meanwhile."""
    if unless_done and redis.exists(keys.guard_folded):
        return 0
    fold = lua.register(redis, "guard_fold")
    head = f"{keys.prefix}:guard:t:"
    moved = found = 0
    for raw in redis.scan_iter(match=head + "*", count=scan_count):
        key = text(raw)
        parts = key[len(head):].split(":", 2)
        if len(parts) != 3:  # not a key of that layout
            continue
        route, recipient, text_hash = parts
        found += 1
        moved += int(fold(keys=[key, keys.guard_recipient(route, recipient)],
                          args=[text_hash]))
    if not found:
        redis.set(keys.guard_folded, "1")
    return moved
