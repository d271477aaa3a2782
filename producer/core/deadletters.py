"""Dead letters: a Redis stream of messages kirim gave up on, with why; list, replay, purge.

Entries are written by the worker in the same atomic step that moves a message to `dead`.
Replaying moves it back to `queued`, so it goes through the whole pipeline (guard included).

An OTP's dead letter keeps its job without the text (`"text": ""`, `"text_erased": true`):
stream entries cannot be edited later, and a dead OTP's code must not outlive it. The record
loses the text in the same step (erase_text.lua), so a dead OTP cannot be replayed: the
user asks for a new code instead (TextErased).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis import Redis

from producer.core.contract import Channel, State
from producer.core.errors import TextErased
from producer.core.keys import Keys
from producer.core.redis_text import text, text_map

if TYPE_CHECKING:  # the requeuer quarantines with this module's fields: no import cycle
    from producer.core.requeue import Requeuer

FIELDS = ("id", "reason", "code", "code_name", "attempts", "last_reply", "at", "job")
JOB_MAX_CHARS = 20000  # a payload kept for a person to read; a valid job is far shorter
# What is kept of an OTP's payload that does not read as a JSON object: nothing.
UNREADABLE_OTP = json.dumps({"unreadable": "(an OTP's payload that does not read as a job;"
                                           " erased with its text)", "text_erased": True})


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

    @property
    def text_erased(self) -> bool:
        """True when this letter's job was kept without its text (an OTP)."""
        return self.job.get("text_erased") is True


def dead_letter_fields(message_id: str, reason: str, code: object, code_name: str,
                       attempts: int, last_reply: str, at: float, job_json: str,
                       channel: str | None = None) -> list[str]:
    """Flat field list for XADD (the worker calls this; readers parse it back).

    An OTP's job (by its own `channel`, or `channel` when the caller knows it from the
    record) is kept without its text; see `without_otp_text`.
    """
    values = (message_id, reason, "" if code is None else str(code), code_name, str(attempts),
              last_reply[:1000], f"{at:.3f}", without_otp_text(job_json, channel)[:JOB_MAX_CHARS])
    return [x for pair in zip(FIELDS, values, strict=True) for x in pair]


def without_otp_text(job_json: str, channel: str | None = None) -> str:
    """`job_json` as a dead letter may keep it: an OTP's with `"text": ""` and
    `"text_erased": true`, anything else as it is.

    An OTP is one whose job says `"channel": "otp"` or, for a payload that does not read as
    a job, one the caller knows is (`channel`, from the record); such a payload is not kept
    at all, as the code may be anywhere in it.
    """
    try:
        job = json.loads(job_json)
    except ValueError:
        job = None
    if not isinstance(job, dict):
        return UNREADABLE_OTP if channel == Channel.OTP else job_json
    if job.get("media_base64"):  # a WhatsApp file (up to 512 KB) stays in the record only
        return json.dumps({**job, "media_base64": "", "media_erased": True},
                          separators=(",", ":"))
    if Channel.OTP not in (channel, job.get("channel")):
        return job_json
    # Python's json keeps every number exact and the key order: only the text changes.
    # (ASCII escapes: a lone surrogate, which json reads from "\\ud800", stays writable.)
    return json.dumps({**job, "text": "", "text_erased": True}, separators=(",", ":"))


class DeadLetters:
    """Read and act on the dead-letter stream."""

    def __init__(self, redis: Redis, keys: Keys, requeuer: Requeuer) -> None:
        self.redis = redis
        self.keys = keys
        self.key = keys.dead_letters
        self.requeuer = requeuer

    def list(self, count: int = 100, code: str | None = None, source: str | None = None
             ) -> list[DeadLetter]:
        """Newest first; optionally only one provider code, or one key's (`source`) messages."""
        found = (d for d in self._iter(newest_first=True)
                 if (code is None or d.code == code)
                 and (source is None or d.job.get("source") == source))
        return list(itertools.islice(found, count))

    def get(self, entry_or_message_id: str) -> DeadLetter | None:
        """One dead letter by stream entry id or by message id."""
        return next((d for d in self._iter(newest_first=True)
                     if entry_or_message_id in (d.entry_id, d.message_id)), None)

    def replay(self, letter: DeadLetter) -> bool:
        """Send one dead message again through the whole pipeline; drops the entry.

        False when the message is no longer dead; TextErased for an OTP, whose text was
        erased when it died (nothing is changed then).
        """
        if letter.text_erased or self._text_erased(letter.message_id):
            raise TextErased(letter.message_id)
        ok = self.requeuer.requeue(letter.message_id, allowed_from=[State.DEAD],
                                     note=f"replayed from dead letter {letter.entry_id}",
                                     set_fields={"attempts": 0, "reason": ""})
        if ok:
            self.redis.xdel(self.key, letter.entry_id)
        return ok

    def replay_where(self, code: str | None = None) -> tuple[int, int]:
        """Replay all (or one code's) dead letters; returns (replayed, skipped): skipped are
        those no longer dead and OTPs whose text was erased."""
        done = skipped = 0
        for letter in list(self._iter(newest_first=False)):
            if code is not None and letter.code != code:
                continue
            try:
                replayed = self.replay(letter)
            except TextErased:
                replayed = False
            if replayed:
                done += 1
            else:
                skipped += 1
        return done, skipped

    def _text_erased(self, message_id: str) -> bool:
        """True when the message's record no longer holds its text (erase_text.lua)."""
        return self.redis.hget(self.keys.message(message_id), "text_erased") == b"1"

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
