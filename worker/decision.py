"""What happens to a message after a provider call: a pure function of what the provider
said, the attempt, the job and the time (no I/O; the pipeline carries the step out).

`decide` turns the status table's action and scope into one `Step`; its table test
(tests/unit/test_decision.py) pins every branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from producer.core.contract import Job
from producer.core.routing import Circuit, circuit_for
from worker.nusasms import Action, Scope
from worker.retry import RetryPolicy


class Next(StrEnum):
    """The next step of a message after a provider call."""

    SENT = "sent"  # record the provider id, start DR tracking
    UNKNOWN = "unknown"  # the provider may have it: never resent blindly
    RETRY = "retry"  # back to the queue after `delay_s`
    DEFER = "defer"  # hold until `until`; `block` says what the guard blocks
    PAUSE = "pause"  # open `circuit`, hold the message there
    DEAD = "dead"  # dead letter with `reason`
    EXPIRED = "expired"  # an OTP that can no longer be sent in time


@dataclass(frozen=True)
class Step:
    """One decision: what to do next, and the figures it needs."""

    next: Next
    reason: str = ""
    delay_s: float = 0.0
    until: float | None = None
    block: Scope = Scope.NONE  # DEFER: Scope.TEXT or Scope.RECIPIENT
    circuit: Circuit | None = None


@dataclass(frozen=True)
class Reply:
    """What one provider call said, as the decision needs it."""

    action: Action
    scope: Scope
    code: int | None
    code_name: str
    attempts: int
    min_delay_s: float = 0.0  # a Retry-After the provider asked for


def decide(reply: Reply, job: Job, now: float, policy: RetryPolicy,
           guard_window_s: float) -> Step:
    """The next step for `job` after `reply`, at `now`."""
    if reply.action == Action.DONE:
        return Step(Next.SENT)
    if reply.action == Action.UNKNOWN:
        return Step(Next.UNKNOWN, f"ambiguous: {reply.code_name}; not resent automatically")
    if reply.action == Action.RETRY:
        return _retry(reply, job, now, policy)
    if reply.action == Action.DEFER:
        if job.valid_until is not None:  # an OTP held for a day is useless
            return Step(Next.EXPIRED, f"otp_expired: {reply.code_name} at the provider",
                        block=reply.scope)
        return Step(Next.DEFER, f"provider {reply.code_name}", until=now + guard_window_s,
                    block=reply.scope)
    if reply.action == Action.PAUSE:
        return Step(Next.PAUSE, reply.code_name, circuit=circuit_for(reply.scope, job.channel))
    return Step(Next.DEAD, f"provider refused: {reply.code_name} ({reply.code})")


def _retry(reply: Reply, job: Job, now: float, policy: RetryPolicy) -> Step:
    if policy.exhausted(reply.attempts):
        return Step(Next.DEAD, f"retries exhausted after {reply.attempts} attempts")
    delay_s = min(max(policy.delay_s(reply.attempts), reply.min_delay_s), policy.max_delay_s)
    if job.valid_until is not None and now + delay_s > job.valid_until:
        return Step(Next.EXPIRED, "otp_expired: would be retried after its validity")
    return Step(Next.RETRY, f"retry in {delay_s:.1f}s", delay_s=delay_s)


def otp_expired(job: Job, now: float) -> bool:
    """True if `job` is an OTP past its validity."""
    return job.valid_until is not None and now > job.valid_until
