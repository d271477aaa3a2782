"""Status callbacks to producers: HMAC-signed POSTs of every state change (issue 5).

The Lua scripts XADD each state change of a message that has a `callback_url` to
`Keys.events` in the same atomic step as the change. `kirim.drain_callbacks` (beat, every
second, on `reports`, so a slow producer never delays sending or maintenance) reads that
stream through the consumer group `callbacks`: one consumer per worker process, one drain at
a time per process, so several workers share the stream. Entries a dead consumer left
unacked are taken over with XAUTOCLAIM after CLAIM_IDLE_MS.

Order: within one drain, the events of one message are POSTed one after the other, and a
failed event holds back that message's later events until it is delivered or dropped.
Across consumers (a message's events read by two workers) order is not guaranteed; every
body carries `from` and `at`, and states only move forward, so a receiver can drop a stale one.
Delivery is at least once: `X-Kirim-Event` is the same on every retry of one event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import socket
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import structlog
from celery import Celery
from prometheus_client import Counter
from redis import Redis
from redis.exceptions import ResponseError

from producer.errors import KirimError
from producer.keys import Keys
from producer.records import MessageStore
from producer.routing import Queues, Tasks
from producer.settings import Settings

log = structlog.get_logger("kirim.callbacks")

GROUP = "callbacks"
BATCH = 200
LANES = 8  # messages whose callbacks are POSTed in parallel by one drain
RUN_BUDGET_S = 20.0  # a drain stops starting POSTs after this long
CLAIM_IDLE_MS = 60_000  # far above RUN_BUDGET_S + timeout: never steals a POST in flight
BASE_DELAY_S, MAX_DELAY_S = 1.0, 300.0
DELIVERIES = Counter("kirim_status_callbacks", "Status callback POSTs by result",
                     ["result"])

Entry = tuple[str, dict[str, str]]


class CallbackFailed(KirimError):
    """The producer's callback URL did not take a status callback (retried with backoff)."""


def sign(secret: bytes, body: bytes) -> str:
    """The X-Kirim-Signature value: HMAC-SHA256 of the raw body, hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def callback_body(fields: dict[str, str]) -> bytes:
    """The JSON a producer receives for one state change."""
    return json.dumps({
        "id": fields.get("id"), "state": fields.get("state"), "from": fields.get("from") or None,
        "code": fields.get("code") or None, "provider_id": fields.get("provider_id") or None,
        "at": float(fields["at"]) if fields.get("at") else None,
    }, separators=(",", ":")).encode()


def post_callback(http: httpx.Client, url: str, body: bytes, secret: bytes,
                  event_id: str) -> None:
    """POST one signed callback; raise CallbackFailed unless the receiver answers 2xx."""
    headers = {"Content-Type": "application/json", "X-Kirim-Event": event_id,
               "X-Kirim-Timestamp": str(int(time.time()))}
    if secret:
        headers["X-Kirim-Signature"] = sign(secret, body)
    try:
        reply = http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise CallbackFailed(f"event {event_id}: {type(exc).__name__}") from exc
    if not reply.is_success:
        raise CallbackFailed(f"event {event_id}: HTTP {reply.status_code}")


def backoff_s(attempts: int) -> float:
    """Wait before attempt n+1: base·2^(n-1), capped, half of it random."""
    ceiling = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class CallbackDrain:
    """One consumer of the events stream: read, POST in per-message order, ack or back off."""

    def __init__(self, redis: Redis, keys: Keys, store: MessageStore, http: httpx.Client,
                 settings: Settings, consumer: str) -> None:
        self.redis, self.keys, self.store, self.http = redis, keys, store, http
        self.secret = settings.status_callback_secret.get_secret_value().encode()
        self.max_attempts = settings.status_callback_max_attempts
        self.consumer = consumer
        self.attempts_key = f"{keys.prefix}:callbacks:attempts"
        self.stats_key = f"{keys.prefix}:callbacks:stats"

    def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start) unless it exists."""
        try:
            self.redis.xgroup_create(self.keys.events, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self) -> int:
        """One drain: returns how many callbacks were delivered."""
        self.ensure_group()
        self.redis.xautoclaim(self.keys.events, GROUP, self.consumer, CLAIM_IDLE_MS,
                              start_id="0-0", count=BATCH)
        entries = self._read("0") + self._read(">")
        lanes = self._lanes(entries)
        if not lanes:
            return 0
        deadline = time.monotonic() + RUN_BUDGET_S
        with ThreadPoolExecutor(max_workers=min(LANES, len(lanes))) as pool:
            return sum(pool.map(lambda lane: self._lane(lane, deadline), lanes.values()))

    def _read(self, start: str) -> list[Entry]:
        reply: Any = self.redis.xreadgroup(GROUP, self.consumer, {self.keys.events: start},
                                           count=BATCH)
        out: list[Entry] = []
        for _, items in reply or []:
            for eid, fields in items:
                out.append((_text(eid), {_text(k): _text(v) for k, v in (fields or {}).items()}))
        return out

    def _lanes(self, entries: Iterable[Entry]) -> dict[str, list[Entry]]:
        lanes: dict[str, list[Entry]] = {}
        seen: set[str] = set()
        for eid, fields in sorted(entries, key=lambda e: _stream_order(e[0])):
            if eid in seen:
                continue
            seen.add(eid)
            if not fields.get("id"):
                self._finish(eid, "trimmed")  # deleted from the stream while pending
                continue
            lanes.setdefault(fields["id"], []).append((eid, fields))
        return lanes

    def _lane(self, lane: list[Entry], deadline: float) -> int:
        """POST one message's events in order; stop at the first not yet delivered."""
        delivered = 0
        url: str | None = None
        for eid, fields in lane:
            attempts, next_at = self._attempts(eid)
            if next_at > time.time() or time.monotonic() > deadline:
                return delivered
            if url is None:
                record = self.store.get(fields["id"])
                url = (record.get("callback_url") or "") if record else ""
            if not url:
                self._finish(eid, "no_url")
                continue
            if not self._deliver(eid, fields, url, attempts):
                return delivered
            delivered += 1
        return delivered

    def _deliver(self, eid: str, fields: dict[str, str], url: str, attempts: int) -> bool:
        try:
            post_callback(self.http, url, callback_body(fields), self.secret, eid)
        except CallbackFailed as exc:
            attempts += 1
            if attempts >= self.max_attempts:
                log.error("status_callback_dropped", message_id=fields["id"], event=eid,
                          state=fields.get("state"), attempts=attempts, error=str(exc))
                self._finish(eid, "dropped")
                return True  # the next event of this message may go now
            delay = backoff_s(attempts)
            log.warning("status_callback_retry", message_id=fields["id"], event=eid,
                        attempts=attempts, retry_in_s=round(delay, 2), error=str(exc))
            self.redis.hset(self.attempts_key, eid, f"{attempts}:{time.time() + delay}")
            DELIVERIES.labels("retry").inc()
            return False
        self._finish(eid, "delivered")
        return True

    def _attempts(self, eid: str) -> tuple[int, float]:
        raw = self.redis.hget(self.attempts_key, eid)
        if not raw:
            return 0, 0.0
        count, _, next_at = _text(raw).partition(":")
        return int(count), float(next_at)

    def _finish(self, eid: str, result: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.keys.events, GROUP, eid)
        pipe.xdel(self.keys.events, eid)  # the stream exists only for this group
        pipe.hdel(self.attempts_key, eid)
        pipe.hincrby(self.stats_key, result, 1)
        pipe.execute()
        DELIVERIES.labels(result).inc()


def _stream_order(eid: str) -> tuple[int, int]:
    ms, _, seq = eid.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_drain_lock = threading.Lock()


def register(app: Celery) -> None:
    """Register the status-callback tasks on `app`."""
    from worker.alerts import hook_http
    from worker.app import services_for

    consumer = f"{socket.gethostname()}-{os.getpid()}"

    @app.task(name=Tasks.DRAIN_CALLBACKS, ignore_result=True)
    def drain_callbacks() -> int:
        """POST pending status callbacks (one drain per process at a time)."""
        if not _drain_lock.acquire(blocking=False):
            return 0  # the previous drain of this process is still running
        try:
            svc = services_for(app)
            return CallbackDrain(svc.redis, svc.keys, svc.store, hook_http(app), svc.settings,
                                 consumer).run()
        finally:
            _drain_lock.release()


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat schedule entries for status callbacks: a drain every second on `reports`."""
    return {"drain-callbacks": {"task": Tasks.DRAIN_CALLBACKS, "schedule": 1.0,
                                "options": {"queue": Queues.REPORTS, "expires": 5}}}
