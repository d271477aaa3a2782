"""What the NusaSMS client returns: one frozen dataclass per reply kind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from worker.nusasms.status import DeliveryState, StatusInfo


@dataclass(frozen=True)
class SendResult:
    """The provider's answer to one SMS or WhatsApp send; `status.action` says what next."""

    status: StatusInfo
    message_id: str | None
    destination: str
    raw: str
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class GroupResult:
    """The provider's answer to a send to a contact group."""

    status: StatusInfo
    campaign_name: str | None
    group: str
    raw: str
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class Credits:
    """The account balance and when it expires (None: not given)."""

    value: Decimal
    expires: date | None
    raw: str


@dataclass(frozen=True)
class DeliveryReport:
    """Where a sent message is, from a DR pull or a DR callback."""

    ref_no: str
    letter: str
    state: DeliveryState
    final: bool
    sent_date: str | None
    err_code: str | None
