"""The send pipeline: claim → OTP validity → recipient guard → rate limit → provider → record.

The claim comes first so that only one task copy ever does the rest; every later step either
sends, or puts the message somewhere it will be picked up again (queued, deferred, held), or
ends it (dead, expired, unknown). Nothing here decides by provider code: the status table and
the exception classes of worker.nusasms carry the outcome.
"""

from __future__ import annotations

import json
import time
from typing import Any

import structlog
from pydantic import ValidationError

from producer.contract import Channel, Job, State
from producer.deadletters import dead_letter_fields
from producer.guard import route_for
from producer.recipient import mask_recipient
from worker import metrics
from worker.nusasms import NusaSMSError, Outcome
from worker.outcomes import Attempt
from worker.services import Services

log = structlog.get_logger("kirim.pipeline")

# A rate-limit wait shorter than this is slept in the worker thread; a longer one requeues.
MAX_RATE_SLEEP_S = 0.5


class SendPipeline:
    """Processes one `kirim.send` task."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.store = svc.store
        self.rec = svc.recorder

    def process(self, raw: Any, dispatch: str | None) -> str:
        """Handle one task payload; returns a short outcome label (for logs and metrics)."""
        job = self._decode(raw)
        if job is None:
            return "poison"
        if not dispatch:
            self._adopt(job)  # a foreign Celery client enqueued without a record
        status, detail = self.store.claim(job.id, self.svc.settings.send_lease_s, dispatch or "")
        if status != "claimed":
            return self._unclaimed(job, status, detail)
        return self._claimed(job, int(detail))

    def _claimed(self, job: Job, attempts: int) -> str:
        if self._otp_expired(job):
            return "expired"
        if not self._guard_allows(job, attempts):
            return "deferred"
        wait_s = self.svc.limiter.acquire_blocking(MAX_RATE_SLEEP_S)
        if wait_s > 0:
            self.svc.dispatcher.requeue(job.id, allowed_from=[State.SENDING], countdown_s=wait_s,
                                        note="rate limit", set_fields={"attempts": attempts - 1})
            return "rate_limited"
        if self._otp_expired(job):  # again: the rate limit may have slept past its validity
            return "expired"
        return self._call(job, attempts)

    def _otp_expired(self, job: Job) -> bool:
        """Expire an OTP past its validity (freeing its guard slot); True if it did."""
        if job.valid_until is None or time.time() <= job.valid_until:
            return False
        self._release(job)
        self.rec.expired(job, "otp_expired: validity ran out before it could be sent")
        return True

    def _decode(self, raw: Any) -> Job | None:
        try:
            return Job.model_validate(raw)
        except ValidationError as exc:
            self._poison(raw, exc)
            return None

    def _poison(self, raw: Any, exc: ValidationError) -> None:
        """Dead-letter a payload that cannot be a job; it is never retried."""
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        mid = str(raw.get("id", "")) if isinstance(raw, dict) else ""
        payload = json.dumps(raw, default=str)[:20000]
        entry = dead_letter_fields(mid, "invalid_payload", None, "INVALID_PAYLOAD", 0,
                                   problems, time.time(), payload)
        self.svc.redis.xadd(self.svc.keys.dead_letters, dict(zip(entry[::2], entry[1::2],
                                                                 strict=True)))
        log.error("poison_message", message_id=mid, errors=problems[:500])

    def _adopt(self, job: Job) -> None:
        self.store.create(job, State.QUEUED, self.svc.keys.outbox, time.time(),
                          note="enqueued by a Celery client")

    def _unclaimed(self, job: Job, status: str, detail: str) -> str:
        if status == "state" and detail == State.SENDING:
            record = self.store.get(job.id)
            lease = float(record.get("lease_until") or 0) if record else 0.0
            if lease and lease < time.time() and self.rec.unknown(
                    job, Attempt(None, "WORKER_LOST", ""), "worker lost during the provider call",
                    lease_expired_by=time.time()):
                return "unknown"
        log.info("not_claimed", message_id=job.id, status=status, detail=detail)
        return f"skipped_{status}"

    def _guard_allows(self, job: Job, attempts: int) -> bool:
        guard = self.svc.guard
        if guard is None or job.to is None:
            return True
        decision = guard.reserve(job.id, route_for(job.channel), job.to, job.text_hash)
        if decision.allowed:
            return True
        metrics.guard_refused(job, decision.reason)
        until = decision.retry_at or time.time() + self.svc.settings.guard_window_s
        at = Attempt(None, "GUARD", decision.reason or "", attempts=attempts)
        if job.valid_until is not None and until > job.valid_until:
            self.rec.expired(job, f"otp_expired: recipient limit ({decision.reason})")
        else:
            self.rec.defer(job, at, until, f"recipient limit: {decision.reason}")
        return False

    def _call(self, job: Job, attempts: int) -> str:
        bound = log.bind(message_id=job.id, channel=job.channel.value,
                         to=mask_recipient(job.to) if job.to else f"group:{job.group}")
        try:
            result = self._send(job)
        except NusaSMSError as exc:
            bound.warning("provider_error", error=type(exc).__name__, outcome=exc.outcome.value)
            metrics.provider_error(job, exc)
            at = Attempt(None, type(exc).__name__, str(exc), attempts=attempts)
            return self._apply(job, exc.outcome, at, getattr(exc, "retry_after_s", None) or 0.0)
        info = result.status
        # Counted per code so an operator sees -77/-78 from the provider (their limit is
        # lower than ours, or another system shares the account) without reading logs.
        self.svc.redis.hincrby(self.svc.keys.provider_codes, str(info.code), 1)
        metrics.provider_reply(job, info.code, info.name, getattr(result, "elapsed_s", 0.0))
        bound.info("provider_reply", code=info.code, name=info.name, outcome=info.outcome.value)
        at = Attempt(info.code, info.name, result.raw, _provider_id(result), attempts)
        return self._apply(job, info.outcome, at, 0.0)

    def _send(self, job: Job) -> Any:
        client = self.svc.client
        if job.group is not None:
            return client.send_group(job.group, job.text)
        if job.channel == Channel.WA:
            return client.send_wa(job.to or "", job.text)
        return client.send_sms(job.to or "", job.text, otp=job.channel == Channel.OTP)

    def _apply(self, job: Job, outcome: Outcome, at: Attempt, min_delay_s: float) -> str:
        if outcome == Outcome.DONE:
            note = "" if at.code != -33 else "the provider already had it (-33)"
            if not self.rec.sent(job, at, note):
                # Only an operator's `settle` can have moved it meanwhile: say so loudly,
                # with the provider's id, so the operator can reconcile.
                log.error("sent_not_recorded", message_id=job.id, provider_id=at.provider_id,
                          hint="the provider accepted it after it was settled by hand")
            return "sent"
        if outcome == Outcome.UNKNOWN:
            self.rec.unknown(job, at, f"ambiguous: {at.code_name}; not resent automatically")
            return "unknown"
        self._release(job)  # the provider did not take it: free the guard slot
        if outcome == Outcome.RETRY:
            return self._retry(job, at, min_delay_s)
        if outcome == Outcome.DEFER:
            return self._defer_recipient(job, at)
        if outcome == Outcome.PAUSE:
            return self._pause(job, at)
        self.rec.dead(job, at, f"provider refused: {at.code_name} ({at.code})")
        return "dead"

    def _retry(self, job: Job, at: Attempt, min_delay_s: float) -> str:
        policy = self.svc.policy
        if policy.exhausted(at.attempts):
            self.rec.dead(job, at, f"retries exhausted after {at.attempts} attempts")
            return "dead"
        delay = min(max(policy.delay_s(at.attempts), min_delay_s), policy.max_delay_s)
        if job.valid_until is not None and time.time() + delay > job.valid_until:
            self.rec.expired(job, "otp_expired: would be retried after its validity")
            return "expired"
        self.rec.retry(job, at, delay)
        return "retry"

    def _defer_recipient(self, job: Job, at: Attempt) -> str:
        """-78: the provider says the number is full; block it for a window and defer."""
        until = time.time() + self.svc.settings.guard_window_s
        if self.svc.guard is not None and job.to:
            self.svc.guard.block(route_for(job.channel), job.to, until)
        log.warning("provider_recipient_limit", message_id=job.id, code=at.code,
                    hint="the provider's per-number cap is lower than"
                         " KIRIM_GUARD_PER_RECIPIENT_LIMIT, or another system shares the account")
        if job.valid_until is not None:
            self.rec.expired(job, "otp_expired: recipient limit reached at the provider")
            return "expired"
        self.rec.defer(job, at, until, f"provider {at.code_name}")
        return "deferred"

    def _pause(self, job: Job, at: Attempt) -> str:
        if self.svc.circuit.pause(at.code_name, at.code if at.code is not None else ""):
            log.error("account_paused", code=at.code, name=at.code_name,
                      hint="sending stopped; `kirim account resume` after fixing the account")
        self.rec.hold(job, at, at.code_name)
        if not self.svc.circuit.state().paused:
            # Resumed between our pause and our hold: the resume did not see this message.
            self.svc.dispatcher.requeue(job.id, allowed_from=[State.DEFERRED],
                                        note="account resumed while holding")
        return "paused"

    def _release(self, job: Job) -> None:
        if self.svc.guard is not None and job.to is not None:
            self.svc.guard.release(job.id, route_for(job.channel), job.to, job.text_hash)


def _provider_id(result: Any) -> str | None:
    return getattr(result, "message_id", None) or getattr(result, "campaign_name", None)
