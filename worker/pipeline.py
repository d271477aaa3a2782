"""The send pipeline: OTP validity → claim + recipient guard + rate limit + *calling* (one
atomic step, worker/start.py) → provider → record.

The claim comes first so that only one task copy ever does the rest; it only stops a second
copy. The provider call waits for the *calling* mark, taken in the same atomic step as the
rate-limit slot (worker/lua/start.lua, or calling.lua after a rate-limit wait): a sender lost
before it never reached the provider and its message is requeued (worker.leases); after it,
an unknown fate is `unknown`. Every later step either sends, or puts the message somewhere it
will be picked up again (queued, deferred, held), or ends it (dead, expired, unknown).
Nothing here decides by provider code: the status table and the exception classes of
worker.nusasms carry the action and its scope."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError

from producer.core.contract import Channel, Job, State
from producer.core.durability import NotReplicated
from producer.core.entropy import token_hex
from producer.core.guard import GuardDecision, route_for
from producer.core.recipient import mask_recipient
from producer.core.redis_connect import REDIS_DOWN
from producer.core.routing import Circuit
from producer.core.segments import text_hash
from worker import metrics
from worker.decision import Next, Reply, Step, decide, otp_expired
from worker.leases import settle_lost_sender
from worker.nusasms import Action, NusaSMSError, Scope
from worker.services import Services
from worker.start import Start, Started
from worker.state_writer import Attempt

log = structlog.get_logger("kirim.pipeline")

# A rate-limit wait shorter than this is slept in the worker thread; a longer one requeues.
MAX_RATE_SLEEP_S = 0.5
# While Redis is away, a start step with no call behind it is undone as soon as it answers.
UNDO_RETRY_S = 0.25
# While Redis is away, a worker holding a provider reply retries its write this often.
RECORD_RETRY_S = (0.2, 0.5, 1.0, 2.0)
T = TypeVar("T")


@dataclass(frozen=True)
class Claim:
    """One claim of a message: its attempt number, token and lease end (epoch seconds)."""

    job: Job
    attempt: int
    token: str
    lease_until: float


class SendPipeline:
    """Processes one `kirim.send` task (or one message of a `kirim.send_batch`)."""

    claim: Claim  # set by after_start once the message is claimed
    _start: Start  # set by start_of
    _lease_until: float

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.store = svc.store
        self.writer = svc.writer
        self.token: str | None = None  # this task's claim: every later move is for it only

    def process(self, raw: Any, dispatch: str | None) -> str:
        """Handle one task payload; returns a short outcome label (for logs and metrics)."""
        job = self.prepare(raw, dispatch)
        if job is None:
            return "poison"
        return self.process_job(job, dispatch)

    def prepare(self, raw: Any, dispatch: str | None) -> Job | None:
        """The job of a task payload (None: poison, dead-lettered); a foreign Celery
        client's job (no `dispatch`) gets its record here."""
        if not dispatch and isinstance(raw, dict) and "text_hash" in raw:
            raw = {**raw, "text_hash": ""}  # recomputed below: never the client's to give
        job = self._decode(raw)
        if job is None:
            return None
        if not dispatch:  # a foreign Celery client enqueued without a record
            # It cannot know KIRIM_HASH_KEY: the guard's text key is computed here.
            job = job.model_copy(update={
                "text_hash": text_hash(job.text, self.svc.settings.hash_key_bytes)})
            self._adopt(job)
        return job

    def process_job(self, job: Job, dispatch: str | None) -> str:
        """Claim, start and send one prepared job."""
        if otp_expired(job, time.time()):  # claimed only to end it: no guard, no slot
            lease_s = self.svc.settings.send_lease_s
            token = token_hex(8)
            status, detail = self.store.claim(job.id, lease_s, dispatch or "", job.channel,
                                              token)
            if status != "claimed":
                return self._unclaimed(job, status, detail)
            self.token = token
            self._otp_expired(job)
            return "expired"
        start = self.start_of(job, dispatch)
        self._intend(job, start.claim_id)
        # Claim, guard, rate limit and *calling* mark in one step (worker/start.py).
        try:
            started = self.svc.starter.start(job, start.lease_s, start.dispatch,
                                             start.claim_id, start.api)
        except NotReplicated as exc:
            return self.not_replicated(job, exc)
        except REDIS_DOWN as exc:
            return self.undo_start(job, exc)
        except Exception as exc:  # a script error part-way: undo what ran, then say so
            self.undo_start(job, exc)
            raise
        label = self.after_start(job, started)
        return label if label is not None else self.call()

    def start_of(self, job: Job, dispatch: str | None) -> Start:
        """This task's claim of `job`: a new token and lease (start.lua's arguments)."""
        lease_s = self.svc.settings.send_lease_s
        # The claim token: a buffered draw (no GIL release per message).
        start = Start(job, lease_s, dispatch or "", token_hex(8), self._api(job))
        self._start = start
        self._lease_until = time.time() + lease_s
        return start

    def after_start(self, job: Job, started: Started, max_sleep_s: float = MAX_RATE_SLEEP_S
                    ) -> str | None:
        """Go on from start.lua's reply: None when the provider may be called now (`call`),
        else the outcome (not claimed, deferred by the guard, requeued by the rate limit)."""
        if not started.claimed:
            return self._unclaimed(job, started.status, started.detail)
        self.token = self._start.claim_id
        self.claim = Claim(job, started.attempts, self.token, self._lease_until)
        if started.refusal is not None:
            self._guard_refused(job, started.attempts, started.refusal)
            return "deferred"
        if started.status == "wait":
            step = self._mark_calling(self.claim, started.wait_s, max_sleep_s)
            if step != "calling":
                return step
        return None

    def undo_start(self, job: Job, exc: Exception) -> str:
        """start.lua's reply was lost (Redis went away) or it failed part-way (a script
        error): it may or may not have run, and the provider was not called. Once Redis
        answers, this claim, if it ran, is undone: the message is queued again with its
        *calling* mark cleared, instead of being left for the lease sweep to call `unknown`
        without a call made."""
        log.warning("start_reply_lost", message_id=job.id, error=str(exc),
                    hint="undone once Redis answers; nothing was sent")
        undone = self._give_back(job, "start not confirmed: Redis went away")
        return "start_lost" if undone else "skipped_start_lost"

    def requeue_unsent(self, job: Job) -> str:
        """A call of a batch that was never written (its *calling* mark not taken or not
        confirmed, no free connection before the batch's deadline, a warm shutdown): queued
        again for a second later, the attempt and the *calling* mark given back."""
        self._give_back(job, "not called: queued again")
        return "unsent"

    def _give_back(self, job: Job, note: str) -> bool:
        """Requeue this claim's message, never called, as soon as Redis answers. Bound to the
        claim's token, so it is safe past the lease too: it keeps trying (a lease and as long
        again) to beat the lease sweep, which would call the message `unknown`."""
        give_up_at = self._lease_until + self.svc.settings.send_lease_s
        while True:
            try:
                return self._requeue_uncalled(job, self._start.claim_id, note)
            except REDIS_DOWN as again:
                if time.time() + UNDO_RETRY_S >= give_up_at:
                    log.error("not_given_back", message_id=job.id, error=str(again),
                              hint="nothing was sent; the lease sweep may show it `unknown`:"
                                   " resend it (`kirim settle <id> --as resend`)")
                    raise
                time.sleep(UNDO_RETRY_S)

    @property
    def start(self) -> Start:
        """This task's claim of its message, as start_of made it."""
        return self._start

    def not_replicated(self, job: Job, exc: NotReplicated) -> str:
        """start.lua's writes were not confirmed by replicas: undo this claim (see below)."""
        return self._not_replicated(job, self._start.claim_id, exc)

    def _mark_calling(self, claim: Claim, wait_s: float, max_sleep_s: float = MAX_RATE_SLEEP_S
                      ) -> str:
        """After a rate-limit wait of `wait_s`: sleep short waits (up to `max_sleep_s` in
        all) and try again for a slot and the *calling* mark; requeue long ones."""
        slept_s = 0.0
        while True:
            if slept_s + wait_s > max_sleep_s:
                self.svc.requeuer.requeue(
                    claim.job.id, allowed_from=[State.SENDING], countdown_s=wait_s,
                    note="rate limit", incr={"attempts": -1}, calling=False, claim=claim.token)
                return "rate_limited"
            time.sleep(wait_s)
            slept_s += wait_s
            if self._otp_expired(claim.job):  # the wait may have outlived its validity
                return "expired"
            self._intend(claim.job, claim.token)  # a batch's message goes on here alone
            try:
                status, wait_s = self.svc.limiter.mark_calling(
                    self.svc.keys.message(claim.job.id), claim.token, self.store.durability,
                    self._api(claim.job))
            except NotReplicated as exc:
                return self._not_replicated(claim.job, claim.token, exc)
            if status != "wait":
                if status == "lost":
                    log.warning("claim_lost_before_call", message_id=claim.job.id)
                return "calling" if status == "calling" else "lease_lost"

    def _intend(self, job: Job, claim_id: str) -> None:
        """Note in the call journal that this thread is about to mark `job` *calling*."""
        if self.svc.journal is not None:
            self.svc.journal.intend(job.id, claim_id)

    def _api(self, job: Job) -> str:
        """The provider API a WhatsApp message's call goes through, as its *calling* mark
        records it for the DR poll ("v1" or "v3": an earlier attempt's may differ); "" for
        SMS and OTP, which only go through the legacy API."""
        if job.channel != Channel.WA:
            return ""
        return "v1" if self.svc.wa_client is not None else "v3"

    def _not_replicated(self, job: Job, token: str, exc: NotReplicated) -> str:
        """Replicas did not confirm the claim or the *calling* mark (KIRIM_REDIS_MIN_REPLICAS):
        a failover could lose them and let a second sender in, so the provider is not called.
        The message goes back to `queued` (if this claim holds it) and is tried again soon."""
        log.warning("claim_not_replicated", message_id=job.id, error=str(exc),
                    hint="a replica is down or lagging; see docs/high-availability.md")
        # Not waited for: this undo only has to hold on the master it was made on (if a
        # failover loses it, the lease sweep settles the claim it undid).
        # Its *calling* mark goes too: no call was made, so a lease sweep that meets this
        # claim again (if a failover lost the undo) must requeue it, not make it `unknown`.
        self._requeue_uncalled(job, token, "replication not confirmed")
        return "not_replicated"

    def _requeue_uncalled(self, job: Job, token: str, note: str) -> bool:
        """Queued again for a second later, if claim `token` still holds it: a claim whose
        provider call was never made gives back its attempt and its *calling* mark. Not
        waited for by replicas (an undo whose loss the lease sweep repairs)."""
        return self.svc.requeuer.requeue(
            job.id, allowed_from=[State.SENDING], countdown_s=1.0, note=note,
            incr={"attempts": -1}, set_fields={"calling": "0"}, claim=token, durable=False)

    def _otp_expired(self, job: Job) -> bool:
        """Expire an OTP past its validity (freeing its guard slot); True if it did."""
        if not otp_expired(job, time.time()):
            return False
        self._release(job)
        self.writer.expired(job, "otp_expired: validity ran out before it could be sent",
                         claim=self.token)
        return True

    def _decode(self, raw: Any) -> Job | None:
        try:
            return Job.model_validate(raw)
        except ValidationError as exc:
            self.writer.poisoned(raw, exc)
            return None

    def _adopt(self, job: Job) -> None:
        self.store.create(job, State.QUEUED, self.svc.keys.outbox, time.time(),
                          note="enqueued by a Celery client")

    def _unclaimed(self, job: Job, status: str, detail: str) -> str:
        if status == "clock":
            log.error("clock_behind_redis", message_id=job.id, behind_s=detail,
                      hint="this worker's clock is behind Redis's by more than"
                           " KIRIM_SEND_LEASE_S: sync it (NTP); it claims nothing until then")
        if status == "state" and detail == State.SENDING:
            record = self.store.get(job.id)
            settled = settle_lost_sender(self.svc, record, time.time()) if record else None
            if settled:
                return settled
        log.info("not_claimed", message_id=job.id, status=status, detail=detail)
        return f"skipped_{status}"

    def _guard_refused(self, job: Job, attempts: int, decision: GuardDecision) -> None:
        """The recipient guard said not now: defer the claimed message until it may go (or
        expire an OTP that cannot go within its validity)."""
        metrics.guard_refused(job, decision.reason)
        until = decision.retry_at or time.time() + self.svc.settings.guard_window_s
        attempt = Attempt(None, "GUARD", decision.reason or "", attempts=attempts)
        if job.valid_until is not None and until > job.valid_until:
            self.writer.expired(job, f"otp_expired: recipient limit ({decision.reason})",
                             claim=self.token)
        else:
            self.writer.defer(job, attempt, until, f"recipient limit: {decision.reason}",
                           claim=self.token)

    def call(self) -> str:
        """Call the provider for the claimed message and record what it said."""
        try:
            result: Any = self._send(self.claim.job)
        except NusaSMSError as exc:
            result = exc
        step, attempt = self.judge(result)
        return self.record(step, attempt)

    def judge(self, result: Any) -> tuple[Step, Attempt]:
        """What the provider's reply (or the NusaSMSError it raised) means for the claimed
        message: the next step and the attempt to record (logged and counted here)."""
        job = self.claim.job
        bound = log.bind(message_id=job.id, channel=job.channel.value,
                         to=mask_recipient(job.to) if job.to else f"group:{job.group}")
        if isinstance(result, NusaSMSError):
            bound.warning("provider_error", error=type(result).__name__,
                          action=result.action.value)
            metrics.provider_error(job, result)
            attempt = Attempt(None, type(result).__name__, str(result),
                              attempts=self.claim.attempt)
            delay_s = getattr(result, "retry_after_s", None) or 0.0
            return self._step(job, result.action, Scope.ACCOUNT, attempt, delay_s), attempt
        info = result.status
        metrics.provider_reply(job, info.code, info.name, getattr(result, "elapsed_s", 0.0))
        bound.info("provider_reply", code=info.code, name=info.name, action=info.action.value)
        attempt = Attempt(info.code, info.name, result.raw, _provider_id(result),
                          self.claim.attempt)
        return self._step(job, info.action, info.scope, attempt, 0.0), attempt

    def record(self, step: Step, attempt: Attempt) -> str:
        """Write `step` (while the lease lasts, retrying while Redis is away)."""
        job = self.claim.job
        label = self.while_leased(self.claim, lambda: self.carry_out(job, step, attempt))
        if label != "sent" and attempt.code is not None:  # a `sent` move counts its code
            self._count_code(attempt.code)
        return label

    def _count_code(self, code: int) -> None:
        """Count the reply per code, so an operator sees -77/-78 from the provider (their
        limit is lower than ours, or another system shares the account) without reading logs.
        Not retried: a count that landed but lost its reply must not count twice."""
        try:
            self.svc.redis.hincrby(self.svc.keys.provider_codes, str(code), 1)
        except REDIS_DOWN as exc:
            log.warning("provider_code_not_counted", code=code, error=str(exc))

    def while_leased(self, claim: Claim, write: Callable[[], T]) -> T:
        """Run a write of what the provider said, retrying while Redis is away and the lease
        lasts: the reply is the one thing that cannot be asked for again."""
        delays = chain(RECORD_RETRY_S, repeat(RECORD_RETRY_S[-1]))
        while True:
            try:
                return write()
            except REDIS_DOWN as exc:
                delay_s = next(delays)
                if time.time() + delay_s >= claim.lease_until:
                    log.error("reply_not_recorded", message_id=claim.job.id, error=str(exc),
                              hint="the lease sweep marks it unknown; settle it by its DR")
                    raise
                log.warning("record_write_retry", message_id=claim.job.id, error=str(exc))
                time.sleep(delay_s)

    def _send(self, job: Job) -> Any:
        client = self.svc.client
        if job.group is not None:
            return client.send_group(job.group, job.text)
        if job.channel == Channel.WA:
            wa = self.svc.wa_client
            if wa is not None:  # KIRIM_WA_API=v1 (an API key is set)
                return _send_wa_v1(wa, job)
            if job.v == 2 and (job.has_media or job.sender is not None):
                error = NusaSMSError("send_wa", "a file or a sender needs NusaSMS API v1.0,"
                                     " and this worker sends WhatsApp through the legacy API:"
                                     " set KIRIM_NUSASMS_API_KEY (KIRIM_WA_API=v1), then"
                                     " replay it")
                error.action = Action.DEAD  # the legacy API cannot carry it: not sent at all
                raise error
            return client.send_wa(job.to or "", job.text)
        return client.send_sms(job.to or "", job.text, otp=job.channel == Channel.OTP)

    def _step(self, job: Job, action: Action, scope: Scope, attempt: Attempt,
              min_delay_s: float) -> Step:
        reply = Reply(action, scope, attempt.code, attempt.code_name, attempt.attempts,
                      min_delay_s)
        return decide(reply, job, time.time(), self.svc.policy,
                      self.svc.settings.guard_window_s)

    def carry_out(self, job: Job, step: Step, attempt: Attempt) -> str:
        """Write `step` for a message this task has claimed; returns the result label."""
        if step.next == Next.SENT:
            return self._sent(job, attempt)
        if step.next == Next.UNKNOWN:
            return self._unknown(job, step, attempt)
        self._release(job)  # the provider did not take it: free the guard slot
        if step.next in (Next.DEFER, Next.EXPIRED) and step.block != Scope.NONE:
            self._block(job, step)
        if step.next == Next.PAUSE and step.circuit is not None:
            return self._pause(job, attempt, step.circuit)
        if step.next == Next.RETRY:
            self.writer.retry(job, attempt, step.delay_s, claim=self.token)
        elif step.next == Next.DEFER:
            self.writer.defer(job, attempt, step.until or 0.0, step.reason, claim=self.token)
            return "deferred"
        elif step.next == Next.EXPIRED:
            self.writer.expired(job, step.reason, claim=self.token)
        else:
            self.writer.dead(job, attempt, step.reason, claim=self.token)
        return step.next.value

    def _unknown(self, job: Job, step: Step, attempt: Attempt) -> str:
        self.writer.unknown(job.id, attempt, step.reason, claim=self.token)
        if attempt.code is not None:  # the provider answered, in a way kirim cannot read
            log.error("provider_ambiguous", message_id=job.id, code=attempt.code,
                      name=attempt.code_name, hint="settle it: `kirim settle`")
        return "unknown"

    def _sent(self, job: Job, attempt: Attempt) -> str:
        try:
            if self.writer.sent(job, attempt, claim=self.token):
                return "sent"
        except NotReplicated as exc:  # recorded on the master; never send it again for this
            sent_not_replicated(job, attempt, exc)
            return "sent"
        return self.sent_not_moved(job, attempt)

    def sent_not_moved(self, job: Job, attempt: Attempt) -> str:
        """The provider took it, and its `sent` move found the message moved on."""
        record = self.store.get(job.id)
        if record is not None and record.get("provider_id") == (attempt.provider_id or ""):
            return "sent"  # our own earlier write (and its count) landed before Redis answered
        if attempt.code is not None:
            self._count_code(attempt.code)
        # Only an operator's `settle` can have moved it meanwhile: say so loudly, with the
        # provider's id, so the operator can reconcile.
        log.error("sent_not_recorded", message_id=job.id, provider_id=attempt.provider_id,
                  hint="the provider accepted it after it was settled by hand")
        return "sent"

    def _block(self, job: Job, step: Step) -> None:
        """-77 / -78: the provider's own count is full; stop the pair or the number."""
        guard = self.svc.guard
        if guard is None or not job.to:
            return
        if step.block == Scope.TEXT:  # this text to this number: its queued copies wait too
            guard.fill_text(route_for(job.channel), job.to, job.text_hash)
        else:
            guard.block(route_for(job.channel), job.to,
                        time.time() + self.svc.settings.guard_window_s)
        log.warning("provider_recipient_limit", message_id=job.id, block=step.block.value,
                    hint="the provider's cap is lower than kirim's guard limits"
                         " (KIRIM_GUARD_*), or another system shares the account")

    def _pause(self, job: Job, attempt: Attempt, circuit: Circuit) -> str:
        circuits = self.svc.circuits
        if circuits.pause(circuit, attempt.code_name, "" if attempt.code is None
                          else attempt.code):
            log.error("circuit_paused", circuit=circuit.value, code=attempt.code,
                      name=attempt.code_name,
                      hint=f"the {circuit.value} lanes stopped; see `kirim account status`")
        self.writer.hold(job, attempt, circuit, claim=self.token)
        if not circuits.state(circuit).paused:
            # Resumed between our pause and our hold: the resume did not see this message.
            self.svc.requeuer.requeue(job.id, allowed_from=[State.DEFERRED],
                                      note="circuit resumed while holding")
        return "paused"

    def _release(self, job: Job) -> None:
        if self.svc.guard is not None and job.to is not None:
            self.svc.guard.release(job.id, route_for(job.channel), job.to, job.text_hash)


def sent_not_replicated(job: Job, attempt: Attempt, exc: NotReplicated) -> None:
    """A `sent` recorded on the master that replicas did not confirm: never resent for it."""
    log.error("sent_not_replicated", message_id=job.id, provider_id=attempt.provider_id,
              error=str(exc), hint="after a failover it may show `unknown`: its DR settles it")


def _provider_id(result: Any) -> str | None:
    return getattr(result, "message_id", None) or getattr(result, "campaign_name", None)


# The record's `api` field, only while the record exists (never a stray hash without a TTL).
def _send_wa_v1(wa: Any, job: Job) -> Any:
    """Send a WhatsApp through NusaSMS API v1.0: a file (by URL or inline) under its caption
    (default: the text), or the text, from the job's sender (default: the account's).

    The record says `api: v1` from its *calling* mark on (SendPipeline._api), so the DR poll
    asks v1.0 for its state."""
    if job.has_media:
        return wa.send_wa_media(job.to or "", job.caption or job.text, job.sender,
                                media_url=job.media_url, media_base64=job.media_base64,
                                file_name=job.file_name)
    return wa.send_wa(job.to or "", job.text, job.sender)
