"""Every kirim task, registered in one place; each is thin: find the process's Services,
call the module that does the work, return a short label.

Task names are the documented contract (producer.core.routing.Tasks); payloads are JSON.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.exceptions import Retry
from redis.exceptions import RedisError

from producer.core.account import release_orphans
from producer.core.logs import message_context
from producer.core.redis_text import text
from producer.core.routing import Tasks
from worker import alerts, batch, callbacks, metrics
from worker.credits import CreditsMonitor
from worker.delivery import (
    EARLY_REPORT_RETRIES,
    INBOUND_FORWARD_RETRIES,
    apply_pushed,
    forward_inbound,
)
from worker.dr_poll import poll_reports
from worker.leases import sweep_expired_leases
from worker.pipeline import SendPipeline
from worker.services import services_for

# Outcomes of SendPipeline.process that end the message for good: its task ends FAILURE.
FAILED_OUTCOMES = frozenset({"dead", "expired", "poison"})
RETRY_OUTCOME = "retry"


class MessageFailed(Exception):
    """A `kirim.send` whose message ended dead, expired or poisoned: the task ends FAILURE
    (Flower's Failed filter) with the reason. It is in the task's `throws`, so Celery logs one
    INFO line without a traceback; the message is acked (acks_late with the default
    task_acks_on_failure_or_timeout) and never retried by Celery."""


class Requeued(Exception):
    """Why a `kirim.send` was put back for a retry: kirim requeues a new task message (with
    its backoff), and this task ends RETRY (Flower's Retried filter) with that reason."""


def register_tasks(app: Celery) -> None:
    """Register kirim's tasks on `app`."""
    _sending(app)
    _sweeps(app)
    _reports(app)
    _account(app)


def _sending(app: Celery) -> None:
    @app.task(name=Tasks.SEND, ignore_result=True, acks_late=True, throws=(MessageFailed,))
    def send(job: Any, dispatch: str | None = None) -> str:
        """Send one message (see worker.pipeline); the outcome label as the result, except
        that a message that ended for good fails the task and a retry marks it retried."""
        with message_context(job):  # every log line of this task names the message
            result = SendPipeline(services_for(app)).process(job, dispatch)
        metrics.count_outcome(job, result)
        if result in FAILED_OUTCOMES:
            raise MessageFailed(outcome_reason(app, job, result))
        if result == RETRY_OUTCOME:
            # Raised, not self.retry(): the pipeline has already requeued the message (a new
            # task message); this only ends this one as RETRY, acked, with a task-retried event.
            reason = outcome_reason(app, job, result)
            raise Retry(reason, exc=Requeued(reason))
        return result


    @app.task(name=Tasks.SEND_BATCH, ignore_result=True, acks_late=True)
    def send_batch(items: Any) -> dict[str, int]:
        """Send the messages enqueued together, one after the other, each as kirim.send
        would (worker/batch.py); the count of each outcome."""
        return batch.send_batch(services_for(app), items)


def outcome_reason(app: Celery, job: Any, outcome: str) -> str:
    """`<outcome>: <reason> (code <code> <name>)` from the message's record: reasons and
    provider codes only, never the text or the recipient."""
    if outcome == "poison":
        return "poison: invalid_payload (dead-lettered)"
    mid = job.get("id") if isinstance(job, dict) else None
    if not isinstance(mid, str) or not mid:
        return outcome
    try:
        svc = services_for(app)
        reason, code, name = (text(v) for v in svc.redis.hmget(
            svc.keys.message(mid), "reason", "last_code", "last_code_name"))
    except RedisError as exc:
        return f"{outcome}: record unreadable ({type(exc).__name__})"
    if outcome == RETRY_OUTCOME:  # a requeue keeps the previous `reason`: the code says why
        reason = ""
    said = " ".join(part for part in (f"code {code}" if code else "", name) if part)
    if outcome == "expired" and reason:  # the codes are an earlier attempt's, if any
        said = ""
    if reason and said:
        return f"{outcome}: {reason} ({said})"
    return f"{outcome}: {reason or said or 'no reason recorded'}"


def _sweeps(app: Celery) -> None:
    @app.task(name=Tasks.RELEASE_DUE, ignore_result=True)
    def release_due() -> int:
        """Requeue deferred and scheduled messages that are due."""
        return int(services_for(app).requeuer.release_due())

    @app.task(name=Tasks.SWEEP_OUTBOX, ignore_result=True)
    def sweep_outbox() -> int:
        """Publish messages whose publish did not happen (crash between record and publish),
        and requeue any held by a circuit that is closed."""
        svc = services_for(app)
        published = svc.requeuer.sweep_outbox(svc.settings.outbox_grace_s)
        return int(published + release_orphans(svc.circuits, svc.requeuer))

    @app.task(name=Tasks.SWEEP_LEASES, ignore_result=True)
    def sweep_leases() -> int:
        """Lost senders: requeued before the provider call, `unknown` after it."""
        return sweep_expired_leases(services_for(app))


def _reports(app: Celery) -> None:
    @app.task(name=Tasks.POLL_DR, ignore_result=True)
    def poll_dr() -> dict[str, int]:
        """Poll DR for due sent messages (beat)."""
        return poll_reports(services_for(app))

    @app.task(name=Tasks.APPLY_DR, bind=True, ignore_result=True, acks_late=True,
              max_retries=EARLY_REPORT_RETRIES)
    def apply_dr(self: Task, fields: dict[str, Any]) -> str:
        """Apply a pushed delivery report (fields as NusaSMS sent them); for an `unknown`
        message it only asks for a DR pull, whose report settles it (worker/delivery.py)."""
        return apply_pushed(services_for(app), self, fields)

    @app.task(name=Tasks.FORWARD_INBOUND, bind=True, ignore_result=True, acks_late=True,
              max_retries=INBOUND_FORWARD_RETRIES)
    def forward_inbound_task(self: Task, event: dict[str, Any]) -> int:
        """Forward an inbound SMS to inbound_webhook_url."""
        return forward_inbound(services_for(app), self, event)

    @app.task(name=Tasks.DRAIN_CALLBACKS, ignore_result=True)
    def drain_callbacks() -> int:
        """POST pending status callbacks (one drain per process at a time)."""
        return callbacks.drain(services_for(app))


def _account(app: Celery) -> None:
    @app.task(name=Tasks.POLL_CREDITS, ignore_result=True)
    def poll_credits() -> str:
        """Read CREDITS, store it, alert on changes, resume a credit pause when it can."""
        return CreditsMonitor(app, services_for(app)).poll()

    @app.task(name=Tasks.WATCH_ACCOUNT, ignore_result=True)
    def watch_account() -> list[str]:
        """Alert once for each circuit that opened or closed (and dead letters, unknown);
        returns the paused circuits."""
        return [s.name for s in CreditsMonitor(app, services_for(app)).watch_account()
                if s.paused]

    @app.task(name=Tasks.DELIVER_ALERT, bind=True, ignore_result=True,
              max_retries=alerts.ALERT_MAX_RETRIES, acks_late=True)
    def deliver_alert(self: Task, payload: dict[str, Any], channel: str) -> str:
        """Deliver one alert over one channel (webhook or sms), retrying with backoff."""
        return alerts.deliver(services_for(app), self, payload, channel)

