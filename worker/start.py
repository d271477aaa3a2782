"""The start of a send in one round trip: claim, recipient guard, rate limit, *calling* mark.

worker/lua/start.lua joins the three scripts a send used to run one after the other
(claim.lua, guard_reserve.lua, calling.lua), so the common case (claimed, reserved, a slot
free) costs one EVALSHA, and a batch's messages share one (start_many.lua). Where a part
says no, the script stops there and says how far it got; the pipeline goes on from that
point exactly as it did with the separate scripts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from producer.core import lua
from producer.core.contract import Job
from producer.core.guard import GuardDecision, RecipientGuard, decision_of, route_for
from producer.core.records import MessageStore
from producer.core.redis_text import text
from worker.ratelimit import RateLimiter

_US_PER_S = 1_000_000
# start.lua's replies when it claimed the message (anything else is claim.lua's refusal).
CLAIMED = frozenset({"calling", "ready", "guard", "wait"})


@dataclass(frozen=True)
class Started:
    """How far a start got: `status` is "calling" (go), "ready" (a batch's: claimed, slot
    taken, to be marked just before its call: SendStarter.mark), "guard" (claimed; the guard
    said not now: `refusal`), "wait" (claimed and reserved; the rate limit says wait `wait_s`),
    or claim.lua's refusal ("paused", "stale", "state", "missing") with its `detail`."""

    status: str
    attempts: int = 0
    detail: str = ""
    wait_s: float = 0.0
    refusal: GuardDecision | None = None

    @property
    def claimed(self) -> bool:
        return self.status in CLAIMED


class SendStarter:
    """Runs start.lua for one message (start_run.lua) or for each of a batch's
    (start_many.lua: one round trip for the batch)."""

    def __init__(self, store: MessageStore, guard: RecipientGuard | None,
                 limiter: RateLimiter) -> None:
        self.store = store
        self.guard = guard
        self.limiter = limiter
        libraries = (lua.source(lua.CORE, "guard_check", "guard_reserve", "claim") + "\n"
                     + lua.source(lua.WORKER, "gcra", "start"))
        self._one = store.redis.register_script(
            libraries + "\n" + lua.source(lua.WORKER, "start_run"))
        self._many = store.redis.register_script(
            libraries + "\n" + lua.source(lua.WORKER, "start_many"))
        self._mark_many = lua.register(store.redis, "gcra", "mark_many", package=lua.WORKER)

    def start(self, job: Job, lease_s: float, dispatch: str, claim_id: str, api: str = ""
              ) -> Started:
        """Claim `job`, reserve its recipient slot, take a rate-limit slot and mark it
        *calling* (through provider API `api`: "v1", or "" for the legacy one), as far as
        each allows, atomically."""
        keys, args = self._spec(job, lease_s, dispatch, claim_id, api)
        # With KIRIM_REDIS_MIN_REPLICAS, replicas confirm the claim and the *calling* mark
        # before the provider is called (NotReplicated if not: see SendPipeline).
        reply = self.store.durability.run_script(self.store.redis, self._one, keys, args)
        return _started(reply)

    def start_many(self, starts: Sequence[Start]) -> list[Started]:
        """`start` for each of `starts`, one after the other in one atomic step (a batch's
        messages: one round trip, one replica confirmation).

        Most of a message's keys and arguments are its lane's (the lease index, the circuits,
        the limiter, the guard's limits...): they travel once, from the first message, and
        each message adds only its own (start_many.lua). Messages of another lane than the
        first's go in a step of their own."""
        if not starts:
            return []
        specs = [self._spec(one.job, one.lease_s, one.dispatch, one.claim_id, one.api)
                 for one in starts]
        keys0, args0 = specs[0]
        shared = _shared(keys0, args0)
        same = [i for i, (k, a) in enumerate(specs) if _shared(k, a) == shared]
        if len(same) < len(specs):  # another lane: its own step (never inside one batch)
            others = [i for i in range(len(specs)) if i not in set(same)]
            mine = self.start_many([starts[i] for i in same])
            rest = self.start_many([starts[i] for i in others])
            merged: dict[int, Started] = {**dict(zip(same, mine, strict=True)),
                                          **dict(zip(others, rest, strict=True))}
            return [merged[i] for i in range(len(specs))]
        n = int(args0[6])
        key_at, arg_at = _own_slots(n)
        own_keys = [k[j] for k, _ in specs for j in key_at]
        own_args = [a[j] for _, a in specs for j in arg_at]
        replies = self.store.durability.run_script(
            self.store.redis, self._many, [*keys0, *own_keys],
            [len(specs), len(keys0), len(args0), *args0, *own_args])
        return [_started(reply) for reply in replies]

    def mark_many(self, calls: Sequence[tuple[Job, str, str]]) -> list[bool]:
        """The *calling* marks of a batch's "ready" messages (job, claim id, provider API),
        in one step (mark_many.lua), just before their calls: per message, True when marked,
        False when its claim no longer holds a live lease. Raises NotReplicated when
        replicas did not confirm them."""
        keys = [self.store.keys.message(job.id) for job, _, _ in calls]
        args: list[Any] = [f"{time.time() * _US_PER_S:.0f}"]
        for _, claim_id, api in calls:
            args += [claim_id, api]
        replies = self.store.durability.run_script(self.store.redis, self._mark_many, keys,
                                                   args)
        return [text(reply) == "calling" for reply in replies]

    def _spec(self, job: Job, lease_s: float, dispatch: str, claim_id: str, api: str
              ) -> tuple[list[Any], list[Any]]:
        keys, args = self.store.claim_spec(job.id, lease_s, dispatch, job.channel, claim_id)
        if self.guard is not None and job.to is not None:
            # [recipient key, block key], [text hash, window, same-text, per-recipient limit]
            guard_keys, guard_args = self.guard.check_spec(route_for(job.channel), job.to,
                                                           job.text_hash)
            guard_on = "1"
        else:  # no guard (or a group send): placeholders the script does not touch
            (guard_keys, guard_args), guard_on = RecipientGuard.off_spec(keys[0]), "0"
        return ([*keys, *guard_keys, self.limiter.key],
                [*args, guard_on, *guard_args, self.limiter.interval_us,
                 self.limiter.tolerance_us, api])


def _own_slots(n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Where a message's own keys and arguments sit in start.lua's layout (0-based; `n`
    circuits): record, timeline, the guard's recipient and block keys; id, lease end,
    dispatch token, claim id, guard on, text hash, API. start_many.lua puts them in the same
    places."""
    return (0, 1, 5 + 2 * n, 6 + 2 * n), (0, 3, 4, 5, 7 + n, 8 + n, 14 + n)


def _shared(keys: list[Any], args: list[Any]) -> tuple[Any, ...]:
    """A message's lane part of start.lua's keys and arguments (all but its own and the
    clock reading `now`, which the first message's stands for)."""
    key_at, arg_at = _own_slots(int(args[6]))
    return (len(keys), len(args),
            *(k for i, k in enumerate(keys) if i not in key_at),
            *(a for i, a in enumerate(args) if i not in arg_at and i != 1))


@dataclass(frozen=True)
class Start:
    """One message of start_many: `start`'s arguments."""

    job: Job
    lease_s: float
    dispatch: str
    claim_id: str
    api: str = ""


def _started(reply: list[Any]) -> Started:
    status = text(reply[0])
    if status in ("calling", "ready"):
        return Started(status, int(reply[1]))
    if status == "wait":
        return Started(status, int(reply[1]), wait_s=int(reply[2]) / _US_PER_S)
    if status == "guard":
        refusal = decision_of([b"0", reply[2], reply[3]])
        return Started(status, int(reply[1]), refusal=refusal)
    return Started(status, detail=text(reply[1]))
