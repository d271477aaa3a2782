"""Delivery reports: poll DR for sent messages (beat) and apply pushed reports, one way.

`kirim.poll_dr` (beat, `reports` queue) takes due ids from `Keys.dr_pending` under a lease
(`dr_lease.lua`: a second poll running at the same time cannot take the same ids), asks
NusaSMS with `dr_concurrency` threads sharing the worker's httpx client, and hands every
report to `DeliveryReports.apply`. Pushed reports (`kirim.apply_dr`, published by
producer/api/callbacks.py) go through the same `apply`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import httpx
import structlog
from celery import Celery, Task

from producer.contract import State
from producer.keys import Keys
from producer.records import Effects, MessageRecord, MessageStore
from producer.routing import Queues, Tasks
from producer.settings import Settings
from worker.nusasms import (
    DeliveryReport,
    DeliveryState,
    NusaSMSClient,
    NusaSMSError,
    Outcome,
    report_from_fields,
)

log = structlog.get_logger("kirim.delivery")

# A pushed report whose send is not recorded yet is retried this many times (backoff 1, 2,
# 4 … s, capped); the poll is the backstop if it never maps.
EARLY_REPORT_RETRIES = 8
INBOUND_FORWARD_RETRIES = 8
RETRY_CAP_S = 60.0
_FINAL_STATE = {
    DeliveryState.DELIVERED: State.DELIVERED, DeliveryState.UNDELIVERED: State.UNDELIVERED,
    DeliveryState.FAILED: State.FAILED, DeliveryState.REJECTED: State.REJECTED,
    DeliveryState.EXPIRED: State.EXPIRED,
}


def unknown_letters_key(keys: Keys) -> str:
    """Hash: how many reports came with each letter outside nusasms-api.md §1.7."""
    return f"{keys.prefix}:dr:letters"


class Applied(StrEnum):
    """What a report (or a poll) did to a message."""

    FINAL = "final"  # moved to a final report state
    KEPT = "kept"  # not final: polled again later
    IGNORED = "ignored"  # late or duplicate: the message had moved on
    EXPIRED = "expired"  # no final report within dr_expiry_s
    LEFT_UNKNOWN = "left_unknown"  # an unknown message past the expiry: for an operator
    FAILED = "failed"  # the poll failed: nothing changed, polled next round
    MISSING = "missing"  # no record (older than the message TTL)


@cache
def _lua(name: str) -> str:
    return (resources.files("worker") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


class DeliveryReports:
    """Takes due messages, polls their reports and applies reports (polled or pushed)."""

    def __init__(self, store: MessageStore, settings: Settings) -> None:
        self.store = store
        self.keys = store.keys
        self.redis = store.redis
        self.settings = settings
        self._lease = self.redis.register_script(_lua("dr_lease"))
        self._keep = self.redis.register_script(_lua("dr_keep"))

    @property
    def lease_s(self) -> float:
        """How long a taken id is not due again: a whole batch's worst case, plus a margin."""
        s = self.settings
        rounds = math.ceil(s.dr_batch_size / s.dr_concurrency)
        return rounds * (s.nusasms_connect_timeout_s + s.nusasms_read_timeout_s) + 30.0

    def take_due(self, now: float) -> list[str]:
        """Up to dr_batch_size due ids, oldest-due first, leased to this caller."""
        raw = self._lease(keys=[self.keys.dr_pending],
                          args=[now, now + self.lease_s, self.settings.dr_batch_size])
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]

    def poll_due(self, client: NusaSMSClient) -> Counter[str]:
        """Poll due messages in batches until none is due or one poll interval is spent."""
        counts: Counter[str] = Counter()
        started = time.monotonic()
        with ThreadPoolExecutor(self.settings.dr_concurrency, "kirim-dr") as pool:
            while True:
                ids = self.take_due(time.time())
                counts.update(pool.map(lambda mid: self.poll_one(client, mid), ids))
                if (len(ids) < self.settings.dr_batch_size
                        or time.monotonic() - started > self.settings.dr_poll_interval_s):
                    return counts

    def poll_one(self, client: NusaSMSClient, message_id: str) -> Applied:
        """Pull one message's report and apply it; a failed pull changes nothing."""
        record = self.store.get(message_id)
        pid = record.get("provider_id") if record else None
        if record is None or record.state not in (State.SENT, State.UNKNOWN) or not pid:
            self.redis.zrem(self.keys.dr_pending, message_id)
            return Applied.MISSING if record is None else Applied.IGNORED
        try:
            report = client.delivery_report(pid)
        except NusaSMSError as exc:
            log.warning("dr_poll_failed", message_id=message_id, error=str(exc))
            if exc.outcome == Outcome.DEAD and self._too_old(record):
                return self._expire(record)
            self.redis.zadd(self.keys.dr_pending, {message_id: time.time()}, xx=True)
            return Applied.FAILED
        applied = self.apply(message_id, report, source="poll")
        if applied == Applied.KEPT and self._too_old(record):
            fresh = self.store.get(message_id)
            return self._expire(fresh) if fresh else Applied.MISSING
        return applied

    def apply(self, message_id: str, report: DeliveryReport, source: str) -> Applied:
        """Apply one report, polled or pushed: forward-only, so late or duplicate ones no-op."""
        record = self.store.get(message_id)
        if record is None:
            self.redis.zrem(self.keys.dr_pending, message_id)
            return Applied.MISSING
        if record.state == State.UNKNOWN:
            self._promote(record, report)
        elif record.state != State.SENT:
            log.info("dr_ignored", message_id=message_id, state=record.state,
                     letter=report.letter, source=source)
            return Applied.IGNORED
        if report.final:
            return self._finish(message_id, report, source)
        if report.state == DeliveryState.UNKNOWN_LETTER:
            self.redis.hincrby(unknown_letters_key(self.keys), report.letter, 1)
            log.warning("dr_unknown_letter", message_id=message_id, letter=report.letter)
        return self._keep_pending(message_id, report)

    def _promote(self, record: MessageRecord, report: DeliveryReport) -> None:
        """unknown → sent: any report for its provider id shows NusaSMS accepted it."""
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
        return Applied.FINAL if moved.ok else Applied.IGNORED

    def _keep_pending(self, message_id: str, report: DeliveryReport) -> Applied:
        s = self.settings
        next_at = self._keep(
            keys=[self.keys.message(message_id), self.keys.dr_pending],
            args=[message_id, time.time(), s.dr_poll_interval_s, s.dr_backoff_max_s,
                  report.letter, report.err_code or "", report.sent_date or ""])
        return Applied.KEPT if next_at else Applied.IGNORED

    def _too_old(self, record: MessageRecord) -> bool:
        since = float(record.get("sent_at") or record.get("updated_at") or time.time())
        return time.time() - since > self.settings.dr_expiry_s

    def _expire(self, record: MessageRecord) -> Applied:
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


def retry_countdown_s(retries: int, settings: Settings) -> float:
    """1, 2, 4 … s, under half the visibility timeout (a longer countdown is delivered twice)."""
    return float(min(2.0 ** retries, RETRY_CAP_S, settings.visibility_timeout_s / 2))


def apply_pushed(svc: Any, task: Task, fields: dict[str, Any]) -> str:
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
    message_id = raw.decode() if isinstance(raw, bytes) else str(raw)
    return DeliveryReports(svc.store, svc.settings).apply(message_id, report, "push").value


def forward_inbound(svc: Any, task: Task, event: dict[str, Any]) -> int:
    """POST an inbound SMS as JSON to inbound_webhook_url; 5xx, 429 and network errors retry."""
    url = svc.settings.inbound_webhook_url
    if not url:
        return 0
    retries = task.request.retries
    try:
        response = svc.http.post(url, json=event, follow_redirects=False)
    except httpx.HTTPError as exc:
        if retries >= INBOUND_FORWARD_RETRIES:
            raise
        raise task.retry(countdown=retry_countdown_s(retries, svc.settings), exc=exc) from exc
    if (response.status_code >= 500 or response.status_code == 429) \
            and retries < INBOUND_FORWARD_RETRIES:
        raise task.retry(countdown=retry_countdown_s(retries, svc.settings))
    if response.status_code >= 300:
        log.warning("inbound_forward_refused", status=response.status_code, id=event.get("id"))
    return response.status_code


def register(app: Celery) -> None:
    """Register the delivery-report tasks on `app`."""
    from worker.app import services_for

    @app.task(name=Tasks.POLL_DR, ignore_result=True)
    def poll_dr() -> dict[str, int]:
        """Poll DR for due sent messages (beat)."""
        svc = services_for(app)
        counts = DeliveryReports(svc.store, svc.settings).poll_due(svc.client)
        if counts:
            log.info("dr_polled", **counts)
        return dict(counts)

    @app.task(name=Tasks.APPLY_DR, bind=True, ignore_result=True, acks_late=True,
              max_retries=EARLY_REPORT_RETRIES)
    def apply_dr(self: Task, fields: dict[str, Any]) -> str:
        """Apply a pushed delivery report (fields as NusaSMS sent them)."""
        return apply_pushed(services_for(app), self, fields)

    @app.task(name=Tasks.FORWARD_INBOUND, bind=True, ignore_result=True, acks_late=True,
              max_retries=INBOUND_FORWARD_RETRIES)
    def forward_inbound_task(self: Task, event: dict[str, Any]) -> int:
        """Forward an inbound SMS to inbound_webhook_url."""
        return forward_inbound(services_for(app), self, event)


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat schedule entries for delivery reports."""
    return {"poll-dr": {"task": Tasks.POLL_DR, "schedule": settings.dr_poll_interval_s,
                        "options": {"queue": Queues.REPORTS,
                                    "expires": max(2 * settings.dr_poll_interval_s, 10.0)}}}
