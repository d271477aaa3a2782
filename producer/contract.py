"""The job contract: what a producer hands kirim, and the payload a worker receives.

`SendRequest` is the caller's input (validated, with errors naming the field); `Job` is the
versioned, normalised payload of the `kirim.send` task (documented for other languages).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
WA_MAX_CHARS = 1000
MAX_METADATA_BYTES = 2048


class Channel(StrEnum):
    """How a message travels: its lane and its NusaSMS endpoint."""

    SMS = "sms"
    WA = "wa"
    OTP = "otp"


class State(StrEnum):
    """A message's life; see TRANSITIONS for the edges."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENDING = "sending"
    SENT = "sent"
    UNKNOWN = "unknown"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    DEAD = "dead"


S = State
FINAL_REPORT_STATES = frozenset({S.DELIVERED, S.UNDELIVERED, S.FAILED, S.REJECTED, S.EXPIRED})
TERMINAL = FINAL_REPORT_STATES | {S.DEAD}

# Allowed predecessors of each state. Everything not listed is refused, so a late or duplicate
# event can never move a message backwards. `sending → queued` is a retry; `dead → queued` is
# an operator's replay; `unknown → queued` is an operator's explicit resend.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.QUEUED: frozenset({S.ACCEPTED, S.DEFERRED, S.SENDING, S.DEAD, S.UNKNOWN}),
    S.DEFERRED: frozenset({S.ACCEPTED, S.QUEUED, S.SENDING}),
    S.SENDING: frozenset({S.ACCEPTED, S.QUEUED}),
    S.SENT: frozenset({S.SENDING, S.UNKNOWN}),
    S.UNKNOWN: frozenset({S.SENDING}),
    S.DEAD: frozenset({S.ACCEPTED, S.QUEUED, S.DEFERRED, S.SENDING, S.UNKNOWN}),
    **{
        final: frozenset({S.SENT, S.UNKNOWN})
        for final in (S.DELIVERED, S.UNDELIVERED, S.FAILED, S.REJECTED)
    },
    S.EXPIRED: frozenset({S.ACCEPTED, S.QUEUED, S.DEFERRED, S.SENDING, S.SENT}),
}


Metadata = dict[str, str | int | float | bool]


class SendRequest(BaseModel):
    """One message as a producer hands it in (before normalisation)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    to: str | None = Field(None, description="recipient; any common format, normalised")
    group: str | None = Field(None, description="NusaSMS address-book group (SMS only)")
    text: str
    idempotency_key: str | None = Field(None, min_length=1, max_length=128)
    callback_url: str | None = Field(None, max_length=2048)
    send_at: float | None = Field(None, description="epoch seconds; held until then")
    otp_validity_s: int | None = Field(None, ge=10, le=3600)
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: Metadata) -> Metadata:
        import json

        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
        return value


class Job(BaseModel):
    """Payload of the `kirim.send` task, schema version 1 (normalised, ready to send)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1  # SCHEMA_VERSION
    id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    channel: Channel
    to: str | None = Field(None, pattern=r"^[1-9][0-9]{6,14}$")
    group: str | None = None
    text: str = Field(min_length=1)
    encoding: Literal["gsm7", "ucs2"]
    parts: int = Field(ge=1)
    text_hash: str
    created_at: float
    valid_until: float | None = None
    send_at: float | None = None
    callback_url: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    source: str = "python"
    idempotency_key: str | None = None

    def to_task(self) -> dict[str, Any]:
        """The JSON-ready dict that travels as the task argument."""
        return self.model_dump(mode="json")
