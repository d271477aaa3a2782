"""Delivery reports: poll DR for sent messages (beat) and apply pushed reports, one way.

`kirim.poll_dr` (beat, `reports` queue) runs one poll round (worker/dr_poll.py: due ids under
a lease, a rate budget, per-message backoff, an account-wide pause) and hands every report to
`DeliveryReports.apply`. Pushed reports (`kirim.apply_dr`, published by
producer/api/callbacks.py) go through the same `apply`, with one difference: a push never
settles an `unknown` message (one kirim does not know whether NusaSMS accepted) by itself.
A push is authenticated only by the URL token, so a forged one must not turn `unknown` into
`sent` (nobody would resend it). It makes the message due for a DR pull now instead, and only
the pulled report, NusaSMS's own answer, moves it.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from celery import Task

from producer.core import lua
from producer.core.contract import State
from producer.core.publisher import inbound_argsrepr
from producer.core.records import Effects, MessageRecord, MessageStore
from producer.core.redis_text import text
from producer.core.routing import Queues, Tasks
from producer.core.settings import Settings
from worker import metrics
from worker.nusasms import (
    DeliveryReport,
    DeliveryState,
    NusaSMSError,
    report_from_fields,
)

if TYPE_CHECKING:
    from worker.nusasms.v1_replies import WAStatus
    from worker.services import Services

log = structlog.get_logger("kirim.delivery")

# A pushed report whose send is not recorded yet is retried this many times (backoff 1, 2,
# 4 … s, capped); the poll is the backstop if it never maps.
EARLY_REPORT_RETRIES = 8
INBOUND_FORWARD_RETRIES = 8
RETRY_CAP_S = 60.0
_FINAL_STATE = {
    DeliveryState.DELIVERED: State.DELIVERED, DeliveryState.UNDELIVERED: State.UNDELIVERED,
    DeliveryState.FAILED: State.FAILED, DeliveryState.REJECTED: State.REJECTED,
    DeliveryState.EXPIRED: State.EXPIRED, DeliveryState.READ: State.READ,
}


class Applied(StrEnum):
    """What a report (or a poll) did to a message."""

    FINAL = "final"  # moved to a final report state
    KEPT = "kept"  # not final: polled again later
    IGNORED = "ignored"  # late or duplicate: the message had moved on
    EXPIRED = "expired"  # no final report within dr_expiry_s
    LEFT_UNKNOWN = "left_unknown"  # an unknown message past the expiry: for an operator
    FAILED = "failed"  # the pull failed: polled again after the message's backoff
    MISSING = "missing"  # no record (older than the message TTL)
    DEFERRED = "deferred"  # not pulled: the round's budget ran out; still due
    PAUSED = "paused"  # refused for the whole account: polling paused, the message not charged
    UNREADABLE = "unreadable"  # its data could not be handled: out of the poll (expired if sent)
    CONFIRMING = "confirming"  # pushed for an unknown message: due for a DR pull, not moved


class DeliveryReports:
    """Takes due messages, polls their reports and applies reports (polled or pushed)."""

    def __init__(self, store: MessageStore, settings: Settings) -> None:
        self.store = store
        self.keys = store.keys
        self.redis = store.redis
        self.settings = settings
        self._keep = lua.register(self.redis, "dr_keep", package=lua.WORKER)
        self._wa_keep = lua.register(self.redis, "wa_keep", package=lua.WORKER)

    def apply(self, message_id: str, report: DeliveryReport, source: str) -> Applied:
        """Apply one report, polled or pushed: forward-only, so late or duplicate ones no-op."""
        record = self.store.get(message_id)
        if record is None:
            self.redis.zrem(self.keys.dr_pending, message_id)
            return Applied.MISSING
        if record.state == State.UNKNOWN:
            if source == "push":
                return self._confirm_by_pull(record, report)
            self._promote(record, report)
        elif record.state != State.SENT:
            log.info("dr_ignored", message_id=message_id, state=record.state,
                     letter=report.letter, source=source)
            return Applied.IGNORED
        if report.final:
            return self._finish(message_id, report, source)
        if report.state == DeliveryState.UNKNOWN_LETTER:
            self.redis.hincrby(self.keys.dr_letters, report.letter, 1)
            log.warning("dr_unknown_letter", message_id=message_id, letter=report.letter)
        return self._keep_pending(message_id, report)

    def _confirm_by_pull(self, record: MessageRecord, report: DeliveryReport) -> Applied:
        """A pushed report for an unknown message: make it due for a DR pull now, unmoved.

        The pull asks NusaSMS about the message's own provider id; a message without one gets
        the push's ref_no, which kirim itself mapped to it (`Keys.by_provider_id`). Only
        while the message is still unknown (WATCH): one that moved on is left alone.
        """
        key, now = self.keys.message(record.id), time.time()
        scheduled = False

        def schedule(pipe: Any) -> None:
            nonlocal scheduled
            state, pid = pipe.hmget(key, "state", "provider_id")
            scheduled = text(state) == State.UNKNOWN
            if not scheduled:
                return
            pipe.multi()
            if not pid:
                pipe.hset(key, "provider_id", report.ref_no)
            # LT: due now, or sooner than a backoff it had; never later.
            pipe.zadd(self.keys.dr_pending, {record.id: now}, lt=True)

        self.redis.transaction(schedule, key)
        if not scheduled:
            return Applied.IGNORED
        log.warning("dr_push_unconfirmed", message_id=record.id, letter=report.letter,
                    ref_no=report.ref_no,
                    why="a pushed report never settles an unknown message: a DR pull will")
        return Applied.CONFIRMING

    def _promote(self, record: MessageRecord, report: DeliveryReport) -> None:
        """unknown → sent: a pulled report for its provider id shows NusaSMS accepted it."""
        since = record.get("updated_at") or str(time.time())
        fx = Effects(zrem=[(self.keys.unknown, record.id)],
                     zadd=[(self.keys.dr_pending, time.time(), record.id)])
        self.store.move(record.id, State.SENT, effects=fx,
                        note=f"delivery report {report.letter} shows NusaSMS accepted it",
                        set_fields={"provider_id": report.ref_no, "sent_at": since})

    def _finish(self, message_id: str, report: DeliveryReport, source: str) -> Applied:
        to = _FINAL_STATE[report.state]
        fields = {"dr_letter": report.letter, "dr_err_code": report.err_code or "",
                  "dr_sent_date": report.sent_date or "", "dr_at": time.time()}
        moved = self.store.move(
            message_id, to, note=f"delivery report {report.letter} ({source})",
            set_fields=fields, effects=Effects(zrem=[(self.keys.dr_pending, message_id)]),
            allowed_from=[State.SENT])
        if moved.ok:
            metrics.report_applied(self._channel(message_id), to.value, "v3")
        return Applied.FINAL if moved.ok else Applied.IGNORED

    def _channel(self, message_id: str) -> str | None:
        raw = self.redis.hget(self.keys.message(message_id), "channel")
        return text(raw) if raw is not None else None

    def apply_wa(self, message_id: str, status: WAStatus) -> Applied:
        """Apply one WhatsApp status polled from API v1.0, forward only: `sent → delivered →
        read` (both moves at once when the first status already has a read_date), or a
        final failure. The provider's dates go into the record and the timeline's notes.

        A delivered message stays polled (backed off) for its read receipt until
        dr_expiry_s after it was sent; then it just leaves the poll, delivered."""
        record = self.store.get(message_id)
        if record is None:
            self.redis.zrem(self.keys.dr_pending, message_id)
            return Applied.MISSING
        if record.state == State.UNKNOWN:  # its own ref_no answered: the provider has it
            self._promote(record, _as_report(status))
        elif record.state not in (State.SENT, State.DELIVERED):
            log.info("dr_ignored", message_id=message_id, state=record.state,
                     letter=status.letter, source="poll")
            self.redis.zrem(self.keys.dr_pending, message_id)
            return Applied.IGNORED
        if status.state in (DeliveryState.DELIVERED, DeliveryState.READ):
            return self._wa_forward(message_id, status)
        if status.final:
            if record.state == State.DELIVERED:  # forward only: a delivered one stays so
                log.info("dr_ignored", message_id=message_id, state=record.state,
                         letter=status.letter, source="poll")
                self.redis.zrem(self.keys.dr_pending, message_id)  # and leaves the poll
                return Applied.IGNORED
            return self._finish(message_id, _as_report(status), "v1 status")
        if status.state == DeliveryState.UNKNOWN_LETTER:
            self.redis.hincrby(self.keys.dr_letters, status.letter, 1)
            log.warning("dr_unknown_letter", message_id=message_id, letter=status.letter)
        return self._wa_keep_pending(message_id, status)

    def _wa_forward(self, message_id: str, status: WAStatus) -> Applied:
        """sent → delivered, and → read once read_date is there."""
        fields = {"dr_letter": status.letter, "dr_sent_date": status.sent_date or "",
                  "dr_delivered_date": status.delivered_date or "", "dr_at": time.time()}
        done = Effects(zrem=[(self.keys.dr_pending, message_id)])
        delivered_at = status.delivered_date or status.read_date or "?"
        delivered = self.store.move(
            message_id, State.DELIVERED, allowed_from=[State.SENT], set_fields=fields,
            note=f"WhatsApp delivered at {delivered_at} (v1 status {status.letter or '-'})")
        channel = "wa"
        if delivered.ok:
            metrics.report_applied(channel, State.DELIVERED.value, "v1")
        if status.read_date is None:  # not read yet: poll again later (backed off)
            kept = self._wa_keep_pending(message_id, status)
            return Applied.FINAL if delivered.ok else kept
        read = self.store.move(
            message_id, State.READ, allowed_from=[State.SENT, State.DELIVERED], effects=done,
            set_fields={**fields, "dr_read_date": status.read_date},
            note=f"WhatsApp read at {status.read_date} (v1 status {status.letter or '-'})")
        if read.ok:
            metrics.report_applied(channel, State.READ.value, "v1")
        else:
            self.redis.zrem(self.keys.dr_pending, message_id)
        return Applied.FINAL if read.ok or delivered.ok else Applied.IGNORED

    def _wa_keep_pending(self, message_id: str, status: WAStatus) -> Applied:
        s = self.settings
        next_at = self._wa_keep(
            keys=[self.keys.message(message_id), self.keys.dr_pending],
            args=[message_id, time.time(), s.dr_poll_interval_s, s.dr_backoff_max_s,
                  status.letter, status.sent_date or "", status.delivered_date or ""])
        return Applied.KEPT if next_at else Applied.IGNORED

    def _keep_pending(self, message_id: str, report: DeliveryReport) -> Applied:
        s = self.settings
        next_at = self._keep(
            keys=[self.keys.message(message_id), self.keys.dr_pending],
            args=[message_id, time.time(), s.dr_poll_interval_s, s.dr_backoff_max_s,
                  report.letter, report.err_code or "", report.sent_date or ""])
        return Applied.KEPT if next_at else Applied.IGNORED

    def too_old(self, record: MessageRecord) -> bool:
        """True once a message has waited dr_expiry_s for a final report."""
        since = float(record.get("sent_at") or record.get("updated_at") or time.time())
        return time.time() - since > self.settings.dr_expiry_s

    def expire(self, record: MessageRecord) -> Applied:
        """No final report in time: a sent message expires; an unknown one waits for a person."""
        if record.state != State.SENT:
            self.redis.zrem(self.keys.dr_pending, record.id)
            return Applied.LEFT_UNKNOWN if record.state == State.UNKNOWN else Applied.IGNORED
        moved = self.store.move(
            record.id, State.EXPIRED, allowed_from=[State.SENT],
            note=f"no final delivery report after {self.settings.dr_expiry_s}s",
            set_fields={"reason": "dr_expired"},
            effects=Effects(zrem=[(self.keys.dr_pending, record.id)]))
        return Applied.EXPIRED if moved.ok else Applied.IGNORED


def _as_report(status: WAStatus) -> DeliveryReport:
    """A v1.0 WhatsApp status in the legacy report's shape (for the shared moves)."""
    return DeliveryReport(ref_no=status.ref_no, letter=status.letter, state=status.state,
                          final=status.final, sent_date=status.sent_date, err_code=None)


def retry_countdown_s(retries: int, settings: Settings) -> float:
    """1, 2, 4 … s, under half the visibility timeout (a longer countdown is delivered twice)."""
    return float(min(2.0 ** retries, RETRY_CAP_S, settings.visibility_timeout_s / 2))


def apply_pushed(svc: Services, task: Task, fields: dict[str, Any]) -> str:
    """A pushed report: map its ref_no to a message, or retry until the send is recorded."""
    try:
        report = report_from_fields(fields, operation="delivery_report_push")
    except NusaSMSError as exc:
        log.warning("dr_push_malformed", error=str(exc))
        return "malformed"
    raw = svc.redis.get(svc.keys.by_provider_id(report.ref_no))
    if raw is None:
        retries = task.request.retries
        if retries >= EARLY_REPORT_RETRIES:
            log.warning("dr_push_unmapped", ref_no=report.ref_no, retries=retries)
            return "unmapped"
        raise task.retry(countdown=retry_countdown_s(retries, svc.settings))
    message_id = text(raw)
    return DeliveryReports(svc.store, svc.settings).apply(message_id, report, "push").value


def forward_inbound(svc: Services, task: Task, event: dict[str, Any]) -> int:
    """POST an inbound SMS as JSON to inbound_webhook_url; 5xx, 429 and network errors retry."""
    url = svc.settings.inbound_webhook_url
    if not url:
        return 0
    retries = task.request.retries
    # A retry is a new task message: without these Celery would write the event itself into
    # its argsrepr, and Flower would show the text and the full number.
    masked = {"argsrepr": inbound_argsrepr(event), "kwargsrepr": "{}"}
    try:
        response = svc.http.post(url, json=event, follow_redirects=False)
    except httpx.HTTPError as exc:
        if retries >= INBOUND_FORWARD_RETRIES:
            raise
        raise task.retry(countdown=retry_countdown_s(retries, svc.settings), exc=exc,
                         **masked) from exc
    if (response.status_code >= 500 or response.status_code == 429) \
            and retries < INBOUND_FORWARD_RETRIES:
        raise task.retry(countdown=retry_countdown_s(retries, svc.settings), **masked)
    if response.status_code >= 300:
        log.warning("inbound_forward_refused", status=response.status_code, id=event.get("id"))
    return response.status_code


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat schedule entries for delivery reports."""
    return {"poll-dr": {"task": Tasks.POLL_DR, "schedule": settings.dr_poll_interval_s,
                        "options": {"queue": Queues.REPORTS,
                                    "expires": max(2 * settings.dr_poll_interval_s, 10.0)}}}
