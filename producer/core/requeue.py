"""Put existing messages (back) on their queue: releases, retries, resumes, replays.

Every requeue is: one atomic move to `queued` with a fresh dispatch token and an outbox
entry due now, then the publish, after which the entry is pushed back by `recheck_after_s`.
The entry leaves the outbox only when a worker claims the message. So `sweep_outbox`
republishes a message whose publish failed (crash between the steps, broker down) after a
short grace, and one whose task vanished from the broker (a worker SIGKILLed between kombu's
BRPOP and its unacked bookkeeping) after `recheck_after_s`. A task copy whose token is not
the record's current one is ignored, and a second copy with the current token finds the
message claimed, so a double publish never sends twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog
from kombu.exceptions import OperationalError

from producer.core.contract import State
from producer.core.entropy import token_hex
from producer.core.publisher import Publisher
from producer.core.quarantine import DATA_ERRORS, quarantine
from producer.core.records import Effects, MessageStore
from producer.core.redis_text import text
from producer.core.routing import Circuit

log = structlog.get_logger(__name__)


def new_dispatch_token() -> str:
    """A token for one publication of a task; older copies of the task are ignored."""
    return token_hex(6)


class Requeuer:
    """Requeues stored messages and keeps the outbox honest."""

    def __init__(self, store: MessageStore, publisher: Publisher, recheck_after_s: float) -> None:
        self.store = store
        self.keys = store.keys
        self.publisher = publisher
        self.recheck_after_s = recheck_after_s

    def requeue(self, message_id: str, *, allowed_from: Iterable[State], note: str,
                countdown_s: float = 0.0, set_fields: dict[str, object] | None = None,
                incr: dict[str, int] | None = None, lease_expired_by: float | None = None,
                calling: bool | None = None, claim: str | None = None,
                effects: Effects | None = None, durable: bool = True) -> bool:
        """Move one message to `queued` and publish it; False if its state did not allow it
        (`lease_expired_by`, `calling`, `claim` and `durable` as in MessageStore.move;
        `effects` are applied in the same step)."""
        token = new_dispatch_token()
        due = time.time() + countdown_s
        fx = effects or Effects()
        fx.zadd.append((self.keys.outbox, due, message_id))
        fx.zrem += [(self.keys.deferred, message_id), (self.keys.sending, message_id)]
        fx.srem += [(self.keys.held(str(c)), message_id) for c in Circuit]
        moved = self.store.move(message_id, State.QUEUED, note=note, allowed_from=allowed_from,
                                set_fields={"dispatch": token, "not_before": due,
                                            **(set_fields or {})}, incr=incr, effects=fx,
                                lease_expired_by=lease_expired_by, calling=calling,
                                claim=claim, durable=durable)
        if not moved.ok:
            return False
        if self.publish_stored(message_id, token, countdown_s):
            return True
        # Not published: the outbox has it (broker down), unless it was quarantined.
        return self.store.states([message_id])[0] != State.DEAD

    def publish_stored(self, message_id: str, token: str, countdown_s: float = 0.0) -> bool:
        """Publish the stored job of a queued message, then push its outbox entry back;
        True if it was published.

        A stored job that no longer reads back is quarantined (dead, with the reason)
        instead of raising into the sweep or the resume that is publishing it.
        """
        record = self.store.get(message_id)
        if record is None:
            return False
        try:
            job = record.job
        except DATA_ERRORS as exc:
            quarantine(self.store, message_id, exc, record.get("job"))
            return False
        try:
            self.publisher.publish(job, token, countdown_s or None)
        except OperationalError as exc:
            log.warning("publish_left_in_outbox", message_id=message_id, error=str(exc))
            return False
        self.published([message_id], time.time() + countdown_s)
        return True

    def published(self, message_ids: list[str], due: float) -> None:
        """Push the outbox entries of published tasks back: checked again if still unclaimed.

        XX: a worker that already claimed the message removed the entry; do not re-add it.
        """
        if message_ids:
            later = due + self.recheck_after_s
            self.store.redis.zadd(self.keys.outbox, dict.fromkeys(message_ids, later), xx=True)

    def sweep_outbox(self, grace_s: float, limit: int = 500) -> int:
        """Publish again every unclaimed message whose outbox entry is overdue by `grace_s`."""
        count = 0
        for mid in self._due(self.keys.outbox, time.time() - grace_s, limit):
            count += self._one(mid, self._republish)
        return count

    def _republish(self, mid: str) -> bool:
        record = self.store.get(mid)
        if record is None or record.state not in (State.QUEUED, State.ACCEPTED):
            self.store.redis.zrem(self.keys.outbox, mid)
            return False
        return self.publish_stored(mid, record.get("dispatch") or "")

    def release_due(self, limit: int = 500) -> int:
        """Requeue deferred and scheduled messages whose time has come."""
        return sum(self._one(mid, self._release)
                   for mid in self._due(self.keys.deferred, time.time(), limit))

    def _release(self, mid: str) -> bool:
        if self.requeue(mid, allowed_from=[State.DEFERRED], note="released"):
            return True
        self.store.redis.zrem(self.keys.deferred, mid)  # record gone or moved on: stale entry
        return False

    def _one(self, mid: str, handle: Callable[[str], bool]) -> int:
        """Handle one swept item on its own: a data error quarantines it, the sweep goes on."""
        try:
            return int(handle(mid))
        except DATA_ERRORS as exc:
            quarantine(self.store, mid, exc)
            return 0

    def _due(self, key: str, until: float, limit: int) -> list[str]:
        """Members of a time-scored set whose time is at or before `until`, oldest first."""
        raw: list[bytes] = self.store.redis.zrangebyscore(  # type: ignore[assignment]
            key, "-inf", until, start=0, num=limit)
        members = []
        for member in raw:
            try:
                members.append(text(member))
            except UnicodeError:  # no message has such an id: drop the entry as it is stored
                self.store.redis.zrem(key, member)
                log.error("index_entry_unreadable", key=key, member=repr(member)[:100])
        return members
