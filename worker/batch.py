"""`kirim.send_batch`: the messages that were enqueued together, sent by one task at once.

A batch task carries up to KIRIM_SEND_BATCH_SIZE messages of one lane (sms or wa; never an
OTP), written by the enqueue path (producer/core/enqueue.py) in place of one task each. The
batch shares the broker's per-task work (BRPOP, the unacked bookkeeping, the ack), one
start step for all its messages (start_many.lua: each is claimed, reserved and rate-limited
on its own), one step marking them all *calling* just before their requests are written
(mark_many.lua; each first noted in the thread's call journal, worker/journal.py), its
provider calls at once (as many in flight together as the
connection pool allows, so a batch costs about one provider latency, not one per message;
a call that could not be written in time for its lease is queued again, unsent) and one
step recording every `sent` (transition_many.lua). Everything else (a guard refusal, a
rate-limit wait, a provider error, a message that is not an SMS or legacy WhatsApp text)
goes on one message at a time, exactly as in a `kirim.send` task. A copy of a batch
(redelivered after a worker died) finds its finished messages claimed and skips them. In a
warm shutdown, a batch not yet started and the messages that would go one at a time are
handed back to the queue.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import httpx
import structlog

from producer.core.contract import Channel, Job
from producer.core.durability import NotReplicated
from producer.core.logs import message_context
from worker import metrics
from worker.decision import Next, Step, otp_expired
from worker.nusasms import NusaSMSError
from worker.nusasms.client import NusaSMSClient, SendCall
from worker.pipeline import MAX_RATE_SLEEP_S, REDIS_DOWN, SendPipeline, sent_not_replicated
from worker.services import Services
from worker.start import Started
from worker.state_writer import Attempt

log = structlog.get_logger("kirim.batch")
T = TypeVar("T")
# A later wave of calls starts only if its replies (read timeout) end this long before the
# lease does (the first wave always goes, as a single task's call does).
_LEASE_MARGIN_S = 1.0

# Set when the worker begins a warm shutdown (worker/signals.py): a batch not yet started is
# handed back to the queue, and one under way requeues its rate-limited messages instead of
# sleeping for them.
SHUTTING_DOWN = threading.Event()


def stop_taking_new(**_: Any) -> None:
    """Celery's worker_shutting_down: batches hand back what they have not started."""
    SHUTTING_DOWN.set()


def send_batch(svc: Services, items: Any) -> dict[str, int]:
    """Send each [job, dispatch] of `items`; the count of each outcome label.

    An error that escapes one message (Redis gone, say) does not stop the others; the first
    one is raised at the end, so the task fails as a `kirim.send` would. Each message is left
    where a single task would have left it: queued (its outbox entry republishes it) or
    sending (the lease sweep settles it)."""
    listed = items if isinstance(items, list) else [items]
    if SHUTTING_DOWN.is_set():
        return {"handed_back": _hand_back(svc, listed)}
    run = _Run(svc)
    together: list[tuple[SendPipeline, Job, str]] = []
    alone: list[tuple[SendPipeline, Job, str | None, Any]] = []
    for item in listed:
        raw, dispatch = _unpack(item)
        pipe = SendPipeline(svc)
        try:
            with message_context(raw):
                job = pipe.prepare(raw, dispatch)
        except Exception as exc:  # one message's error must not stop the rest
            run.failed(raw, exc)
            continue
        if job is None:
            run.finish(raw, "poison")
        elif dispatch and _together(svc, job) and not otp_expired(job, time.time()):
            together.append((pipe, job, dispatch))
        else:  # its own way (an OTP past validity, a group, WhatsApp API v1.0, ...)
            alone.append((pipe, job, dispatch, item))
    if together:
        try:
            run.together(together)
        except Exception as exc:  # a bug between the steps: the messages alone still go
            run.failed(None, exc)
    for i, (pipe, job, dispatch, _) in enumerate(alone):
        if SHUTTING_DOWN.is_set():  # one at a time could outlast the grace period
            run.outcomes["handed_back"] += _hand_back(svc, [it for *_, it in alone[i:]])
            break
        run.finish(job, run.guarded(job, partial(pipe.process_job, job, dispatch)))
    if run.first_error is not None:
        raise run.first_error
    return dict(run.outcomes)


def _together(svc: Services, job: Job) -> bool:
    """Whether `job` is started and sent with the batch's others: an SMS, or a WhatsApp
    text through the legacy API, through a client that sends many at once."""
    client = svc.client
    if job.group is not None or not isinstance(client, NusaSMSClient):
        return False
    if not client.sends_at_once:  # over a proxy: one call after another, one at a time
        return False
    if job.channel == Channel.SMS:
        return True
    return (job.channel == Channel.WA and svc.wa_client is None
            and not (job.has_media or job.sender is not None))


class _Run:
    """One batch's outcomes and first error."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.outcomes: Counter[str] = Counter()
        self.first_error: Exception | None = None

    def guarded(self, job: Job, step: Callable[[], T]) -> T | None:
        """`step` for one message: its error is logged and kept, not raised (None)."""
        try:
            with message_context(job):
                return step()
        except Exception as exc:  # one message's error must not stop the rest
            self.failed(job, exc)
            return None

    def failed(self, job: Any, exc: Exception) -> None:
        mid = job.id if isinstance(job, Job) else job.get("id") if isinstance(job, dict) else None
        log.error("batch_message_failed", error=type(exc).__name__, detail=str(exc)[:300],
                  message_id=mid)
        self.first_error = self.first_error or exc

    def finish(self, job: Any, label: str | None) -> None:
        if label is not None:
            metrics.count_outcome(job, label)
            self.outcomes[label] += 1

    def together(self, batch: list[tuple[SendPipeline, Job, str]]) -> None:
        """Start every message in one step, call the provider for all that may go at once,
        record every `sent` in one step; the rest go on one by one, as in a single task."""
        pipes = [(pipe, job) for pipe, job, _ in batch]
        client = self.svc.client
        if isinstance(client, NusaSMSClient):  # connect before the *calling* marks, not after
            client.warm(len(batch))
        starts = [pipe.start_of(job, dispatch) for pipe, job, dispatch in batch]
        try:
            started = self.svc.starter.start_many(starts)
        except NotReplicated as exc:
            for pipe, job in pipes:
                self.finish(job, self.guarded(job, partial(pipe.not_replicated, job, exc)))
            return
        except Exception as exc:  # its reply lost (Redis away) or a script error part-way:
            # whatever of it ran is undone, claim by claim; nothing was called.
            for pipe, job in pipes:
                self.finish(job, self.guarded(job, partial(pipe.undo_start, job, exc)))
            if not isinstance(exc, REDIS_DOWN):
                log.error("batch_start_failed", error=type(exc).__name__,
                          detail=str(exc)[:300])
                self.first_error = self.first_error or exc
            return
        calling: list[tuple[SendPipeline, Job]] = []
        later: list[tuple[SendPipeline, Job, Started]] = []
        for (pipe, job), one in zip(pipes, started, strict=True):
            if one.status == "error":  # its step raised in Lua: undo whatever of it ran
                error = RuntimeError(f"start step failed: {one.detail}")
                self.failed(job, error)
                self.finish(job, self.guarded(job, partial(pipe.undo_start, job, error)))
            elif one.status in ("ready", "calling"):
                pipe.after_start(job, one)  # claimed and marked: nothing to write
                calling.append((pipe, job))
            else:
                later.append((pipe, job, one))
        try:
            if calling:
                self._call_all(calling)
        finally:
            # Claimed but not called (the guard, a rate-limit wait) or not claimed: one by
            # one, as a single task goes on. Rate-limit waits share one sleep budget (a
            # single task's), so the batch never outlasts its leases sleeping for each in
            # turn: once it is spent (or in a warm shutdown) they are requeued for their slot.
            budget_end = time.monotonic() + MAX_RATE_SLEEP_S
            for pipe, job, one in later:
                left_s = 0.0 if SHUTTING_DOWN.is_set() else budget_end - time.monotonic()
                self.finish(job, self.guarded(job, partial(_go_on, pipe, job, one,
                                                           max(0.0, left_s))))

    def _call_all(self, calling: list[tuple[SendPipeline, Job]]) -> None:
        """The provider calls of every message the start step readied, at once (those the
        thread's call journal holds marked *calling* in one step just before the writes, any
        other just before its own); then their records: every `sent` in one step, anything
        else one by one."""
        client = self.svc.client
        assert isinstance(client, NusaSMSClient)
        # No later wave of calls starts so late that its replies could outlast the first
        # lease to end (a pool short of connections): those calls are not made, and retried.
        settings = self.svc.settings
        lease_left_s = min(pipe.claim.lease_until for pipe, _ in calling) - time.time()
        not_after = (time.monotonic() + lease_left_s - settings.nusasms_read_timeout_s
                     - settings.nusasms_connect_timeout_s - _LEASE_MARGIN_S)
        if SHUTTING_DOWN.is_set():  # what waits for a connection waits in the queue instead
            not_after = time.monotonic()
        journal = self.svc.journal
        # Noted in the journal, then marked in one step; the rest one by one (below).
        upfront = 0 if journal is None else journal.intend_many(
            [(job.id, pipe.claim.token) for pipe, job in calling])
        if SHUTTING_DOWN.is_set():  # only the first call may still be written
            upfront = min(upfront, 1)
        marked: list[bool | None] = [*self._mark(calling[:upfront]),
                                     *[None] * (len(calling) - upfront)]

        def go(i: int) -> bool:  # call i's connection is in hand: written only if marked
            if journal is not None:  # the slot the write hook flips just before the bytes
                journal.select(i)
            if marked[i] is None:  # not journalled: its own mark, just before its write
                marked[i] = self._mark(calling[i:i + 1])[0]
            return bool(marked[i])

        try:
            results = client.send_many([_call_of(job) for _, job in calling],
                                       not_after=not_after, before_write=go)
        except Exception as exc:  # a bug, not a reply: what was written runs into `unknown`
            log.error("batch_send_failed", error=type(exc).__name__, detail=str(exc)[:300])
            self.first_error = self.first_error or exc
            for i in [] if journal is None else journal.unwritten():  # never written
                pipe, job = calling[i]
                self.finish(job, self.guarded(job, partial(pipe.requeue_unsent, job)))
            return
        sent: list[tuple[SendPipeline, Job, Step, Attempt]] = []
        for (pipe, job), result, was_marked in zip(calling, results, marked, strict=True):
            if not was_marked or _never_written(result):  # not called: not a failed attempt
                self.finish(job, self.guarded(job, partial(pipe.requeue_unsent, job)))
                continue
            judged = self.guarded(job, partial(pipe.judge, result))
            if judged is None:
                continue
            step, attempt = judged
            if step.next == Next.SENT:
                sent.append((pipe, job, step, attempt))
            else:
                self.finish(job, self.guarded(job, partial(pipe.record, step, attempt)))
        if sent:
            self._record_sent(sent)

    def _mark(self, calls: list[tuple[SendPipeline, Job]]) -> list[bool]:
        """Mark `calls` *calling* in one step; per call, whether it may be written. Not
        marked (Redis away, replicas silent, a lease lost): not called, and queued again."""
        if not calls:
            return []
        try:
            return self.svc.starter.mark_many(
                [(job, pipe.claim.token, pipe.start.api) for pipe, job in calls])
        except Exception as exc:
            log.warning("batch_mark_failed", messages=len(calls), error=type(exc).__name__)
            return [False] * len(calls)

    def _record_sent(self, sent: list[tuple[SendPipeline, Job, Step, Attempt]]) -> None:
        """Every accepted call's `sent` move in one step, retried while Redis is away and
        the earliest lease lasts (as a single task retries its own)."""
        first = sent[0][0]
        lease = replace(first.claim, lease_until=min(p.claim.lease_until for p, *_ in sent))
        moves = [(job, attempt, pipe.claim.token) for pipe, job, _, attempt in sent]
        try:
            moved = first.while_leased(lease, lambda: self.svc.writer.sent_many(moves))
        except NotReplicated as exc:  # recorded on the master: never sent again for it
            for _, job, _, attempt in sent:
                sent_not_replicated(job, attempt, exc)
                self.finish(job, "sent")
            return
        except REDIS_DOWN as exc:  # Redis stayed away: the lease sweep makes them `unknown`
            log.error("batch_sent_not_recorded", error=type(exc).__name__,
                      provider_ids={job.id: a.provider_id for _, job, _, a in sent},
                      hint="settle them by these provider ids")
            self.first_error = self.first_error or exc
            return
        except Exception as exc:  # a script error part-way: each on its own (a move that
            # landed is recognised by its provider id)
            log.error("batch_sent_failed", error=type(exc).__name__, detail=str(exc)[:300])
            self.first_error = self.first_error or exc
            for pipe, job, step, attempt in sent:
                self.finish(job, self.guarded(job, partial(pipe.record, step, attempt)))
            return
        for (pipe, job, _, attempt), ok in zip(sent, moved, strict=True):
            self.finish(job, "sent" if ok else self.guarded(
                job, partial(pipe.sent_not_moved, job, attempt)))


def _never_written(result: Any) -> bool:
    """A call post_many did not write (no free connection before the batch's deadline)."""
    return isinstance(result, NusaSMSError) and isinstance(result.__cause__, httpx.PoolTimeout)


def _go_on(pipe: SendPipeline, job: Job, started: Started, max_sleep_s: float) -> str:
    label = pipe.after_start(job, started, max_sleep_s)
    return label if label is not None else pipe.call()


def _call_of(job: Job) -> SendCall:
    return SendCall(job.to or "", job.text, "wa" if job.channel == Channel.WA else "sms",
                    otp=job.channel == Channel.OTP)


def _hand_back(svc: Services, items: list[Any]) -> int:
    """Publish each not-yet-sent message of a batch again as its own kirim.send, with the
    dispatch token it came with (a copy whose message moved on since is skipped, as any
    stale copy is); one that cannot be published stays in the outbox, which republishes it."""
    handed = 0
    for item in items:
        job, dispatch = _unpack(item)
        mid = job.get("id") if isinstance(job, dict) else None
        if not isinstance(mid, str) or not dispatch:
            continue  # not a message: nothing to hand back
        try:
            handed += bool(svc.requeuer.publish_stored(mid, dispatch))
        except Exception as exc:  # the outbox is the fallback
            log.warning("batch_hand_back_failed", message_id=mid, error=type(exc).__name__)
    log.info("batch_handed_back", count=handed, of=len(items))
    return handed


def _unpack(item: Any) -> tuple[Any, str | None]:
    """(job, dispatch) of one batch item; anything else is handed on whole, undispatched, and
    the pipeline dead-letters it as poison (an item that is not a job cannot validate)."""
    if isinstance(item, list) and len(item) == 2 and isinstance(item[1], str) and item[1]:
        return item[0], item[1]
    return {"batch_item": item}, None
