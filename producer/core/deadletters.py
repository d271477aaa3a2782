"""Dead letters: a Redis stream of messages kirim gave up on, with why; list, replay, purge.

Entries are written by the worker in the same atomic step that moves a message to `dead`.
Replaying moves it back to `queued`, so it goes through the whole pipeline (guard included).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis import Redis

from producer.core.contract import State
from producer.core.keys import Keys
from producer.core.redis_text import text, text_map

if TYPE_CHECKING:  # the requeuer quarantines with this module's fields: no import cycle
    from producer.core.requeue import Requeuer

FIELDS = ("id", "reason", "code", "code_name", "attempts", "last_reply", "at", "job")


@dataclass(frozen=True)
class DeadLetter:
    """One stream entry."""

    entry_id: str
    message_id: str
    reason: str
    code: str
    code_name: str
    attempts: int
    last_reply: str
    at: float
    job: dict[str, Any]


def dead_letter_fields(message_id: str, reason: str, code: object, code_name: str,
                       attempts: int, last_reply: str, at: float, job_json: str) -> list[str]:
    """Flat field list for XADD (the worker calls this; readers parse it back)."""
    values = (message_id, reason, "" if code is None else str(code), code_name, str(attempts),
              last_reply[:1000], f"{at:.3f}", job_json)
    return [x for pair in zip(FIELDS, values, strict=True) for x in pair]


class DeadLetters:
    """Read and act on the dead-letter stream."""

    def __init__(self, redis: Redis, keys: Keys, requeuer: Requeuer) -> None:
        self.redis = redis
        self.key = keys.dead_letters
        self.requeuer = requeuer

    def list(self, count: int = 100, code: str | None = None) -> list[DeadLetter]:
        """Newest first, optionally only those with one provider code."""
        found = [d for d in self._iter(newest_first=True) if code is None or d.code == code]
        return found[:count]

    def get(self, entry_or_message_id: str) -> DeadLetter | None:
        """One dead letter by stream entry id or by message id."""
        return next((d for d in self._iter(newest_first=True)
                     if entry_or_message_id in (d.entry_id, d.message_id)), None)

    def replay(self, letter: DeadLetter) -> bool:
        """Send one dead message again through the whole pipeline; drops the entry."""
        ok = self.requeuer.requeue(letter.message_id, allowed_from=[State.DEAD],
                                     note=f"replayed from dead letter {letter.entry_id}",
                                     set_fields={"attempts": 0, "reason": ""})
        if ok:
            self.redis.xdel(self.key, letter.entry_id)
        return ok

    def replay_where(self, code: str | None = None) -> tuple[int, int]:
        """Replay all (or one code's) dead letters; returns (replayed, skipped)."""
        done = skipped = 0
        for letter in list(self._iter(newest_first=False)):
            if code is not None and letter.code != code:
                continue
            if self.replay(letter):
                done += 1
            else:
                skipped += 1
        return done, skipped

    def purge(self) -> int:
        """Delete every dead letter; returns how many there were."""
        count = int(self.redis.xlen(self.key))
        self.redis.delete(self.key)
        return count

    def count(self) -> int:
        """How many dead letters there are."""
        return int(self.redis.xlen(self.key))

    def _iter(self, newest_first: bool) -> Iterator[DeadLetter]:
        read = self.redis.xrevrange if newest_first else self.redis.xrange
        for entry_id, raw in read(self.key) or []:
            yield _parse(entry_id, raw or {})


def _parse(entry_id: Any, raw: dict[Any, Any]) -> DeadLetter:
    f = text_map(raw)
    return DeadLetter(text(entry_id), f.get("id", ""), f.get("reason", ""), f.get("code", ""),
                      f.get("code_name", ""), int(f.get("attempts") or 0),
                      f.get("last_reply", ""), float(f.get("at") or 0), _job(f.get("job", "")))


def _job(raw: str) -> dict[str, Any]:
    """The dead job as stored; one that does not read back (a quarantined one) stays raw."""
    try:
        job = json.loads(raw)
    except ValueError:
        return {"unreadable": raw[:2000]}
    return job if isinstance(job, dict) else {"unreadable": raw[:2000]}
