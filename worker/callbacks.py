"""Status callbacks to producers: signed POSTs of every state change (issues 5 and 14).

The Lua scripts XADD each state change of a message that has a `callback_url` to
`Keys.events` in the same atomic step as the change. `kirim.drain_callbacks` (beat, every
second, on `reports`, so a slow producer never delays sending or maintenance) reads that
stream through the consumer group `callbacks` into lanes (worker/callback_lanes.py: one per
message, its next attempt a score in a sorted set), then POSTs due lanes on a thread pool until
none is due or RUN_BUDGET_S is spent. Workers share the lanes, each leased to one drain.

Signatures (Standard Webhooks, docs/callbacks.md): every POST carries `webhook-id` (the
event's stream id, the same on every retry), `webhook-timestamp` (epoch seconds of this
attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under each
secret of the message's `source` (the key that created it, KIRIM_CALLBACK_SECRETS), space-
separated; during a rotation there are two, so a receiver holding either secret accepts it.
A message whose source has no secret is never POSTed unsigned: its events finish as `unsigned`.

NusaSMS-style DR callbacks (issue 16): a drop-in message of a key with a `dr_callback_url`
has `callback_format` "nusasms" on its record. Its lane sends only the final report, as
NusaSMS does: a GET adding `ref_no` (the 18-digit id), `status`, `sent_date`, `err_code` to
the URL's query, unsigned like NusaSMS's; earlier states finish as `skipped`. Same lanes,
retries, breaker and address rules.

Where a callback may go (no SSRF): before a POST the drain applies the source's KeyPolicy
(https only unless `callback_http`; the host on `callback_hosts` when that list is not empty),
and the client (worker/safe_http.py) resolves the host itself, refuses if any address is not
public (unless KIRIM_CALLBACK_ALLOW_PRIVATE), and connects to the address it checked. A refused
URL or address is final: its events finish as `refused`, logged with the reason (never the
URL), not retried and not counted by the breaker. Redirects are never followed.

One receiver must not slow the others: a drain keeps at most `status_callback_per_host`
lanes of one host in flight (a lane over the cap waits for a later pass, no thread blocks on
it), and after `status_callback_breaker_failures` failures in a row a host's breaker opens
for a cool-down that doubles per reopen (capped at `status_callback_max_delay_s`). Events of
an open host are not POSTed and do not spend attempts; when the cool-down ends, one trial
POST decides. A failed event backs off base·2^(n-1), jittered, and is dropped after
`status_callback_max_attempts`. An event whose data is garbage is finished as `poisoned`.

Order: the events of one message are POSTed one after the other, and a failed event holds
back that message's later events until it is delivered or dropped. Every body carries
`from` and `at`, and states only move forward, so a receiver can drop a stale one.
Delivery is at least once: `webhook-id` is the same on every retry of one event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import random
import socket
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from prometheus_client import Counter
from redis import Redis

from producer.core.contract import State
from producer.core.errors import KirimError
from producer.core.keys import Keys
from producer.core.nusasms_report import report_fields
from producer.core.records import MessageStore
from producer.core.redis_text import text, text_map
from producer.core.routing import Queues, Tasks
from producer.core.settings import Settings
from producer.core.tenants import KeyPolicy
from worker.callback_lanes import Breaker, Found, Lane, LaneStore
from worker.safe_http import AddressRefused

if TYPE_CHECKING:
    from worker.services import Services

log = structlog.get_logger("kirim.callbacks")

GROUP = "callbacks"
BATCH = 200  # events read, or lanes taken, per Redis call
PAGES = 5  # reads and takes per pass: a flood is read, a crowd of skipped lanes passed over
LANES = 16  # lanes POSTed in parallel by one drain
POLL_S = 0.2  # while POSTs are in flight, how often a drain looks for new and due lanes
RUN_BUDGET_S = 20.0  # a drain stops starting POSTs after this long
CAP_WAIT_S = 0.5  # a lane whose host is at its cap is due again after this
RECHECK_S = 1.0  # a lane whose host is on its half-open trial asks again after this
CLAIM_IDLE_MS = 60_000  # the sweep looks only at events pending this long
BASE_DELAY_S, MAX_DELAY_S = 1.0, 300.0  # defaults of the status_callback_* settings
# Garbage in one event or record. Never a redis error: that ends the drain; the next tick retries.
DATA_ERRORS = (ValueError, KeyError, TypeError, UnicodeError)
DELIVERIES = Counter("kirim_status_callbacks", "Status callback events by result", ["result"])

_STATES = frozenset(s.value for s in State)
# The states a NusaSMS-style DR callback reports: the final ones (kirim's `dead` as F). A
# WhatsApp's `read` (API v1.0) follows its `delivered`, already reported as D: not again.
# kirim's own callbacks report every state, `read` included.
REPORT_STATES = frozenset({State.DELIVERED, State.UNDELIVERED, State.FAILED, State.REJECTED,
                           State.EXPIRED, State.DEAD})


class CallbackFailed(KirimError):
    """The producer's callback URL did not take a status callback (retried with backoff)."""


class CallbackRefused(KirimError):
    """The callback URL or its address may not be reached: final, never retried."""


def sign(secrets: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<base64 HMAC-SHA256 of "id.ts.body">` per secret,
    space-separated (Standard Webhooks)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(s, signed, hashlib.sha256).digest()
                                             ).decode() for s in secrets)


def webhook_headers(secrets: Sequence[bytes], event_id: str, body: bytes,
                    timestamp: int | None = None) -> dict[str, str]:
    """The headers of one POST: Standard Webhooks id, timestamp (now) and signature."""
    if not secrets:
        raise ValueError("a status callback is never sent unsigned")
    ts = int(time.time()) if timestamp is None else timestamp
    return {"Content-Type": "application/json", "webhook-id": event_id,
            "webhook-timestamp": str(ts), "webhook-signature": sign(secrets, event_id, ts, body)}


def callback_body(fields: dict[str, str]) -> bytes:
    """The JSON a producer receives for one state change."""
    return json.dumps({
        "id": fields.get("id"), "state": fields.get("state"), "from": fields.get("from") or None,
        "code": fields.get("code") or None, "provider_id": fields.get("provider_id") or None,
        "at": float(fields["at"]) if fields.get("at") else None,
    }, separators=(",", ":")).encode()


def event_fields(raw: dict[bytes, bytes]) -> dict[str, str]:
    """A stream entry's fields, checked: ValueError, KeyError or UnicodeError if garbage."""
    fields = text_map(raw)  # strict: a field that is not UTF-8 poisons this event alone
    if not fields["id"] or fields["state"] not in _STATES:
        raise ValueError(f"no message id or an unknown state {fields['state']!r}")
    if not math.isfinite(float(fields["at"])):
        raise ValueError(f"at is not a time: {fields['at']!r}")
    return fields


def attempt_count(raw: bytes | None) -> int:
    """Failed POSTs of an event so far, from its stored "n:epoch"."""
    return int(text(raw).partition(":")[0]) if raw else 0


def get_callback(http: httpx.Client, url: str, query: dict[str, str], event_id: str) -> None:
    """GET NusaSMS's DR callback (its fields added to the URL's own query); CallbackRefused
    if its address may not be reached, CallbackFailed unless the receiver answers 2xx."""
    _deliver(event_id, lambda: http.get(httpx.URL(url).copy_merge_params(query)))


def post_callback(http: httpx.Client, url: str, body: bytes, secrets: Sequence[bytes],
                  event_id: str) -> None:
    """POST one signed callback; CallbackRefused if its address may not be reached,
    CallbackFailed unless the receiver answers 2xx."""
    headers = webhook_headers(secrets, event_id, body)
    _deliver(event_id, lambda: http.post(url, content=body, headers=headers))


def _deliver(event_id: str, request: Callable[[], httpx.Response]) -> None:
    """Make one callback request, its outcome as CallbackRefused or CallbackFailed."""
    try:
        reply = request()
    except AddressRefused as exc:
        raise CallbackRefused(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise CallbackFailed(f"event {event_id}: {type(exc).__name__}") from exc
    if not reply.is_success:
        raise CallbackFailed(f"event {event_id}: HTTP {reply.status_code}")


def policy_refusal(policy: KeyPolicy, source: str, url: str) -> str | None:
    """Why `source`'s policy forbids this callback URL (scheme, host allowlist), or None."""
    parsed = httpx.URL(url)  # already parsed once by the lane: valid
    if parsed.scheme != "https" and not policy.callback_http:
        return f"{parsed.scheme}:// is not allowed for key {source!r} (https only)"
    host = parsed.raw_host.decode("ascii").lower()
    if not policy.allows_callback_host(host):
        return f"{host} is not on the callback_hosts of key {source!r}"
    return None


def backoff_s(attempts: int, base_s: float = BASE_DELAY_S, max_s: float = MAX_DELAY_S) -> float:
    """Wait before attempt n+1: base·2^(n-1), capped, half of it random."""
    ceiling = min(max_s, base_s * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class CallbackDrain:
    """One drain: take due lanes, POST each in order on a thread pool, finish or back off."""

    def __init__(self, redis: Redis, keys: Keys, http: httpx.Client, settings: Settings,
                 consumer: str) -> None:
        self.http = http  # the guarded client (worker/safe_http.py)
        self.settings = settings
        self._policies: dict[str, KeyPolicy] = {}
        self.max_attempts = settings.status_callback_max_attempts
        self.base_s, self.max_s = (settings.status_callback_base_delay_s,
                                   settings.status_callback_max_delay_s)
        self.per_host = settings.status_callback_per_host
        timeout = settings.status_callback_timeout_s
        # A lease outlives the longest a drain can hold a lane: no second drain POSTs it.
        self.lease_s = RUN_BUDGET_S + 2 * timeout + 10
        self.lanes = LaneStore(redis, keys, GROUP, consumer)
        self.store = MessageStore(redis, keys, settings.message_ttl_s)
        self.breaker = Breaker(redis, keys, settings.status_callback_breaker_failures,
                               settings.status_callback_breaker_cooldown_s, self.max_s,
                               trial_lease_s=2 * timeout + 5)

    def run(self) -> int:
        """POST due callbacks until none is due or the budget is spent; how many delivered."""
        self.lanes.ensure_group()
        self._count_poisoned(self.lanes.sweep(CLAIM_IDLE_MS, BATCH))
        deadline = time.monotonic() + RUN_BUDGET_S
        delivered = 0
        running: dict[Future[int], str] = {}
        with ThreadPoolExecutor(max_workers=LANES, thread_name_prefix="callback") as pool:
            while True:
                if time.monotonic() < deadline:
                    self._start(pool, running, deadline)
                if not running:
                    return delivered
                done, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    delivered += future.result()  # a redis error ends the drain here

    def _start(self, pool: ThreadPoolExecutor, running: dict[Future[int], str],
               deadline: float) -> None:
        """Read new events, then start due lanes on the free threads."""
        for _ in range(PAGES):
            read, poisoned = self.lanes.intake(BATCH)
            self._count_poisoned(poisoned)
            if read < BATCH:
                break
        busy = Tally(running.values())
        verdicts: dict[str, tuple[str, float]] = {}
        for _ in range(PAGES):  # skipped lanes are pushed back, so the next page is new ones
            room = LANES - len(running)
            taken = self.lanes.take(room, self.lease_s) if room > 0 else []
            for lane in taken:
                if self._admit(lane, busy, verdicts):
                    host = lane.host if self._will_post(lane) else ""  # "": holds no cap
                    busy[host] += 1
                    running[pool.submit(self._lane, lane, deadline)] = host
            if len(taken) < room or not taken:
                return

    def _admit(self, lane: Lane, busy: Tally[str], verdicts: dict[str, tuple[str, float]]
               ) -> bool:
        """Whether to POST this lane now; if not, push it back to when it may go."""
        now = time.time()
        if lane.host:
            lane.refusal = self._refusal(lane)
        if not self._will_post(lane):
            return True  # nothing to POST: finished as no_url, poisoned, refused or unsigned
        if busy[lane.host] >= self.per_host:
            self.lanes.settle(lane, now + CAP_WAIT_S)
            return False
        if lane.host not in verdicts:
            verdicts[lane.host] = self.breaker.check(lane.host, now)
        state, until = verdicts[lane.host]
        if state == "trial":
            lane.trial = True
            verdicts[lane.host] = ("busy", now)  # this lane holds the trial: the rest wait
        if state in ("closed", "trial"):
            return True
        self.lanes.settle(lane, until if state == "open" else now + RECHECK_S)
        return False

    def _lane(self, lane: Lane, deadline: float) -> int:
        """POST one message's events in order; stop at the first not yet delivered."""
        found = self.lanes.events(lane.eids)
        delivered, when = 0, 0.0
        for eid in lane.eids:
            if time.monotonic() > deadline:
                break
            result, hold = self._event(lane, eid, found.get(eid))
            delivered += result == "delivered"
            if hold is not None:
                when = hold
                break
        self.lanes.settle(lane, when or time.time())
        return delivered

    def _event(self, lane: Lane, eid: str, found: Found | None) -> tuple[str, float | None]:
        """Finish or fail one event: (result, when the lane may go on; None: at once)."""
        if found is None:
            return self._finish(lane, eid, "trimmed"), None  # MAXLEN trimmed it first
        try:
            fields, attempts = event_fields(found[0]), attempt_count(found[1])
            body = callback_body(fields)
            if lane.url_error:
                raise ValueError(lane.url_error)
        except DATA_ERRORS as exc:
            log.error("status_callback_poisoned", message_id=lane.mid, event_id=eid,
                      error=f"{type(exc).__name__}: {exc}")
            return self._finish(lane, eid, "poisoned"), None
        if not lane.host:
            return self._finish(lane, eid, "no_url"), None
        if lane.format == "nusasms":  # NusaSMS's DR callback: the final report only, a GET
            if fields["state"] not in REPORT_STATES:
                return self._finish(lane, eid, "skipped"), None
            query = self._report(lane)
            if query is None:
                return self._finish(lane, eid, "trimmed"), None  # the record expired first

            def send() -> None:
                get_callback(self.http, lane.url, query, eid)
        else:
            secrets = self._secrets(lane)
            if not secrets:
                log.error("status_callback_unsigned", message_id=lane.mid, event_id=eid,
                          source=lane.source, error="KIRIM_CALLBACK_SECRETS has no secret for"
                          f" key {lane.source!r}: its callbacks are not sent unsigned")
                return self._finish(lane, eid, "unsigned"), None

            def send() -> None:
                post_callback(self.http, lane.url, body, secrets, eid)
        if not lane.refusal:
            try:
                send()
            except CallbackFailed as exc:
                return self._failed(lane, eid, fields["state"], attempts + 1, exc)
            except CallbackRefused as exc:
                lane.refusal = str(exc)  # its later events are refused without a lookup
        if lane.refusal:
            log.error("status_callback_refused", message_id=lane.mid, event_id=eid,
                      source=lane.source, host=lane.host, reason=lane.refusal)
            return self._finish(lane, eid, "refused"), None
        if lane.trial:
            lane.trial = False
            log.info("status_callback_breaker_closed", host=lane.host)
        return self._finish(lane, eid, "delivered", lane.host), None

    def _will_post(self, lane: Lane) -> bool:
        """Whether the lane's events may be sent: a usable URL its key allows, and signed
        (NusaSMS's own DR callback is unsigned, as NusaSMS's is)."""
        return bool(lane.host and not lane.refusal
                    and (lane.format == "nusasms" or self._secrets(lane)))

    def _report(self, lane: Lane) -> dict[str, str] | None:
        """The NusaSMS DR fields of the lane's message, from its record (None: gone)."""
        record = self.store.get(lane.mid)
        return report_fields(record, lane.alias) if record is not None and lane.alias else None

    def _secrets(self, lane: Lane) -> list[bytes]:
        """The secrets the lane's callbacks are signed with ([]: its source has none)."""
        return self.settings.callback_secrets_for(lane.source) if lane.source else []

    def _refusal(self, lane: Lane) -> str:
        """Why the source's policy forbids the lane's URL ("" if it allows it)."""
        policy = self._policies.get(lane.source)
        if policy is None:
            policy = self._policies[lane.source] = self.settings.policy_for(lane.source)
        return policy_refusal(policy, lane.source, lane.url) or ""

    def _failed(self, lane: Lane, eid: str, state: str, attempts: int,
                exc: CallbackFailed) -> tuple[str, float | None]:
        """Count a failed POST: back off, or drop once the attempts are spent."""
        now = time.time()
        verdict, reopen = self.breaker.failed(lane.host, now)
        if verdict == "opened":
            log.warning("status_callback_breaker_open", host=lane.host,
                        cooldown_s=round(reopen - now, 2), error=str(exc))
        hold = None if verdict == "closed" else reopen  # an open host: no more POSTs to it
        if attempts >= self.max_attempts:
            log.error("status_callback_dropped", message_id=lane.mid, event_id=eid,
                      state=state, attempts=attempts, error=str(exc))
            return self._finish(lane, eid, "dropped"), hold
        retry_at = now + backoff_s(attempts, self.base_s, self.max_s)
        self.lanes.set_attempts(eid, attempts, retry_at)
        log.warning("status_callback_retry", message_id=lane.mid, event_id=eid,
                    attempts=attempts, retry_in_s=round(retry_at - now, 2), error=str(exc))
        DELIVERIES.labels("retry").inc()
        return "retry", max(retry_at, hold or 0.0)

    def _finish(self, lane: Lane, eid: str, result: str, healthy_host: str = "") -> str:
        self.lanes.finish(lane, eid, result, healthy_host)
        DELIVERIES.labels(result).inc()
        return result

    def _count_poisoned(self, eids: list[str]) -> None:
        """Entries the intake finished as poisoned (no message id): log and count each."""
        for eid in eids:
            log.error("status_callback_poisoned", event_id=eid, error="no message id")
            DELIVERIES.labels("poisoned").inc()


_drain_lock = threading.Lock()
CONSUMER = f"{socket.gethostname()}-{os.getpid()}"


def drain(svc: Services) -> int:
    """POST pending status callbacks; one drain per process at a time (a second returns 0)."""
    if not _drain_lock.acquire(blocking=False):
        return 0  # the previous drain of this process is still running
    try:
        return CallbackDrain(svc.redis, svc.keys, svc.callback_http, svc.settings,
                             CONSUMER).run()
    finally:
        _drain_lock.release()


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat schedule entries for status callbacks: a drain every second on `reports`."""
    return {"drain-callbacks": {"task": Tasks.DRAIN_CALLBACKS, "schedule": 1.0,
                                "options": {"queue": Queues.REPORTS, "expires": 5}}}
