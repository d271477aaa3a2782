"""The Celery app a producer publishes with, and the broker options workers share with it."""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from producer.core.redis_connect import broker_sentinel_options, broker_url, broker_use_ssl
from producer.core.routing import Queues
from producer.core.settings import Settings


def declared_queues() -> list[Queue]:
    """kirim's queues, each on its own direct exchange with its own name as routing key (the
    declaration Celery makes for a queue it was not told about). A bare `Queue(name)` in
    task_queues gets Celery's default exchange and routing key instead (task_default_queue's
    name): every queue bound to the `maintenance` exchange with the key `maintenance`.

    Publishing is unaffected either way: Celery sends to a direct queue through the anonymous
    exchange with the queue's name as routing key, which kombu's Redis transport LPUSHes to
    the list of that name; producer/core/envelope.py writes the same (exchange "")."""
    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in Queues.ALL]


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
        # With Sentinels: the master's name and the Sentinels' options (redis_connect.py).
        **broker_sentinel_options(settings),
    }


def make_celery(settings: Settings, name: str = "kirim-producer") -> Celery:
    """A Celery app bound to the broker, with JSON only and no result backend."""
    # KIRIM_REDIS_URL, or kombu's sentinel:// URLs when KIRIM_REDIS_SENTINELS is set.
    app = Celery(name, broker=broker_url(settings), set_as_current=False)
    if (use_ssl := broker_use_ssl(settings)) is not None:
        app.conf.broker_use_ssl = use_ssl
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
        # The same declarations as the workers: a publish declares (binds) its queue.
        task_queues=declared_queues(),
        enable_utc=True,
    )
    return app
