"""Thin tasks: decode, call the pipeline or the dispatcher, log the outcome.

Task names are the documented contract (producer.routing.Tasks); payloads are JSON.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from celery import Celery

from producer.contract import State
from producer.routing import Tasks

log = structlog.get_logger("kirim.tasks")


def register_tasks(app: Celery) -> None:
    """Register kirim's tasks on `app`."""
    from producer.logs import message_context
    from worker import callbacks, credits, delivery, metrics
    from worker.app import services_for
    from worker.pipeline import SendPipeline

    delivery.register(app)
    credits.register(app)
    callbacks.register(app)

    @app.task(name=Tasks.SEND, ignore_result=True, acks_late=True)
    def send(job: Any, dispatch: str | None = None) -> str:
        """Send one message (see worker.pipeline)."""
        with message_context(job):  # every log line of this task names the message
            outcome = SendPipeline(services_for(app)).process(job, dispatch)
        metrics.count_outcome(job, outcome)
        return outcome

    @app.task(name=Tasks.RELEASE_DUE, ignore_result=True)
    def release_due() -> int:
        """Requeue deferred and scheduled messages that are due."""
        return int(services_for(app).dispatcher.release_due())

    @app.task(name=Tasks.SWEEP_OUTBOX, ignore_result=True)
    def sweep_outbox() -> int:
        """Publish messages whose publish did not happen (crash between record and publish)."""
        svc = services_for(app)
        return int(svc.dispatcher.sweep_outbox(svc.settings.outbox_grace_s))

    @app.task(name=Tasks.SWEEP_LEASES, ignore_result=True)
    def sweep_leases() -> int:
        """Messages whose sender died mid-call become `unknown` (never resent blindly)."""
        return sweep_expired_leases(services_for(app))


def sweep_expired_leases(svc: Any, limit: int = 500) -> int:
    """Move `sending` messages with an expired lease to `unknown`."""
    from worker.outcomes import Attempt

    now = time.time()
    expired = svc.redis.zrangebyscore(svc.keys.sending, "-inf", now, start=0, num=limit,
                                      withscores=True)
    count = 0
    for raw, score in expired:
        mid = raw.decode() if isinstance(raw, bytes) else raw
        record = svc.store.get(mid)
        if record is not None and record.state == State.SENDING and svc.recorder.unknown(
                record.job, Attempt(None, "WORKER_LOST", ""),
                "sender lost during the provider call (lease expired)", lease_expired_by=now):
            count += 1
        else:  # stale, unless a new claim re-scored it meanwhile
            svc.redis.eval(_ZREM_IF_SCORE, 1, svc.keys.sending, mid, repr(score))
    return count


# Remove a sorted-set member only if its score is still the one we read.
_ZREM_IF_SCORE = """
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or 'nan') == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""
