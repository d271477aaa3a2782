"""The pipeline's decision after a provider call, row by row (pure: no Redis, no clock)."""

from __future__ import annotations

import random

import pytest

from producer.core.contract import SendRequest
from producer.core.jobs import build_job
from producer.core.routing import Circuit
from producer.core.settings import Settings
from worker.decision import Next, Reply, Step, decide, otp_expired
from worker.nusasms import Action, Scope, lookup
from worker.retry import RetryPolicy

NOW = 1_800_000_000.0
WINDOW_S = 86400.0
POLICY = RetryPolicy(max_attempts=4, base_delay_s=2.0, max_delay_s=60.0)
SETTINGS = Settings(redis_url="redis://127.0.0.1:1/0")


def job(channel: str = "sms", validity_s: int | None = None):  # type: ignore[no-untyped-def]
    req = SendRequest(channel=channel, to="6281234567890", text="Kode 123456",
                      otp_validity_s=validity_s)
    return build_job(req, SETTINGS, now=NOW)


def reply(code: int, attempts: int = 1, otp: bool = False, min_delay_s: float = 0.0) -> Reply:
    info = lookup(code, otp=otp)
    return Reply(info.action, info.scope, code, info.name, attempts, min_delay_s)


# (channel, code, attempts) → (next, circuit, block): written out from the status table and
# the circuits' table in docs/architecture.md, not derived from the code.
ROWS = [
    ("sms", 0, 1, Next.SENT, None, Scope.NONE),
    ("sms", -33, 1, Next.UNKNOWN, None, Scope.NONE),
    ("sms", -26, 1, Next.RETRY, None, Scope.NONE),
    ("sms", -26, 4, Next.DEAD, None, Scope.NONE),  # the 4th attempt used the budget
    ("sms", -13, 1, Next.DEAD, None, Scope.NONE),
    ("sms", -10, 1, Next.DEAD, None, Scope.NONE),  # OTP-looking text without otp=Y
    ("otp", -10, 1, Next.PAUSE, Circuit.OTP, Scope.NONE),  # no OTP route
    ("sms", -2, 1, Next.PAUSE, Circuit.SMS, Scope.NONE),
    ("otp", -7, 1, Next.PAUSE, Circuit.SMS, Scope.NONE),  # OTP spends the SMS wallet
    ("wa", -2, 1, Next.PAUSE, Circuit.WA, Scope.NONE),
    ("wa", -5, 1, Next.PAUSE, Circuit.ACCOUNT, Scope.NONE),
    ("sms", -40, 1, Next.PAUSE, Circuit.ACCOUNT, Scope.NONE),
    ("sms", -22, 1, Next.PAUSE, Circuit.ACCOUNT, Scope.NONE),  # our bug: stop everything
    ("sms", -34, 1, Next.PAUSE, Circuit.SENDER, Scope.NONE),
    ("sms", -77, 1, Next.DEFER, None, Scope.TEXT),
    ("sms", -78, 1, Next.DEFER, None, Scope.RECIPIENT),
    ("otp", -78, 1, Next.EXPIRED, None, Scope.RECIPIENT),  # an OTP held for a day is useless
    ("sms", -4242, 1, Next.DEAD, None, Scope.NONE),  # a code the table does not know
]


@pytest.mark.parametrize(("channel", "code", "attempts", "next_", "circuit", "block"), ROWS)
def test_each_reply_has_its_next_step(channel, code, attempts, next_, circuit, block):  # type: ignore[no-untyped-def]
    validity = 300 if channel == "otp" else None
    step = decide(reply(code, attempts, otp=channel == "otp"), job(channel, validity), NOW,
                  POLICY, WINDOW_S)
    assert (step.next, step.circuit, step.block) == (next_, circuit, block)
    assert step.reason or next_ == Next.SENT


def test_a_deferral_waits_one_guard_window():
    step = decide(reply(-78), job(), NOW, POLICY, WINDOW_S)
    assert step.until == NOW + WINDOW_S


def test_a_retry_waits_within_the_policy_and_honours_retry_after():
    random.seed(1)
    for attempts in (1, 2, 3):
        step = decide(reply(-26, attempts), job(), NOW, POLICY, WINDOW_S)
        ceiling = min(60.0, 2.0 * 2 ** (attempts - 1))
        assert ceiling / 2 <= step.delay_s <= ceiling
    asked = decide(reply(-26, min_delay_s=45.0), job(), NOW, POLICY, WINDOW_S)
    assert asked.delay_s == 45.0
    capped = decide(reply(-26, min_delay_s=3600.0), job(), NOW, POLICY, WINDOW_S)
    assert capped.delay_s == 60.0  # never past the visibility timeout's guard


def test_an_otp_is_expired_rather_than_retried_past_its_validity():
    otp = job("otp", validity_s=10)
    assert decide(reply(-26, 1, otp=True), otp, NOW, POLICY, WINDOW_S).next == Next.RETRY
    late = decide(Reply(Action.RETRY, Scope.NONE, -26, "COMMUNICATION_ERROR", 1, 30.0), otp,
                  NOW, POLICY, WINDOW_S)
    assert late == Step(Next.EXPIRED, "otp_expired: would be retried after its validity")


def test_otp_validity():
    otp = job("otp", validity_s=10)
    assert not otp_expired(otp, NOW + 10) and otp_expired(otp, NOW + 10.001)
    assert not otp_expired(job(), NOW + 10**9)  # only OTPs expire
