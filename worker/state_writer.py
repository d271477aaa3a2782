"""Record what a provider call ended in: one atomic move per result, with its index updates.

Which action applies comes from the status table or the exception class (worker.nusasms);
this module only writes it down: sent, retry, defer, pause, dead or unknown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from producer.core.contract import Job, State
from producer.core.deadletters import dead_letter_fields
from producer.core.quarantine import DATA_ERRORS, quarantine
from producer.core.records import Effects, MessageStore
from producer.core.requeue import Requeuer
from producer.core.routing import Circuit

log = structlog.get_logger("kirim.state_writer")


@dataclass(frozen=True)
class Attempt:
    """What one provider call told us, for the record."""

    code: int | None
    code_name: str
    reply: str
    provider_id: str | None = None
    attempts: int = 0


class StateWriter:
    """Writes what became of `sending` messages: one atomic move per result."""

    def __init__(self, store: MessageStore, requeuer: Requeuer, dr_first_poll_s: float) -> None:
        self.store = store
        self.keys = store.keys
        self.requeuer = requeuer
        self.dr_first_poll_s = dr_first_poll_s

    def _fields(self, attempt: Attempt, reason: str = "") -> dict[str, object]:
        return {"last_code": "" if attempt.code is None else attempt.code,
                "last_code_name": attempt.code_name, "last_reply": attempt.reply[:500],
                "reason": reason}

    def sent(self, job: Job, attempt: Attempt, note: str = "", claim: str | None = None) -> bool:
        """Accepted by the provider: keep its id, count its code and start delivery-report
        tracking.

        `claim` (every method here): only while that claim holds the message, so a sender
        that outlived its lease cannot move a message another sender now holds.
        """
        return self.store.move(job.id, State.SENT, **self._sent_move(job, attempt, note, claim)
                               ).ok

    def sent_many(self, sends: Sequence[tuple[Job, Attempt, str]]) -> list[bool]:
        """`sent` for each (job, attempt, claim), one after the other in one atomic step
        (a batch's accepted calls: one round trip); whether each moved."""
        moves = [self.store.move_spec(job.id, State.SENT,
                                      **self._sent_move(job, attempt, "", claim))
                 for job, attempt, claim in sends]
        return [moved.ok for moved in self.store.move_many(moves)]

    def _sent_move(self, job: Job, attempt: Attempt, note: str, claim: str | None
                   ) -> dict[str, Any]:
        fx = Effects(zrem=[(self.keys.sending, job.id), (self.keys.unknown, job.id)])
        if attempt.code is not None:  # the per-code count, in the same step
            fx.hincrby.append((self.keys.provider_codes, str(attempt.code), 1))
        if attempt.provider_id and job.to:
            fx.zadd.append((self.keys.dr_pending, time.time() + self.dr_first_poll_s, job.id))
            fx.setex.append((self.keys.by_provider_id(attempt.provider_id), job.id,
                             self.store.ttl_s))
        fields = {**self._fields(attempt), "provider_id": attempt.provider_id or "",
                  "sent_at": time.time()}
        return {"note": note or f"provider id {attempt.provider_id}", "set_fields": fields,
                "effects": fx, "claim": claim}

    def retry(self, job: Job, attempt: Attempt, delay_s: float, claim: str | None = None) -> bool:
        """Back to `queued`, published again after `delay_s`."""
        return self.requeuer.requeue(
            job.id, allowed_from=[State.SENDING], countdown_s=delay_s,
            note=f"retry in {delay_s:.1f}s after {attempt.code_name}",
            set_fields=self._fields(attempt), claim=claim)

    def defer(self, job: Job, attempt: Attempt, until: float, reason: str,
              claim: str | None = None) -> bool:
        """Hold until `until` in the deferred set (released by beat)."""
        fx = Effects(zrem=[(self.keys.sending, job.id)], zadd=[(self.keys.deferred, until, job.id)])
        return self.store.move(job.id, State.DEFERRED, note=f"{reason} until {until:.0f}",
                               set_fields={**self._fields(attempt, reason), "release_at": until},
                               effects=fx, claim=claim).ok

    def hold(self, job: Job, attempt: Attempt, circuit: Circuit, claim: str | None = None) -> bool:
        """Park while `circuit` is paused; released when it resumes."""
        fx = Effects(zrem=[(self.keys.sending, job.id)],
                     sadd=[(self.keys.held(circuit.value), job.id)])
        return self.store.move(job.id, State.DEFERRED,
                               note=f"circuit {circuit.value} paused: {attempt.code_name}",
                               set_fields=self._fields(attempt, "account_paused"), effects=fx,
                               claim=claim).ok

    def poisoned(self, raw: Any, exc: ValidationError) -> None:
        """A task payload that cannot be a job: its record (if any) is quarantined, and a
        dead letter keeps the payload either way. It is never retried."""
        mid = str(raw.get("id", "")) if isinstance(raw, dict) else ""
        payload = json.dumps(raw, default=str)  # an OTP's is kept without its text
        if mid and self._stored_job_unreadable(mid):
            quarantine(self.store, mid, exc, payload)  # also stops the sweeps meeting it
            return
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        record = self.store.get(mid) if mid else None  # a bad copy of an OTP: keep no text
        entry = dead_letter_fields(mid, "invalid_payload", None, "INVALID_PAYLOAD", 0,
                                   problems, time.time(), payload,
                                   channel=record.fields.get("channel") if record else None)
        self.store.redis.xadd(self.keys.dead_letters,
                              dict(zip(entry[::2], entry[1::2], strict=True)))
        log.error("poison_message", message_id=mid, errors=problems[:500])

    def _stored_job_unreadable(self, message_id: str) -> bool:
        """True if a record exists and its own job does not read back: only then is the
        record poisoned. A bad copy (a foreign client, a mixed-version deploy) of a good
        record must not kill it."""
        record = self.store.get(message_id)
        if record is None:
            return False
        try:
            record.job  # noqa: B018 - reading it is the check
        except DATA_ERRORS:
            return True
        return False

    def dead(self, job: Job, attempt: Attempt, reason: str, claim: str | None = None) -> bool:
        """Give up: dead letter with the whole job (an OTP's without its text, which the
        record loses in the same step), the code and the last reply."""
        entry = dead_letter_fields(job.id, reason, attempt.code, attempt.code_name,
                                   attempt.attempts, attempt.reply, time.time(),
                                   job.model_dump_json(), job.channel)
        fx = Effects(zrem=[(self.keys.sending, job.id), (self.keys.deferred, job.id),
                           (self.keys.unknown, job.id)],
                     xadd=[(self.keys.dead_letters, entry)])
        return self.store.move(job.id, State.DEAD, note=reason,
                               set_fields=self._fields(attempt, reason), effects=fx,
                               claim=claim).ok

    def unknown(self, message_id: str, attempt: Attempt, reason: str,
                lease_expired_by: float | None = None, claim: str | None = None) -> bool:
        """The provider may have the message: never resend blindly; an operator or DR settles.

        `lease_expired_by`: only if the sender's lease ran out by then (a live sender that
        claimed the message again has renewed it).
        """
        fx = Effects(zrem=[(self.keys.sending, message_id)],
                     zadd=[(self.keys.unknown, time.time(), message_id)])
        return self.store.move(message_id, State.UNKNOWN, note=reason,
                               set_fields=self._fields(attempt, reason), effects=fx,
                               lease_expired_by=lease_expired_by, claim=claim).ok

    def expired(self, job: Job, reason: str, claim: str | None = None) -> bool:
        """Not worth sending any more (an OTP past its validity)."""
        fx = Effects(zrem=[(self.keys.sending, job.id), (self.keys.deferred, job.id),
                           (self.keys.outbox, job.id)])
        return self.store.move(job.id, State.EXPIRED, note=reason, set_fields={"reason": reason},
                               effects=fx, claim=claim).ok
