"""Operator alerts: once per level change, delivered by webhook (Slack-compatible) and SMS.

`AlertLevels` keeps the current level of each alert kind in one Redis hash and changes it
with a WATCH/MULTI compare-and-set, so several workers or beat leaders that see the same
crossing alert once. Delivery is a Celery task on `maintenance` with bounded, backed-off
retries: a webhook that is down never blocks sending and never repeats the level change.

Alert SMS go through kirim itself (the Enqueuer, idempotency key per alert and number). While
a circuit of the SMS lane is open (account, sms wallet, sender) they are skipped, not
enqueued: the provider would refuse them and they would be held and sent stale on resume,
perhaps never for a -5/-40 pause. A paused WhatsApp wallet does not stop them. The webhook
carries alerts during a pause; the "resumed" alert goes by SMS too and says what happened.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from celery import Celery, Task
from redis import Redis
from redis.exceptions import WatchError

from producer.core.contract import Channel
from producer.core.enqueue import Enqueuer
from producer.core.errors import InvalidMessage, KirimError
from producer.core.keys import Keys
from producer.core.redis_text import text
from producer.core.routing import Queues, Tasks
from worker.retry import RetryPolicy

if TYPE_CHECKING:
    from worker.services import Services

log = structlog.get_logger("kirim.alerts")

ALERT_MAX_RETRIES = 8
ALERT_RETRY = RetryPolicy(ALERT_MAX_RETRIES, base_delay_s=5.0, max_delay_s=600.0)
ALERT_SMS_CHANNEL = Channel.SMS  # the lane alert SMS travel on
ALERT_SMS_MAX_CHARS = 150  # one GSM-7 SMS, with room for the "[kirim] " prefix
SEVERE = frozenset({"critical", "expired", "paused"})


@dataclass(frozen=True)
class Alert:
    """One alert: what changed (`kind`, `level`, `previous`) and a line for people."""

    kind: str
    level: str
    previous: str
    text: str
    details: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"{int(time.time())}-{secrets.token_hex(4)}")

    def payload(self) -> dict[str, Any]:
        """The webhook body: `text` for Slack-style receivers, structured fields for others."""
        return {"text": f"[kirim] {self.text}", "kind": self.kind, "level": self.level,
                "previous": self.previous, "id": self.id, "at": time.time(), **self.details}


class AlertNotDelivered(KirimError):
    """A webhook refused or did not answer an alert (retried with backoff)."""


class AlertLevels:
    """The current level of each alert kind, shared by every worker (Redis hash)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.key = keys.alerts

    def advance(self, kind: str, level: str) -> str | None:
        """Set `kind` to `level`; the previous level ("" if none) if it changed, else None."""
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.key)
                    raw = pipe.hget(self.key, kind)
                    previous = text(raw)
                    if previous == level:
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    pipe.hset(self.key, kind, level)
                    pipe.execute()
                    return previous
                except WatchError:
                    continue  # another worker changed a level meanwhile: read again

    def leave_note(self, kind: str, note: str) -> None:
        """A line for the next alert of `kind`, whichever worker raises it."""
        self.redis.hset(self.key, f"{kind}:note", note)

    def take_note(self, kind: str) -> str:
        """The note left for `kind` ("" if none), removed."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hget(self.key, f"{kind}:note")
        pipe.hdel(self.key, f"{kind}:note")
        raw, _ = pipe.execute()
        return text(raw)

    def current(self) -> dict[str, str]:
        """Every kind's level."""
        raw = self.redis.hgetall(self.key).items()
        return {text(k): text(v) for k, v in raw if not text(k).endswith(":note")}


def notify(app: Celery, alert: Alert, *, webhook_url: str | None, sms_numbers: list[str],
           sms_blocked: str | None) -> None:
    """Log the alert and hand its deliveries to the `maintenance` queue."""
    emit = log.error if alert.level in SEVERE else log.warning
    emit("alert", kind=alert.kind, level=alert.level, previous=alert.previous,
         text=alert.text, alert_id=alert.id)
    payload = alert.payload()
    if webhook_url:
        app.send_task(Tasks.DELIVER_ALERT, args=[payload, "webhook"], queue=Queues.MAINTENANCE)
    if sms_numbers and sms_blocked:
        log.warning("alert_sms_skipped", alert_id=alert.id,
                    why=f"the {sms_blocked} circuit is open: the SMS lane cannot send")
    elif sms_numbers:
        app.send_task(Tasks.DELIVER_ALERT, args=[payload, "sms"], queue=Queues.MAINTENANCE)


def sms_numbers(raw: str) -> list[str]:
    """The operator numbers of `KIRIM_ALERT_SMS_NUMBERS` (comma-separated)."""
    return [n.strip() for n in raw.split(",") if n.strip()]


def post_webhook(http: httpx.Client, url: str, payload: dict[str, Any]) -> None:
    """POST one alert as JSON; raise AlertNotDelivered unless the receiver answers 2xx."""
    try:
        reply = http.post(url, json=payload)
    except httpx.HTTPError as exc:
        raise AlertNotDelivered(
            f"alert {payload['id']}: webhook did not answer ({type(exc).__name__});"
            " check KIRIM_ALERT_WEBHOOK_URL") from exc
    if not reply.is_success:
        raise AlertNotDelivered(
            f"alert {payload['id']}: webhook answered HTTP {reply.status_code};"
            " check KIRIM_ALERT_WEBHOOK_URL")


def enqueue_sms(enqueuer: Enqueuer, numbers: list[str], payload: dict[str, Any]) -> int:
    """Enqueue the alert as an SMS to each number (idempotent per alert and number)."""
    text = payload["text"][:ALERT_SMS_MAX_CHARS]
    sent = 0
    for number in numbers:
        try:
            enqueuer.submit({"channel": "sms", "to": number, "text": text,
                             "idempotency_key": f"alert-{payload['id']}-{number}"},
                            source="alerts")
            sent += 1
        except InvalidMessage as exc:
            log.error("alert_sms_refused", alert_id=payload["id"], error=str(exc),
                      hint="fix KIRIM_ALERT_SMS_NUMBERS")
    return sent


def deliver(svc: Services, task: Task, payload: dict[str, Any], channel: str) -> str:
    """Deliver one alert over one channel (webhook or sms); a failure retries the task with
    backoff, and the alert is dropped (logged) after ALERT_MAX_RETRIES."""
    try:
        if channel == "sms":
            enqueue_sms(svc.enqueuer, sms_numbers(svc.settings.alert_sms_numbers), payload)
        elif svc.settings.alert_webhook_url:
            post_webhook(svc.hook_http, svc.settings.alert_webhook_url, payload)
    except (AlertNotDelivered, KirimError) as exc:
        retries = task.request.retries
        if retries >= ALERT_MAX_RETRIES:
            log.error("alert_dropped", alert_id=payload["id"], channel=channel,
                      error=str(exc), attempts=retries + 1)
            return "dropped"
        log.warning("alert_retry", alert_id=payload["id"], channel=channel, error=str(exc))
        raise task.retry(countdown=ALERT_RETRY.delay_s(retries + 1), exc=exc) from exc
    return "delivered"
