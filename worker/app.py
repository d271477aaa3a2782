"""The Celery app: `celery -A worker.app worker -P threads -Q otp` and friends.

Settings are read once when this module is imported by the celery command; the services a
task needs are built lazily, once per worker process, on first use.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from producer.core.broker import declared_queues, make_celery
from producer.core.keys import Keys
from producer.core.routing import Queues, Tasks
from producer.core.settings import Settings, load_settings
from worker import (
    callbacks,
    credits,
    delivery,
    masked_inspect,  # noqa: F401  (registers the masked inspect commands)
)
from worker.beat import redbeat_settings
from worker.broker_transport import transport_for
from worker.signals import connect as connect_signals
from worker.tasks import register_tasks


def create_app(settings: Settings) -> Celery:
    """A configured Celery app with kirim's tasks registered."""
    app = make_celery(settings, "kirim")
    app.conf.update(
        # kombu's Redis transport, patched so a worker reconnects after Redis went away
        # instead of stopping (worker/broker_transport.py).
        broker_transport=transport_for(bool(settings.redis_sentinels)),
        # A task is acked after it ran, not when it was received: a worker that dies
        # mid-task leaves it unacked, and Redis hands it to another worker (the claim in the
        # message record stops a second provider call).
        task_acks_late=True,
        # ...and a task whose worker process was killed is requeued, not marked failed.
        task_reject_on_worker_lost=True,
        # One reserved task per thread by default: a long backlog stays in Redis, where another
        # worker (or the OTP lane) can take it, instead of in one worker's memory.
        worker_prefetch_multiplier=settings.worker_prefetch_multiplier,
        # Task events for Flower's task view (received, started, succeeded, failed): off
        # unless KIRIM_WORKER_TASK_EVENTS; they cost a publish per event.
        worker_send_task_events=settings.worker_task_events,
        # Each queue on its own exchange and routing key (producer/core/broker.py).
        task_queues=declared_queues(),
        task_default_queue=Queues.MAINTENANCE,
        # Periodic and event work never runs on a sending lane.
        task_routes={
            **{name: {"queue": Queues.MAINTENANCE} for name in (
                Tasks.RELEASE_DUE, Tasks.SWEEP_OUTBOX, Tasks.SWEEP_LEASES, Tasks.POLL_CREDITS,
                Tasks.WATCH_ACCOUNT, Tasks.DELIVER_ALERT)},
            **{name: {"queue": Queues.REPORTS} for name in (
                Tasks.POLL_DR, Tasks.APPLY_DR, Tasks.FORWARD_INBOUND, Tasks.DRAIN_CALLBACKS)},
        },
        # The work is waiting on HTTP: threads, not processes.
        worker_pool="threads",
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        # Beat: RedBeat keeps the schedule and a leader lock in Redis, so several beat
        # processes can run and exactly one schedules; a standby takes over when the lock
        # (renewed every loop) is not renewed for redbeat_lock_timeout seconds.
        beat_scheduler="worker.beat:OutageTolerantScheduler",  # rides out Redis restarts
        # RedBeat's Redis: the URL without its password, which goes in a credential provider
        # (worker/beat.py): `celery inspect conf` and Flower's Config tab show these settings.
        # Nothing else secret belongs in app.conf: Celery masks broker_url itself.
        **redbeat_settings(settings),
        redbeat_key_prefix=Keys(settings.key_prefix).redbeat,
        redbeat_lock_timeout=15,
        beat_max_loop_interval=5,
        beat_schedule=beat_schedule(settings),
        # Sent once as soon as a beat schedules (worker/beat.py), then on their interval.
        kirim_beat_at_start=credits.AT_BEAT_START,
    )
    app.kirim_settings = settings
    register_tasks(app)
    return app


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic work, on the reports and maintenance queues (never a sending lane)."""
    return {
        **delivery.beat_entries(settings),
        **credits.beat_entries(settings),
        **callbacks.beat_entries(settings),
        "release-due": {"task": Tasks.RELEASE_DUE,
                        "schedule": settings.deferred_release_interval_s,
                        "options": {"queue": Queues.MAINTENANCE, "expires": 30}},
        "sweep-outbox": {"task": Tasks.SWEEP_OUTBOX, "schedule": 15.0,
                         "options": {"queue": Queues.MAINTENANCE, "expires": 60}},
        "sweep-leases": {"task": Tasks.SWEEP_LEASES, "schedule": 15.0,
                         "options": {"queue": Queues.MAINTENANCE, "expires": 60}},
    }


app = create_app(load_settings())
connect_signals(app)  # JSON logs, /metrics, heartbeat: only for the process's own app
