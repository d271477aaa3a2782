"""Senders that were lost: `sending` messages whose lease ran out.

Whether the provider may have the message decides what happens to it: a sender lost before
the *calling* mark (worker/lua/calling.lua) never made the HTTP request, so the message is
requeued (its attempt not counted, its guard slot freed); one lost after it may have been
accepted, so the message becomes `unknown` and is never resent blindly. Both moves check
the lease and the mark in the same atomic step as the move, so a sender that is alive
after all, or a new claim, always wins.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from producer.core import lua
from producer.core.contract import State
from producer.core.guard import route_for
from producer.core.quarantine import DATA_ERRORS, quarantine
from producer.core.records import Effects, MessageRecord
from producer.core.redis_text import text
from worker.journal import dead_journals
from worker.state_writer import Attempt

if TYPE_CHECKING:
    from producer.core.factory import Core
    from worker.services import Services

log = structlog.get_logger("kirim.leases")

def settle_lost_sender(svc: Services, record: MessageRecord, now: float) -> str | None:
    """Requeue or mark unknown a `sending` message whose lease ran out by `now`;
    the label of what happened, or None when its sender is still alive (or it moved on)."""
    if record.state != State.SENDING or float(record.get("lease_until") or 0) > now:
        return None
    if record.get("calling") == "1":
        attempt = Attempt(None, "WORKER_LOST", "")
        moved = svc.writer.unknown(record.id, attempt,
                                     "sender lost during the provider call (lease expired)",
                                     lease_expired_by=now)
        return "unknown" if moved else None
    if not svc.requeuer.requeue(record.id, allowed_from=[State.SENDING], lease_expired_by=now,
                                  calling=False, incr={"attempts": -1},
                                  effects=_free_guard_slot(svc, record),
                                  note="sender lost before calling the provider: requeued"):
        return None
    log.info("lost_sender_requeued", message_id=record.id)
    return "requeued"


def requeue_unwritten(core: Core, message_id: str, claim_id: str) -> str | None:
    """A message a dead sender's call journal shows it was about to mark *calling* under
    `claim_id` and never wrote (worker/journal.py): requeued as a sender lost before its mark
    is, even if the mark was taken, while that claim still holds it. None when it moved on
    (finished, requeued, or claimed again)."""
    record = core.store.get(message_id)
    if record is None or record.get("claim") != claim_id:
        return None
    if record.state == State.UNKNOWN:  # the lease sweep came first
        log.warning("unwritten_but_unknown", message_id=message_id,
                    hint="its request was never written: resend it"
                         " (`kirim settle <id> --as resend`)")
        return None
    # Not waited for by replicas, as a sender's own give-back (an undo whose loss the lease
    # sweep repairs).
    if record.state != State.SENDING or not core.requeuer.requeue(
            message_id, allowed_from=[State.SENDING], claim=claim_id,
            set_fields={"calling": "0"}, incr={"attempts": -1},
            effects=_free_guard_slot(core, record), durable=False,
            note="sender lost before its request was written (call journal): requeued"):
        return None
    log.info("unwritten_requeued", message_id=message_id)
    return "requeued"


def settle_dead_journals(core: Core, directory: Path, tag: str) -> int:
    """Requeue what the journals of this deployment's dead workers on this host show was
    never written; each journal is removed once settled, and kept for the next scan when
    Redis is away (or any other error stops it, raised). Returns how many were requeued."""
    requeued = 0
    dead = dead_journals(directory, tag)
    try:
        while dead:
            for message_id, claim_id in dead[0].intents:
                try:
                    requeued += requeue_unwritten(core, message_id, claim_id) is not None
                except DATA_ERRORS as exc:  # one bad record must not stop the rest
                    quarantine(core.store, message_id, exc)
            dead.pop(0).discard()
    finally:
        for journal in dead:  # not settled: unlocked for the next scan
            journal.release()
    return requeued


def _free_guard_slot(svc: Core, record: MessageRecord) -> Effects:
    """Uncount the message in its recipient's windows, in the requeue's own step: the
    provider never saw it, and a later claim must be able to count it again."""
    to, text_hash = record.get("to"), record.get("text_hash")
    if svc.guard is None or not to or not text_hash:
        return Effects()
    route = route_for(record.get("channel") or "sms")
    return Effects(zrem=svc.guard.slot(record.id, route, to, text_hash))


def sweep_expired_leases(svc: Services, limit: int = 500) -> int:
    """Settle every `sending` message whose lease ran out; returns how many moved."""
    now = time.time()
    expired: list[tuple[bytes | str, float]] = svc.redis.zrangebyscore(  # type: ignore[assignment]
        svc.keys.sending, "-inf", now, start=0, num=limit, withscores=True)
    count = 0
    for raw, score in expired:
        try:
            mid = text(raw)
        except UnicodeError:  # no message has such an id: drop the entry as it is stored
            svc.redis.zrem(svc.keys.sending, raw)
            continue
        try:
            count += _settle_one(svc, mid, score, now)
        except DATA_ERRORS as exc:  # one bad record must not stop the sweep
            quarantine(svc.store, mid, exc)
    return count


def _settle_one(svc: Services, mid: str, score: float, now: float) -> int:
    record = svc.store.get(mid)
    if record is not None and settle_lost_sender(svc, record, now):
        return 1
    if record is None or record.state != State.SENDING:  # stale, unless a new claim re-scored it
        lua.register(svc.redis, "zrem_if_score", package=lua.WORKER)(
            keys=[svc.keys.sending], args=[mid, repr(score)])
    return 0
