"""Thin tasks: decode, call the pipeline or the dispatcher, log the outcome.

Task names are the documented contract (producer.routing.Tasks); payloads are JSON.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Celery

from producer.routing import Tasks

log = structlog.get_logger("kirim.tasks")


def register_tasks(app: Celery) -> None:
    """Register kirim's tasks on `app`."""
    from producer.account import release_orphans
    from producer.logs import message_context
    from worker import callbacks, credits, delivery, metrics
    from worker.app import services_for
    from worker.leases import sweep_expired_leases
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
        """Publish messages whose publish did not happen (crash between record and publish),
        and requeue any held by a circuit that is closed."""
        svc = services_for(app)
        published = svc.dispatcher.sweep_outbox(svc.settings.outbox_grace_s)
        return int(published + release_orphans(svc.circuits, svc.dispatcher))

    @app.task(name=Tasks.SWEEP_LEASES, ignore_result=True)
    def sweep_leases() -> int:
        """Lost senders: requeued before the provider call, `unknown` after it."""
        return sweep_expired_leases(services_for(app))
