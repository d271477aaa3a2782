"""Quarantine: the terminal place for a message that cannot be processed at all.

A stored job that no longer reads back (written by an older version, or by a foreign
client that got past validation) must not stop the sweep that meets it: every periodic
sweep handles its items one at a time, and an item that fails with a data error goes
here: the record moves to `dead` with the reason, its index entries are removed and a dead
letter keeps what was stored (an OTP's without its text), in one atomic step. It is logged
once, and the sweep goes on.

Only data errors quarantine (DATA_ERRORS); a Redis connection error stops the sweep, whose
next run retries, because the item itself is fine.
"""

from __future__ import annotations

import time

import structlog
from pydantic import ValidationError

from producer.core.contract import State
from producer.core.deadletters import dead_letter_fields
from producer.core.records import Effects, MessageStore
from producer.core.redis_text import text
from producer.core.routing import Circuit

log = structlog.get_logger("kirim.quarantine")

# What a bad item raises while it is read or handled: pydantic's ValidationError and
# json's JSONDecodeError are ValueErrors.
DATA_ERRORS: tuple[type[Exception], ...] = (ValueError, KeyError, TypeError, UnicodeError)

_BEFORE_CALL = [State.ACCEPTED, State.QUEUED, State.DEFERRED, State.SENDING]


def quarantine(store: MessageStore, message_id: str, error: BaseException | str,
               payload: str | None = None) -> bool:
    """Move an unprocessable message out of every sweep's way; True if it moved.

    Before the provider call it becomes `dead` with the reason; a `sending` message whose
    call had started becomes `unknown` (the provider may have it: never resent blindly).
    A message further on is left as it is, and only the sweeps' entries are dropped.
    """
    reason = f"poisoned: {_describe(error)}"
    stored, channel = store.redis.hmget(store.keys.message(message_id), "job", "channel")
    if payload is None:
        # Lossy on purpose: the payload is only shown (in the dead letter), and a job that
        # is not valid UTF-8 is exactly what gets quarantined.
        payload = text(stored or b"", errors="replace")
    # The record's channel counts too: an OTP's payload that does not read is not kept.
    channel_name = text(channel or b"", errors="replace")
    moved = store.move(message_id, State.DEAD, note=reason, allowed_from=_BEFORE_CALL,
                       calling=False, set_fields={"reason": reason, "last_code_name": "POISONED"},
                       effects=_effects(store, message_id, reason, payload, channel_name))
    if not moved.ok and moved.previous == State.SENDING:
        moved = store.move(message_id, State.UNKNOWN, note=reason, allowed_from=[State.SENDING],
                           calling=True, set_fields={"reason": reason},
                           effects=Effects(zrem=[(store.keys.sending, message_id)],
                                           zadd=[(store.keys.unknown, time.time(), message_id)]))
    log.error("message_quarantined", message_id=message_id, reason=reason[:300],
              moved=moved.ok, hint="see `kirim dlq show <id>`; fix the producer that wrote it")
    if not moved.ok:  # gone or past the call: at least stop the sweeps meeting it
        _drop_entries(store, message_id)
    return moved.ok


def _effects(store: MessageStore, message_id: str, reason: str, payload: str,
             channel: str) -> Effects:
    keys = store.keys
    entry = dead_letter_fields(message_id, reason, None, "POISONED", 0, "", time.time(),
                               payload, channel or None)
    return Effects(zrem=[(k, message_id) for k in _indexes(store)],
                   srem=[(keys.held(str(c)), message_id) for c in Circuit],
                   xadd=[(keys.dead_letters, entry)])


def _indexes(store: MessageStore) -> list[str]:
    """The sets whose sweeps would meet the message again (the DR poll has its own way)."""
    keys = store.keys
    return [keys.outbox, keys.deferred, keys.sending]


def _drop_entries(store: MessageStore, message_id: str) -> None:
    pipe = store.redis.pipeline(transaction=False)
    for key in _indexes(store):
        pipe.zrem(key, message_id)
    pipe.execute()


def _describe(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, ValidationError):  # its text repeats the input, which may be secret
        return "invalid job: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'job'}: {e['msg']}" for e in error.errors())[:480]
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:500]
