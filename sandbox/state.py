"""Everything the sandbox remembers between requests; `reset` replaces it whole.

Time: the sandbox clock is wall time plus an offset that `advance` moves forward, so tests
can step past the 24-hour windows and DR delays. Message times (`accepted_at`, DR) and the
-77/-78 windows use that clock; the request log's `t` is the real arrival time.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

# Wall-clock strings the provider writes (sent_date, receive_date) are Jakarta time.
JAKARTA = timezone(timedelta(hours=7), "WIB")
REQUEST_LOG_SIZE = 200_000
REQUEST_FIELDS = ("t", "method", "path", "gsm", "cmd", "status", "fault")
PUSH_LOG_SIZE = 10_000


class Clock:
    """Wall time shifted by an offset that only moves forward."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> float:
        """Sandbox time, epoch seconds."""
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self.offset_s += seconds


def provider_time(epoch_s: float) -> str:
    """'YYYY-mm-dd HH:MM:SS' in Jakarta time, as NusaSMS writes dates."""
    return datetime.fromtimestamp(epoch_s, JAKARTA).strftime("%Y-%m-%d %H:%M:%S")


# The products with a credit pool of their own (API v1.0's /balance: sms_*, wa_*); a send's
# product is its channel, so OTP and group sends draw on "sms".
PRODUCTS = ("sms", "wa")


@dataclass
class Pool:
    """One product's credit balance and its expiry date."""

    credits: int = 1_000_000
    expired_date: date = date(2099, 12, 31)

    def expired(self, now_s: float) -> bool:
        """True once the sandbox's Jakarta date is past the expiry date."""
        return datetime.fromtimestamp(now_s, JAKARTA).date() > self.expired_date


@dataclass
class Account:
    """The account's separate SMS and WhatsApp credit pools."""

    sms: Pool = field(default_factory=Pool)
    wa: Pool = field(default_factory=Pool)

    def pool(self, product: str) -> Pool:
        """The pool of "sms" or "wa"; ValueError for any other product."""
        if product not in PRODUCTS:
            raise ValueError(f"unknown product {product!r}; known: {', '.join(PRODUCTS)}")
        return self.sms if product == "sms" else self.wa

    def copy(self) -> Account:
        """An independent copy (reset starts from the start account's copy)."""
        return Account(Pool(self.sms.credits, self.sms.expired_date),
                       Pool(self.wa.credits, self.wa.expired_date))


@dataclass(slots=True)
class Message:
    """One accepted message (for a group send, one per member)."""

    messageid: str
    channel: str  # "sms" or "wa"
    gsm: str
    text: str
    otp: bool
    unicode: bool
    encoding: str
    parts: int
    accepted_at: float
    final_at: float
    dr_letter: str
    sender: str | None = None
    group: str | None = None
    api: str = "v3"  # "v1" when it came through API v1.0 (sandbox/v1.py)
    caption: str | None = None  # a v1.0 media message's caption, URL or inline file
    media_url: str | None = None
    file_name: str | None = None
    media_bytes: int = 0

    def dr_status(self, now_s: float) -> str:
        """The letter a DR pull answers now: 'P' until the report is final."""
        return self.dr_letter if now_s >= self.final_at else "P"

    def to_json(self, now_s: float) -> dict[str, Any]:
        """The message as the inspection API shows it."""
        return {
            "messageid": self.messageid, "channel": self.channel, "gsm": self.gsm,
            "text": self.text, "otp": self.otp, "unicode": self.unicode,
            "encoding": self.encoding, "parts": self.parts, "accepted_at": self.accepted_at,
            "dr_letter": self.dr_letter, "dr_status": self.dr_status(now_s),
            "sender": self.sender, "group": self.group, "api": self.api,
            "caption": self.caption, "media_url": self.media_url, "file_name": self.file_name,
            "media_bytes": self.media_bytes,
        }


class Windows:
    """Rolling-window send times per (channel, GSM) and per (channel, GSM, text).

    Plain sorted lists (times only grow) rather than deques: a deque costs ~600 bytes even
    when it holds one time, and benchmarks keep millions of keys.
    """

    def __init__(self, window_s: float = 86_400.0) -> None:
        self.window_s = window_s
        self.by_number: dict[tuple[str, str], list[float]] = {}
        self.by_text: dict[tuple[str, str, str], list[float]] = {}

    def _live(self, times: list[float] | None, now_s: float) -> int:
        if not times:
            return 0
        expired = bisect.bisect_right(times, now_s - self.window_s)
        if expired:
            del times[:expired]
        return len(times)

    def same_text(self, channel: str, gsm: str, text: str, now_s: float) -> int:
        """Accepted sends of this text to this GSM in the window."""
        return self._live(self.by_text.get((channel, gsm, text)), now_s)

    def per_number(self, channel: str, gsm: str, now_s: float) -> int:
        """Accepted sends to this GSM in the window."""
        return self._live(self.by_number.get((channel, gsm)), now_s)

    def record(self, channel: str, gsm: str, text: str, now_s: float) -> None:
        """Count one accepted send (times arrive in order: the clock never goes back)."""
        self.by_number.setdefault((channel, gsm), []).append(now_s)
        self.by_text.setdefault((channel, gsm, text), []).append(now_s)


@dataclass
class Stats:
    """Counters kept incrementally (the request log is bounded, these are not)."""

    requests: int = 0
    accepted: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    pushes: Counter[str] = field(default_factory=Counter)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    duplicate_sends: int = 0

    def count_accept(self, channel: str, gsm: str, text: str) -> None:
        """Count one accepted message and keep the duplicate tallies."""
        self.accepted += 1
        self.by_channel[channel] += 1
        key = (channel, gsm, text)
        self.counts[key] += 1
        if self.counts[key] > 1:
            self.duplicate_sends += 1
            self.duplicates += self.counts[key] == 2


class MessageIds:
    """18-digit numeric ids, unique for the life of the process (not reset)."""

    def __init__(self) -> None:
        self._next = itertools.count(int(time.time()) * 10**8 + 1)

    def new(self) -> str:
        """The next id."""
        return str(next(self._next))


@dataclass
class State:
    """All mutable sandbox state."""

    account: Account
    clock: Clock = field(default_factory=Clock)
    windows: Windows = field(default_factory=Windows)
    stats: Stats = field(default_factory=Stats)
    messages: dict[str, Message] = field(default_factory=dict)
    transient: Counter[tuple[str, str]] = field(default_factory=Counter)
    request_log: deque[tuple[Any, ...]] = field(
        default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    push_log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=PUSH_LOG_SIZE))
    dr_due: list[tuple[float, str]] = field(default_factory=list)
    inbound_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def accept(self, message: Message, cost: int) -> None:
        """Record an accepted message: its product's credits, windows, counters, DR schedule."""
        self.account.pool(message.channel).credits -= cost
        self.messages[message.messageid] = message
        self.windows.record(message.channel, message.gsm, message.text, message.accepted_at)
        self.stats.count_accept(message.channel, message.gsm, message.text)
        if message.dr_letter != "P":
            heapq.heappush(self.dr_due, (message.final_at, message.messageid))

    def log(self, t: float, method: str, path: str, gsm: str | None, cmd: str | None,
            status: str | None, fault: str | None) -> None:
        """Append one provider request to the bounded log (see REQUEST_FIELDS)."""
        self.request_log.append((t, method, path, gsm, cmd, status, fault))

    def due_reports(self, now_s: float) -> list[Message]:
        """Messages whose final report became due since the last call."""
        due: list[Message] = []
        while self.dr_due and self.dr_due[0][0] <= now_s:
            _, messageid = heapq.heappop(self.dr_due)
            due.append(self.messages[messageid])
        return due
