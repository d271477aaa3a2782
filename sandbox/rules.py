"""The provider's rules for a send, checked in a fixed order; the first that fails answers.

Order: sender (-34: malformed, or not in a non-empty ``allowed_senders``), GSM missing (-6) /
implausible (-13), text missing (-12), WhatsApp text over 1000 characters (-22, SYNTAX_ERROR:
the spec gives no code), OTP (-10: ``otp=Y`` on an account without an OTP route, knob
``otp_route``; or OTP-looking text sent without ``otp=Y``), magic fixed status, magic
transient (-26), credit expiry (-7), credits (-2), identical text (-77), per-number cap
(-78). Credentials (-5) are checked by the endpoint before any of these.

-34 follows §1.5 "sender name not allowed"; which names an account may use is registered with
NusaSMS, so the list is a knob, and a send without a sender uses the account's default and
passes [decision]. Names match exactly, case included [decision]. -10 follows §1.5 "OTP
content not sent on the OTP route": an ``otp=Y`` send to an account that has no OTP route is
refused whatever its text [decision]. -7 and -2 come from the pool of the product being sent
(``sms`` for SMS, OTP and group sends, ``wa`` for WhatsApp), as API v1.0's /balance keeps
``sms_balance`` and ``wa_balance`` apart (§2).

-77/-78 count accepted messages only, in rolling 24-hour windows of the sandbox clock, and
SMS and WhatsApp are counted apart (different endpoints, different routes). A whitespace-only
text counts as missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers

from sandbox import segments
from sandbox.config import Config
from sandbox.magic import Magic
from sandbox.state import Message, Pool, State

OK = 0
NOT_ENOUGH_CREDITS = -2
INVALID_USER_OR_PASS = -5
MISSING_DESTINATION = -6
BALANCE_EXPIRED = -7
REJECTED = -10
MISSING_MESSAGE = -12
INVALID_DESTINATION = -13
SYNTAX_ERROR = -22
COMMUNICATION_ERROR = -26
SENDER_NOT_ALLOWED = -34
GROUP_NOT_FOUND = -55
SPAM_PATTERN = -77
LIMIT_REACHED = -78

WA_MAX_CHARS = 1000
_OTP_WORDS = r"(?:otp|kode|code|verification|verifikasi|passcode)"
OTP_MARKER = re.compile(
    rf"\b{_OTP_WORDS}\b.{{0,40}}?(?<!\d)\d{{4,8}}(?!\d)|(?<!\d)\d{{4,8}}(?!\d).{{0,40}}?\b{_OTP_WORDS}\b",
    re.IGNORECASE | re.DOTALL,
)
_ALNUM_SENDER = re.compile(r"[A-Za-z0-9 .\-]{1,11}")
_NUMERIC_SENDER = re.compile(r"\d{1,14}")


@dataclass(frozen=True, slots=True)
class Send:
    """One send as the endpoint read it from the request."""

    channel: str  # "sms" or "wa"
    gsm: str
    text: str
    otp: bool = False
    unicode: bool = False
    sender: str | None = None


def gsm_status(gsm: str) -> int:
    """-6 if missing, -13 unless it is a plausible international number without 0 or +."""
    if not gsm:
        return MISSING_DESTINATION
    if not (gsm.isascii() and gsm.isdigit()) or gsm[0] == "0" or not 8 <= len(gsm) <= 15:
        return INVALID_DESTINATION
    if gsm.startswith("62"):
        national = gsm[2:]
        return OK if national[:1] == "8" and 8 <= len(national) <= 12 else INVALID_DESTINATION
    try:
        number = phonenumbers.parse("+" + gsm)
    except phonenumbers.NumberParseException:
        return INVALID_DESTINATION
    return OK if phonenumbers.is_possible_number(number) else INVALID_DESTINATION


def looks_like_otp(text: str) -> bool:
    """True if the text reads like a one-time code (a marker word near a 4-8 digit number)."""
    return OTP_MARKER.search(text) is not None


def sender_ok(sender: str | None) -> bool:
    """No sender, an alphanumeric one of at most 11 characters or a number of at most 14."""
    if sender is None or sender == "":
        return True
    return bool(_NUMERIC_SENDER.fullmatch(sender) or _ALNUM_SENDER.fullmatch(sender))


def credentials_ok(config: Config, user: str | None, password: str | None) -> bool:
    """True if the request carries the account's user and password."""
    return user == config.user and password == config.password


@dataclass(slots=True)
class Check:
    """What one send is checked against."""

    state: State
    config: Config
    send: Send
    magic: Magic
    seg: segments.Segments
    now_s: float

    @property
    def cost(self) -> int:
        """Credits this send would use: its parts for SMS, one for WhatsApp."""
        return 1 if self.send.channel == "wa" else self.seg.parts

    @property
    def pool(self) -> Pool:
        """The credit pool this send draws on: its channel's (sms or wa)."""
        return self.state.account.pool(self.send.channel)


def sender_allowed(sender: str | None, allowed: list[str]) -> bool:
    """No sender (the account's default), an empty allow-list, or a name on the list."""
    return not sender or not allowed or sender in allowed


def _sender(c: Check) -> int:
    sender = c.send.sender
    ok = sender_ok(sender) and sender_allowed(sender, c.config.allowed_senders)
    return OK if ok else SENDER_NOT_ALLOWED


def _gsm(c: Check) -> int:
    return gsm_status(c.send.gsm)


def _text(c: Check) -> int:
    if not c.send.text.strip():
        return MISSING_MESSAGE
    too_long = c.send.channel == "wa" and len(c.send.text) > WA_MAX_CHARS
    return SYNTAX_ERROR if too_long else OK


def _otp(c: Check) -> int:
    if c.send.otp and not c.config.otp_route:
        return REJECTED
    needs_route = c.config.otp_marker_check and c.send.channel == "sms" and not c.send.otp
    return REJECTED if needs_route and looks_like_otp(c.send.text) else OK


def _magic(c: Check) -> int:
    if c.magic.status is not None:
        return c.magic.status
    if c.magic.transient:
        key = (c.send.gsm, c.send.text)
        c.state.transient[key] += 1
        if c.state.transient[key] <= c.magic.transient:
            return COMMUNICATION_ERROR
    return OK


def _credits(c: Check, cost: int | None = None) -> int:
    if c.pool.expired(c.now_s):
        return BALANCE_EXPIRED
    return NOT_ENOUGH_CREDITS if c.pool.credits < (c.cost if cost is None else cost) else OK


def _limits(c: Check) -> int:
    windows, send = c.state.windows, c.send
    if windows.same_text(send.channel, send.gsm, send.text, c.now_s) >= c.config.same_text_limit:
        return SPAM_PATTERN
    if windows.per_number(send.channel, send.gsm, c.now_s) >= c.config.per_number_limit:
        return LIMIT_REACHED
    return OK


CHECKS: tuple[Callable[[Check], int], ...] = (_sender, _gsm, _text, _otp, _magic, _credits,
                                              _limits)


def check(c: Check) -> int:
    """The status the provider answers for this send: 0 if it would be accepted."""
    for rule in CHECKS:
        status = rule(c)
        if status != OK:
            return status
    return OK


def accept(c: Check, messageid: str, group: str | None = None) -> Message:
    """Record the send as accepted and return its message."""
    letter = c.magic.dr_letter or c.config.dr_default_letter
    message = Message(
        messageid=messageid, channel=c.send.channel, gsm=c.send.gsm, text=c.send.text,
        otp=c.send.otp, unicode=c.send.unicode, encoding=c.seg.encoding, parts=c.seg.parts,
        accepted_at=c.now_s, final_at=c.now_s + c.config.dr_delay_s, dr_letter=letter,
        sender=c.send.sender or None, group=group,
    )
    c.state.accept(message, c.cost)
    return message


def check_group(c: Check, size: int) -> int:
    """The status of a group send of c's text to `size` members: 0 if it would be accepted.

    Members are not checked one by one (the reply has no per-recipient status) and they
    bypass -77/-78 and the magic numbers' faults, but they count in the windows [decision].
    """
    for rule in (_sender, _text, _otp):
        status = rule(c)
        if status != OK:
            return status
    return _credits(c, c.cost * size)
