"""`kirim.send_batch`: the messages that were enqueued together, sent by one task.

A batch task carries up to KIRIM_SEND_BATCH_SIZE messages of one lane (sms or wa; never an
OTP), written by the enqueue path (producer/core/enqueue.py) in place of one task each, so
the broker's per-task work (BRPOP, the unacked bookkeeping, the ack) is shared. Nothing else
is: each message goes through SendPipeline on its own, one after the other, and is claimed,
marked *calling* and recorded exactly as a `kirim.send` task's would be. A copy of a batch
(redelivered after a worker died) finds its finished messages claimed and skips them. In a
warm shutdown a batch hands its unsent messages back to the queue after the one in hand.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import structlog

from producer.core.logs import message_context
from worker import metrics
from worker.pipeline import SendPipeline
from worker.services import Services

log = structlog.get_logger("kirim.batch")

# Set when the worker begins a warm shutdown (worker/signals.py): a batch then finishes the
# message in hand and hands the rest back to the queue instead of sending up to 7 more,
# which could outlast the shutdown grace period (and end in a SIGKILL mid-call).
SHUTTING_DOWN = threading.Event()


def stop_taking_new(**_: Any) -> None:
    """Celery's worker_shutting_down: batches stop after their current message."""
    SHUTTING_DOWN.set()


def send_batch(svc: Services, items: Any) -> dict[str, int]:
    """Send each [job, dispatch] of `items`; the count of each outcome label.

    An error that escapes one message (Redis gone, say) does not stop the others; the first
    one is raised at the end, so the task fails as a `kirim.send` would. Each message is left
    where a single task would have left it: queued (its outbox entry republishes it) or
    sending (the lease sweep settles it)."""
    outcomes: Counter[str] = Counter()
    first_error: Exception | None = None
    listed = items if isinstance(items, list) else [items]
    for i, item in enumerate(listed):
        if SHUTTING_DOWN.is_set():
            outcomes["handed_back"] += _hand_back(svc, listed[i:])
            break
        job, dispatch = _unpack(item)
        try:
            with message_context(job):
                result = SendPipeline(svc).process(job, dispatch)
        except Exception as exc:  # one message's error must not stop the rest
            log.error("batch_message_failed", error=type(exc).__name__, detail=str(exc)[:300],
                      message_id=job.get("id") if isinstance(job, dict) else None)
            first_error = first_error or exc
            continue
        metrics.count_outcome(job, result)
        outcomes[result] += 1
    if first_error is not None:
        raise first_error
    return dict(outcomes)


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
