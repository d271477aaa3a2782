"""The start of a send in one round trip: claim, recipient guard, rate limit, *calling* mark.

worker/lua/start.lua joins the three scripts a send used to run one after the other
(claim.lua, guard_reserve.lua, calling.lua), so the common case (claimed, reserved, a slot
free) costs one EVALSHA. Where a part says no, the script stops there and says how far it
got; the pipeline goes on from that point exactly as it did with the separate scripts.
"""

from __future__ import annotations

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
CLAIMED = frozenset({"calling", "guard", "wait"})


@dataclass(frozen=True)
class Started:
    """How far a start got: `status` is "calling" (go), "guard" (claimed; the guard said
    not now: `refusal`), "wait" (claimed and reserved; the rate limit says wait `wait_s`),
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
    """Runs start.lua for one message."""

    def __init__(self, store: MessageStore, guard: RecipientGuard | None,
                 limiter: RateLimiter) -> None:
        self.store = store
        self.guard = guard
        self.limiter = limiter
        self._script = store.redis.register_script(
            lua.source(lua.CORE, "guard_check", "guard_reserve", "claim") + "\n"
            + lua.source(lua.WORKER, "gcra", "start"))

    def start(self, job: Job, lease_s: float, dispatch: str, claim_id: str, api: str = ""
              ) -> Started:
        """Claim `job`, reserve its recipient slot, take a rate-limit slot and mark it
        *calling* (through provider API `api`: "v1", or "" for the legacy one), as far as
        each allows, atomically."""
        keys, args = self.store.claim_spec(job.id, lease_s, dispatch, job.channel, claim_id)
        if self.guard is not None and job.to is not None:
            guard_keys, limits = self.guard.check_spec(route_for(job.channel), job.to,
                                                       job.text_hash)
            guard_on = "1"
        else:  # no guard (or a group send): placeholders the script does not touch
            guard_keys, limits, guard_on = [keys[0]] * 3, ["0", "0", "0"], "0"
        # With KIRIM_REDIS_MIN_REPLICAS, replicas confirm the claim and the *calling* mark
        # before the provider is called (NotReplicated if not: see SendPipeline).
        reply: list[Any] = self.store.durability.run_script(
            self.store.redis, self._script, [*keys, *guard_keys, self.limiter.key],
            [*args, guard_on, *limits, self.limiter.interval_us, self.limiter.tolerance_us,
             api])
        status = text(reply[0])
        if status == "calling":
            return Started(status, int(reply[1]))
        if status == "wait":
            return Started(status, int(reply[1]), wait_s=int(reply[2]) / _US_PER_S)
        if status == "guard":
            refusal = decision_of([b"0", reply[2], reply[3]])
            return Started(status, int(reply[1]), refusal=refusal)
        return Started(status, detail=text(reply[1]))
