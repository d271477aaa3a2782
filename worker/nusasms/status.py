"""NusaSMS status codes and delivery letters, and what kirim does about each (pure data).

The action column is the "Status codes → outcome" table of docs/design.md, as issue 12
changed it for -22, -33, -34 and -77 (see that page's last section); names and meanings are
the provider's (docs/nusasms-api.md §1.5). Change a decision here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Scope(StrEnum):
    """How far a PAUSE or DEFER reaches (the status table's third column)."""

    NONE = ""  # the action concerns this message only
    ACCOUNT = "account"  # PAUSE: nothing can be sent (credentials, IP, a request kirim built badly)
    PRODUCT = "product"  # PAUSE: the product that reported it (SMS with OTP, or WA) has no credit
    OTP_ROUTE = "otp_route"  # PAUSE: the account has no OTP route: the OTP lane stops
    SENDER = "sender"  # PAUSE: the configured sender is refused: the lanes that use it stop
    RECIPIENT = "recipient"  # DEFER: the number's daily cap is full (-78)
    TEXT = "text"  # DEFER: this text to this number is at its daily cap (-77)


class Action(StrEnum):
    """What the caller does with a message after a provider call."""

    DONE = "done"  # accepted (or already accepted): record the id, track its report
    RETRY = "retry"  # transient: back off and send again, bounded
    PAUSE = "pause"  # the account cannot send (credit, credentials, IP): stop it, keep the message
    DEFER = "defer"  # the recipient's window is full: hold until it frees
    DEAD = "dead"  # sending again cannot succeed: dead-letter it
    UNKNOWN = "unknown"  # the provider may have it: never resend blindly


@dataclass(frozen=True)
class StatusInfo:
    """One row of the status table: a provider code, its name, meaning and kirim's action."""

    code: int
    name: str
    meaning: str
    action: Action
    scope: Scope = Scope.NONE


_D, _R, _P, _F, _X, _U = (Action.DONE, Action.RETRY, Action.PAUSE, Action.DEFER,
                          Action.DEAD, Action.UNKNOWN)
_NONE, _ACC, _PROD, _SEND = Scope.NONE, Scope.ACCOUNT, Scope.PRODUCT, Scope.SENDER

_ROWS: tuple[tuple[int, str, str, Action, Scope], ...] = (
    (0, "ALL_RECIPIENTS_PROCESSED", "accepted", _D, _NONE),
    (-1, "SEND_ERROR", "error in processing the request", _R, _NONE),
    (-2, "NOT_ENOUGH_CREDITS", "account out of credit", _P, _PROD),
    (-3, "NETWORK_NOTCOVERED", "destination network not covered for this account", _X, _NONE),
    (-5, "INVALID_USER_OR_PASS", "bad credentials", _P, _ACC),
    (-6, "MISSING_DESTINATION_ADDRESS", "no GSM", _X, _NONE),
    (-7, "BALANCE_EXPIRED", "credit has expired", _P, _PROD),
    (-9, "NO_ROUTE", "no routing for the operator", _X, _NONE),
    # Dead for OTP-looking text sent without otp=Y; on an otp=Y send it means the account
    # has no OTP route, which every OTP would hit: see OTP_SEND_OVERRIDES.
    (-10, "REJECTED", "OTP content not sent on the OTP route", _X, _NONE),
    (-11, "INVALID_DESTINATION_ADDRESS", "number not recognised", _X, _NONE),
    (-12, "MISSING_MESSAGE", "no text", _X, _NONE),
    (-13, "INVALID_DESTINATION_ADDRESS", "number not recognised (e.g. a leading 0)", _X, _NONE),
    # kirim built a request the provider cannot read: a bug that will hit every message.
    (-22, "SYNTAX_ERROR", "malformed request", _P, _ACC),
    (-23, "ERROR_PROCESSING", "general error", _R, _NONE),
    (-26, "COMMUNICATION_ERROR", "general API error", _R, _NONE),
    (-27, "INVALID_SENDDATETIME", "bad scheduling parameter", _X, _NONE),
    (-28, "INVALID_DELIVERY_REPORT_PUSH_URL", "bad push URL", _X, _NONE),
    (-30, "INVALID_CLIENT_APPID", "bad APPID", _X, _NONE),
    # kirim never sends a message id, so this cannot mean "you sent this one already":
    # ambiguous, for an operator (docs/nusasms-api.md §1.6b).
    (-33, "DUPLICATE_MESSAGEID", "duplicated message id", _U, _NONE),
    (-34, "SENDER_NOT_ALLOWED", "sender name not allowed", _P, _SEND),
    (-40, "IP_ADDRESS_FORBIDDEN", "client IP not whitelisted", _P, _ACC),
    # The doc gives -55 no name; this one is ours.
    (-55, "GROUP_NOT_FOUND", "group not found or has no contacts", _X, _NONE),
    # The provider's own same-text cap: block the (number, text) pair for the window.
    (-77, "SPAM_PATTERN", "more than 10 identical messages to one recipient in a day", _F,
     Scope.TEXT),
    (-78, "LIMIT_REACHED_FOR_DESTINATION", "too many messages to one number in 24 hours", _F,
     Scope.RECIPIENT),
    (-88, "REJECTED_ROUTE", "operator rejected the request", _X, _NONE),
    (-99, "GENERAL_ERROR", "error, reasons vary", _R, _NONE),
)

STATUS_TABLE: Mapping[int, StatusInfo] = MappingProxyType(
    {code: StatusInfo(code, name, meaning, action, scope)
     for code, name, meaning, action, scope in _ROWS}
)

# Where an otp=Y send changes what a code means: -10 on the OTP route = no OTP route.
OTP_SEND_OVERRIDES: Mapping[int, StatusInfo] = MappingProxyType({
    -10: StatusInfo(-10, "REJECTED", "the account has no OTP route", _P, Scope.OTP_ROUTE),
})

UNKNOWN_CODE_NAME = "UNKNOWN_CODE"


def lookup(code: int, *, otp: bool = False) -> StatusInfo:
    """The table row for `code` (on an otp=Y send when `otp`); a code the table lacks is
    dead, and keeps its raw value."""
    known = (OTP_SEND_OVERRIDES.get(code) if otp else None) or STATUS_TABLE.get(code)
    if known is not None:
        return known
    # An unknown code may mean anything; dead-lettering keeps it visible instead of looping.
    return StatusInfo(code, UNKNOWN_CODE_NAME, f"status {code} is not in the NusaSMS table", _X)


class DeliveryState(StrEnum):
    """Where a delivery report says a sent message is."""

    DELIVERED = "delivered"
    READ = "read"  # WhatsApp through API v1.0 only: `read_date` set (no letter maps to it)
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    PENDING = "pending"
    UNKNOWN_LETTER = "unknown_letter"


# docs/nusasms-api.md §1.7: only D is evidenced; the rest is our decision.
DR_LETTERS: Mapping[str, DeliveryState] = MappingProxyType(
    {
        "D": DeliveryState.DELIVERED,
        "U": DeliveryState.UNDELIVERED,
        "F": DeliveryState.FAILED,
        "R": DeliveryState.REJECTED,
        "E": DeliveryState.EXPIRED,
        "P": DeliveryState.PENDING,
        "S": DeliveryState.PENDING,
        "Q": DeliveryState.PENDING,
        "A": DeliveryState.PENDING,
    }
)

FINAL_STATES: frozenset[DeliveryState] = frozenset(
    {
        DeliveryState.DELIVERED,
        DeliveryState.UNDELIVERED,
        DeliveryState.FAILED,
        DeliveryState.REJECTED,
        DeliveryState.EXPIRED,
    }
)


def lookup_letter(letter: str) -> tuple[DeliveryState, bool]:
    """(state, final) for a report letter; an unknown letter is not final (it may still move)."""
    state = DR_LETTERS.get(letter.strip().upper(), DeliveryState.UNKNOWN_LETTER)
    return state, state in FINAL_STATES
