"""Response bodies of the ingest API (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from producer.core.enqueue import Accepted


class ErrorDetail(BaseModel):
    """What went wrong, for a program (`code`) and for a person (`message`)."""

    code: str = Field(description="machine-readable, e.g. invalid_message, unauthorized")
    field: str | None = Field(None, description="the request field at fault, if one is")
    message: str = Field(description="what failed and what to do about it")


class ErrorBody(BaseModel):
    """Every non-2xx reply of the /v1 API."""

    error: ErrorDetail


class AcceptedMessage(BaseModel):
    """A message kirim has taken on (202)."""

    id: str
    channel: str
    to: str | None
    group: str | None = None
    encoding: str
    parts: int
    state: str = Field(description="queued, or deferred (scheduled / recipient limit)")
    duplicate: bool = Field(description="true when the idempotency key was seen before")
    release_at: float | None = Field(None, description="epoch seconds a deferred one is due")

    @classmethod
    def of(cls, accepted: Accepted) -> AcceptedMessage:
        """From the Enqueuer's result."""
        return cls(id=accepted.id, channel=accepted.channel, to=accepted.to,
                   group=accepted.group, encoding=accepted.encoding, parts=accepted.parts,
                   state=accepted.state, duplicate=accepted.duplicate,
                   release_at=accepted.release_at)


class BatchRequest(BaseModel):
    """Many messages in one request; each item has the shape of POST /v1/messages."""

    messages: list[Any] = Field(description="items validated one by one (KIRIM_API_BATCH_MAX)")


class BatchItem(BaseModel):
    """One item's outcome: `ok` with the accepted message, or `error`."""

    index: int
    ok: bool
    id: str | None = None
    channel: str | None = None
    to: str | None = None
    encoding: str | None = None
    parts: int | None = None
    state: str | None = None
    duplicate: bool | None = None
    release_at: float | None = None
    error: ErrorDetail | None = None


class BatchResult(BaseModel):
    """Per-item results, in request order (200 all accepted, 207 some refused)."""

    accepted: int
    refused: int
    results: list[BatchItem]


class TimelineEntry(BaseModel):
    """One transition of a message."""

    state: str
    at: float
    note: str | None = None


class MessageStatus(BaseModel):
    """A message's current state, its delivery facts and its timeline."""

    id: str
    state: str
    channel: str | None
    to: str | None
    group: str | None
    encoding: str | None
    parts: int | None
    source: str | None
    attempts: int
    created_at: float | None
    provider_id: str | None = Field(None, description="NusaSMS messageid once sent")
    nusasms_id: str | None = Field(None, description="the 18-digit messageid the NusaSMS"
                                   " drop-in answered for it (GET accepts either id)")
    last_code: str | None = Field(None, description="last NusaSMS status code")
    last_code_name: str | None = None
    reason: str | None = Field(None, description="why it is deferred, dead or unknown")
    api: str | None = Field(None, description="the NusaSMS API that took it: v1 (API v1.0,"
                            " WhatsApp) or v3 (legacy); null until the provider has it")
    sender: str | None = Field(None, description="WhatsApp: the sender number asked for")
    media: str | None = Field(None, description="WhatsApp: the file sent, its URL or (inline)"
                              " its file name")
    sent_date: str | None = Field(None, description="the provider's sent time, from its"
                                  " delivery report")
    delivered_date: str | None = Field(None, description="WhatsApp (API v1.0): the provider's"
                                       " delivered time")
    read_date: str | None = Field(None, description="WhatsApp (API v1.0): the provider's"
                                  " read time (state `read`)")
    metadata: dict[str, Any] = Field(default_factory=dict)
    timeline: list[TimelineEntry]
    unreadable: list[str] = Field(
        default_factory=list, description="stored fields that could not be read (e.g. `job`"
        " of a record written before kirim refused NaN): what they give is left empty")


class Credits(BaseModel):
    """The account balance as the credits poller last read it."""

    value: int | float | str
    expires: str | None
    read_at: float | None
    age_s: float | None = Field(None, description="seconds since the reading")
    product: str = Field("sms", description="the wallet: `sms` (SMS and OTP) or `wa`")
    api: str | None = Field(None, description="where it was read: `v3` (CREDITS) or `v1`"
                            " (API v1.0 `/balance`)")
    wa: Credits | None = Field(default=None, description="the WhatsApp wallet's last"
                               " reading, when one exists (API v1.0 `/balance`, or"
                               " KIRIM_CREDITS_PRODUCTS)")


class DeadLetterOut(BaseModel):
    """One dead letter."""

    entry_id: str
    message_id: str
    reason: str
    code: str
    code_name: str
    attempts: int
    last_reply: str
    at: float
    channel: str | None
    to: str | None


class DeadLetterList(BaseModel):
    """Dead letters, newest first."""

    count: int
    items: list[DeadLetterOut]


class Replayed(BaseModel):
    """A dead letter sent back through the pipeline."""

    message_id: str
    entry_id: str
    state: str


class Health(BaseModel):
    """Liveness: Redis answered."""

    status: str
