"""One DR poll round: due ids under a lease, within a rate budget, each on its own.

A round takes due ids from `Keys.dr_pending` under a lease (`dr_lease.lua`: a second round
running at the same time cannot take the same ids) and pulls their reports with
`dr_concurrency` threads sharing the worker's httpx client. It is bounded three ways:

- every pull takes a slot of the DR rate budget (`Keys.dr_rate_limit`, one GCRA shared by all
  workers); a pull waits for its slot at most until the round's end (one poll interval), and
  when none comes the round stops and gives its untouched ids back at their due time;
- a failed pull backs off per message (`dr_fail.lua`: dr_poll_interval_s doubling up to
  dr_backoff_max_s, counted in `dr_failures`); past dr_expiry_s the message expires;
- a pull refused for the whole account (-5 credentials, -40 IP: `Action.PAUSE`) stops the
  round and pauses polling everywhere (`dr_pause.lua`, `Keys.dr_pause`: dr_pause_min_s
  doubling up to dr_pause_max_s), uncharged; after a pause one id is pulled at a time until
  one succeeds, which clears the pause.

An id whose data cannot be handled (DATA_ERRORS) leaves the poll on its own, expired with
reason `dr_unreadable: …` if it is sent, and the round goes on with the others.

A WhatsApp sent through NusaSMS API v1.0 (its record says `api: v1`) is polled the same way,
through `GET /whatsapp/status/{ref_no}` instead of `cmd=DR`, and stays polled after
`delivered` until it is `read` (or dr_expiry_s after it was sent, when it leaves the poll
delivered); SMS, OTP and legacy WhatsApp stay on `cmd=DR`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import ResponseError

from producer.core import lua
from producer.core.contract import State
from producer.core.quarantine import DATA_ERRORS
from producer.core.records import Effects, MessageRecord
from producer.core.redis_text import text
from worker.delivery import Applied, DeliveryReports
from worker.nusasms import (
    Action,
    NusaSMSClient,
    NusaSMSError,
    ProviderRejected,
    ProviderThrottled,
    ReplyLost,
)
from worker.nusasms.v1 import NusaSMSV1Client
from worker.ratelimit import RateLimiter

if TYPE_CHECKING:
    from worker.services import Services

log = structlog.get_logger("kirim.delivery")

# The DR command answers -22 for a ref_no NusaSMS does not know (the sandbox's reading of
# docs/nusasms-api.md §1.6; e.g. a WhatsApp id): that message's trouble, not the account's, so it
# backs off per message although the send table pauses the account on -22.
PER_MESSAGE_CODES = frozenset({-22})
_ERROR_CHARS = 200
_POLLED = (State.SENT, State.UNKNOWN)
_V1_POLLED = (State.SENT, State.UNKNOWN, State.DELIVERED)  # delivered: it may still be read
_PAUSE_HINT = ("NusaSMS refuses delivery-report pulls for the whole account: check"
               " KIRIM_NUSASMS_USER / KIRIM_NUSASMS_PASSWORD, the IP whitelist and"
               " KIRIM_NUSASMS_URL; polling probes with one pull after the pause and resumes"
               " by itself once one succeeds")


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]


def account_refused(exc: NusaSMSError) -> bool:
    """A pull refused for the whole account (credentials, IP, configuration)."""
    if exc.action != Action.PAUSE:
        return False
    return not (isinstance(exc, ProviderRejected) and exc.status.code in PER_MESSAGE_CODES)


class PollRound:
    """One poll round's shared state: its end, whether it stopped, and ids to give back."""

    def __init__(self, length_s: float) -> None:
        self.deadline = time.monotonic() + length_s
        self.probing = False  # a pause just ended: one pull at a time until one succeeds
        self.counts: Counter[str] = Counter()
        self.give_back: dict[str, float] = {}  # leased but not pulled: id → its due time
        self._stopped = threading.Event()

    @property
    def stopped(self) -> bool:
        """True once a pull paused the account, the budget ran out or the round failed."""
        return self._stopped.is_set()

    def stop(self) -> None:
        """Take no more ids; threads still holding one give it back."""
        self._stopped.set()


class DRPoller:
    """Runs poll rounds for one DeliveryReports (its store, settings and apply)."""

    def __init__(self, reports: DeliveryReports, wa_client: NusaSMSV1Client | None = None
                 ) -> None:
        self.reports = reports
        self.wa_client = wa_client  # API v1.0: WhatsApp statuses (None: no API key)
        self.settings = s = reports.settings
        self.keys = reports.keys
        self.redis = reports.redis
        self._lease = lua.register(self.redis, "dr_lease", package=lua.WORKER)
        self._fail = lua.register(self.redis, "dr_fail", package=lua.WORKER)
        self._pause = lua.register(self.redis, "dr_pause", package=lua.WORKER)
        self.budget = RateLimiter(self.redis, self.keys.dr_rate_limit, s.dr_rate_limit_per_s,
                                  s.dr_rate_limit_burst)

    @property
    def lease_s(self) -> float:
        """How long a taken id is not due again: a whole batch's worst case, plus a margin."""
        s = self.settings
        rounds = math.ceil(s.dr_batch_size / s.dr_concurrency)
        pull_s = s.nusasms_connect_timeout_s + s.nusasms_read_timeout_s
        # A pull may wait for its budget slot until the round's end before it starts.
        return rounds * pull_s + s.dr_poll_interval_s + 30.0

    @property
    def batch_size(self) -> int:
        """Ids leased at once: no more than the DR budget can pull in one round."""
        s = self.settings
        per_round = math.ceil(s.dr_rate_limit_per_s * s.dr_poll_interval_s)
        return min(s.dr_batch_size, per_round + s.dr_rate_limit_burst)

    def take_due(self, now: float, limit: int | None = None) -> list[str]:
        """Up to `limit` (dr_batch_size) due ids, oldest-due first, leased to this caller."""
        return list(self.lease_due(now, limit or self.settings.dr_batch_size))

    def lease_due(self, now: float, limit: int) -> dict[str, float]:
        """Up to `limit` due ids leased to this caller, oldest-due first, with their due time."""
        raw = self._lease(keys=[self.keys.dr_pending], args=[now, now + self.lease_s, limit])
        due: dict[str, float] = {}
        # Each member decoded on its own (strictly), and kept raw: one that is not UTF-8 is an
        # id no record can have, and only its raw bytes can remove it from the set.
        for member, score in zip(raw[::2], raw[1::2], strict=True):
            try:
                due[text(member)] = float(score)
            except UnicodeDecodeError as exc:  # an id no record can have: drop it here
                log.error("dr_unreadable", message_id=repr(member), error=_error_text(exc))
                self.redis.zrem(self.keys.dr_pending, member)
        return due

    def poll_due(self, client: NusaSMSClient) -> Counter[str]:
        """Poll due ids until none is due, the round's time or budget is spent, or it pauses."""
        rnd = PollRound(self.settings.dr_poll_interval_s)
        with ThreadPoolExecutor(self.settings.dr_concurrency, "kirim-dr") as pool:
            while self._may_poll(rnd):
                limit = 1 if rnd.probing else self.batch_size
                due = self.lease_due(time.time(), limit)
                self._run_batch(pool, client, rnd, due)
                if len(due) < limit or time.monotonic() > rnd.deadline:
                    break
        return rnd.counts

    def _may_poll(self, rnd: PollRound) -> bool:
        """False while polling is paused; after a pause, the round probes one id at a time."""
        if rnd.stopped:
            return False
        until = self.redis.hget(self.keys.dr_pause, "until")
        rnd.probing = until is not None
        if until is not None and float(until) > time.time():
            rnd.stop()
        return not rnd.stopped

    def _run_batch(self, pool: ThreadPoolExecutor, client: NusaSMSClient, rnd: PollRound,
                   due: dict[str, float]) -> None:
        futures = [pool.submit(self.poll_one, client, mid, rnd, due_at)
                   for mid, due_at in due.items()]
        try:
            rnd.counts.update(future.result() for future in futures)
        except BaseException:
            # Redis or the network failed: stop at once; leased ids come back at lease end.
            rnd.stop()
            for future in futures:
                future.cancel()
            raise
        if rnd.give_back:
            # At their old due time, so they keep their place in the queue.
            self.redis.zadd(self.keys.dr_pending, rnd.give_back, xx=True)
            rnd.give_back.clear()

    def poll_one(self, client: NusaSMSClient, message_id: str, rnd: PollRound,
                 due_at: float) -> Applied:
        """Pull one message's report and apply it; an id whose data fails leaves the poll."""
        try:
            return self._poll(client, message_id, rnd, due_at)
        # One id's data (a field that does not parse, a missing one, bad UTF-8), as the other
        # sweeps define it; a Redis or network error is not one: it aborts the round.
        except DATA_ERRORS as exc:
            return self._unreadable(message_id, exc)

    def _poll(self, client: NusaSMSClient, message_id: str, rnd: PollRound,
              due_at: float) -> Applied:
        record = self.reports.store.get(message_id)
        pid = record.get("provider_id") if record else None
        v1 = record is not None and record.get("api") == "v1"
        if record is None or record.state not in (_V1_POLLED if v1 else _POLLED) or not pid:
            self.redis.zrem(self.keys.dr_pending, message_id)
            return Applied.MISSING if record is None else Applied.IGNORED
        if not self._spend(rnd):
            rnd.give_back[message_id] = due_at
            return Applied.DEFERRED
        try:
            if v1:
                status = self._v1_client().wa_status(pid)
            else:
                report = client.delivery_report(pid)
        except NusaSMSError as exc:
            return self._pull_failed(record, exc, rnd, due_at)
        if rnd.probing:
            self._resume()
        if v1:
            applied = self.reports.apply_wa(message_id, status)
        else:
            applied = self.reports.apply(message_id, report, source="poll")
        if applied == Applied.KEPT and self.reports.too_old(record):
            fresh = self.reports.store.get(message_id)
            return self.reports.expire(fresh) if fresh else Applied.MISSING
        return applied

    def _v1_client(self) -> NusaSMSV1Client:
        """The API v1.0 client, or a failed pull (backed off) when this worker has no key."""
        if self.wa_client is None:
            raise ReplyLost("wa_status", "this message was sent through NusaSMS API v1.0 and"
                            " this worker has no KIRIM_NUSASMS_API_KEY to ask for its status")
        return self.wa_client

    def _spend(self, rnd: PollRound) -> bool:
        """One slot of the DR budget, waiting at most until the round's end; else stop it."""
        if rnd.stopped:
            return False
        # acquire_blocking sleeps out each wait the limiter names: never a busy loop.
        if self.budget.acquire_blocking(max(0.0, rnd.deadline - time.monotonic())):
            rnd.stop()
        return not rnd.stopped

    def _pull_failed(self, record: MessageRecord, exc: NusaSMSError, rnd: PollRound,
                     due_at: float) -> Applied:
        throttled = isinstance(exc, ProviderThrottled)
        if throttled or account_refused(exc):
            # Not this message's fault: it keeps its place, uncharged, and the round stops.
            rnd.stop()
            rnd.give_back[record.id] = due_at
            if throttled:
                log.warning("dr_poll_throttled", error=str(exc))
                return Applied.DEFERRED
            self._pause_polling(exc)
            return Applied.PAUSED
        log.warning("dr_poll_failed", message_id=record.id, error=str(exc))
        if self.reports.too_old(record):
            return self.reports.expire(record)
        s = self.settings
        next_at = self._fail(
            keys=[self.keys.message(record.id), self.keys.dr_pending],
            args=[record.id, time.time(), s.dr_poll_interval_s, s.dr_backoff_max_s,
                  str(exc)[:_ERROR_CHARS]])
        return Applied.FAILED if next_at else Applied.IGNORED

    def _pause_polling(self, exc: NusaSMSError) -> None:
        s = self.settings
        started, until, pause_s = self._pause(
            keys=[self.keys.dr_pause],
            args=[time.time(), s.dr_pause_min_s, s.dr_pause_max_s, str(exc)[:_ERROR_CHARS]])
        if int(started):  # one line per pause, however many threads and workers were refused
            log.error("dr_polling_paused", error=str(exc), pause_s=float(pause_s),
                      until=float(until), action=_PAUSE_HINT)

    def _resume(self) -> None:
        if self.redis.delete(self.keys.dr_pause):
            log.info("dr_polling_resumed")

    def _unreadable(self, message_id: str, exc: Exception) -> Applied:
        """Take an id whose data cannot be handled out of the poll for good (logged once)."""
        error = _error_text(exc)
        log.error("dr_unreadable", message_id=message_id, error=error)
        fx = Effects(zrem=[(self.keys.dr_pending, message_id)])
        try:
            moved = self.reports.store.move(
                message_id, State.EXPIRED, allowed_from=[State.SENT], effects=fx,
                note=f"delivery report handling failed: {error}",
                set_fields={"reason": f"dr_unreadable: {error}"}).ok
        except ResponseError as script_exc:  # the transition script choked on the same data
            log.error("dr_unreadable_not_expired", message_id=message_id, error=str(script_exc))
            moved = False
        if not moved:  # not sent (an unknown one waits for an operator): only leave the poll
            self.redis.zrem(self.keys.dr_pending, message_id)
        return Applied.UNREADABLE


def poll_reports(svc: Services) -> dict[str, int]:
    """One beat round of DR polling; its counts by result (logged when there are any)."""
    counts = DRPoller(DeliveryReports(svc.store, svc.settings),
                      wa_client=svc.wa_client or svc.balance_client).poll_due(svc.client)
    if counts:
        log.info("dr_polled", **counts)
    return dict(counts)
