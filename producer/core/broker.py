"""The Celery app a producer publishes with, and the broker options workers share with it."""

from __future__ import annotations

from typing import Any

from celery import Celery

from producer.core.settings import Settings


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's Redis transport options; the same on both sides of the queue."""
    return {
        # Above the longest task and every countdown (Settings checks the retry cap against
        # it): a message unacked for longer is handed to another worker, i.e. run twice.
        "visibility_timeout": settings.visibility_timeout_s,
        # Look for unacked messages of dead workers every 10 s, scanning every time, so a
        # SIGKILLed worker's tasks come back soon after their visibility timeout.
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
        # A consumer listening on otp,sms,wa takes from otp first whenever it has work.
        "queue_order_strategy": "priority",
        # Fail a publish fast instead of hanging when Redis vanishes without closing TCP.
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "health_check_interval": 10,
    }


def make_celery(settings: Settings, name: str = "kirim-producer") -> Celery:
    """A Celery app bound to the broker, with JSON only and no result backend."""
    app = Celery(name, broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        # No `task-sent` events: new messages are written by accept.lua, not published here,
        # so Flower shows a task from the moment a worker receives it (workers' own events
        # are always on); queue depth and age are in kirim_queue_* metrics.
        task_send_sent_event=False,
        enable_utc=True,
    )
    return app
