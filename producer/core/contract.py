"""The job contract: what a producer hands kirim, and the payload a worker receives.

`SendRequest` is the caller's input (validated, with errors naming the field); `Job` is the
versioned, normalised payload of the `kirim.send` task (documented for other languages).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    GetCoreSchemaHandler,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import UnionSchema

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


MetadataScalar = str | int | float | bool


def _utf8(value: str) -> str:
    """`value` if UTF-8 can encode it; a lone surrogate (a JSON "\\ud800" escape) cannot."""
    # Python holds such a str, but Redis, the task message and every reader need UTF-8:
    # accepted, it would make a job nobody can write or read back.
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            bad = value[exc.start].encode("unicode_escape").decode("ascii")
            raise PydanticCustomError(
                "string_unicode", "contains a lone surrogate ({bad} at position {pos}), which"
                " is not a character and cannot be encoded as UTF-8",
                {"bad": bad, "pos": exc.start}) from None
    return value


def _finite(value: float) -> float:
    """`value` unless it is NaN or ±Infinity."""
    if not math.isfinite(value):
        # JSON has no NaN or Infinity: pydantic would write null, which no reader accepts.
        raise PydanticCustomError("finite_number", "must be a finite number, not {value}",
                                  {"value": str(value)})
    return value


def _carried_exactly(metadata: dict[str, MetadataScalar]) -> dict[str, MetadataScalar]:
    """`metadata` if the job's JSON carries every key and value exactly; else names one."""
    # One call for the whole dict: a validator per key and per value costs ~0.15 µs each.
    for key, value in metadata.items():
        if not key.isascii():
            _check_entry(_utf8, key, (key, "[key]"))
        if isinstance(value, str):
            if not value.isascii():
                _check_entry(_utf8, value, (key,))
        elif isinstance(value, float) and not math.isfinite(value):
            _check_entry(_finite, value, (key,))
    return metadata


def _check_entry(check: Callable[[Any], object], value: object, loc: tuple[str, ...]) -> None:
    """Run `check` on one metadata entry; a refusal is located at `metadata.<key>`."""
    try:
        check(value)
    except PydanticCustomError as exc:  # pydantic prefixes this location with the field's
        raise ValidationError.from_exception_data("metadata", [
            InitErrorDetails(type=exc, loc=loc, input=value)]) from None


@dataclass(frozen=True)
class _OneError:
    """A union's refusal as one error, where pydantic lists one per member (each naming it)."""

    kind: str
    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler
                                     ) -> CoreSchema:
        schema = handler(source)
        if schema["type"] == "union":
            union = cast(UnionSchema, schema)
            union["custom_error_type"] = self.kind
            union["custom_error_message"] = self.message
        return schema


# Length limits go before the check: after it, pydantic would apply them in Python.
Text = Annotated[str, AfterValidator(_utf8)]
NonEmptyText = Annotated[str, StringConstraints(min_length=1), AfterValidator(_utf8)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=128),
                           AfterValidator(_utf8)]
CallbackUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_utf8)]
MetadataValue = Annotated[
    MetadataScalar, _OneError("metadata_value", "must be a string, a number or a boolean")]
Metadata = Annotated[dict[str, MetadataValue], AfterValidator(_carried_exactly)]


class SendRequest(BaseModel):
    """One message as a producer hands it in (before normalisation)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    to: Text | None = Field(None, description="recipient; any common format, normalised")
    group: Text | None = Field(None, description="NusaSMS address-book group (SMS only)")
    text: Text
    idempotency_key: IdempotencyKey | None = None
    callback_url: CallbackUrl | None = None
    send_at: FiniteFloat | None = Field(None, description="epoch seconds; held until then")
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
        try:
            size = len(json.dumps(value))
        except ValueError:  # an int of over 4300 digits, which Python will not even write
            size = MAX_METADATA_BYTES + 1
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
        return value


class Job(BaseModel):
    """Payload of the `kirim.send` task, schema version 1 (normalised, ready to send)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1  # SCHEMA_VERSION
    id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    channel: Channel
    to: str | None = Field(None, pattern=r"^[1-9][0-9]{6,14}$")
    group: Text | None = None
    # True only on a stored copy (record, dead letter) of a final OTP whose text was erased;
    # then `text` is "". Never on a task; left out of the JSON while false.
    text_erased: bool = Field(default=False, exclude_if=lambda erased: not erased)
    text: Text  # not empty, unless erased (checked below, after text_erased)
    encoding: Literal["gsm7", "ucs2"]
    parts: int = Field(ge=1)
    text_hash: Text
    created_at: FiniteFloat
    valid_until: FiniteFloat | None = None
    send_at: FiniteFloat | None = None
    callback_url: Text | None = None
    metadata: Metadata = Field(default_factory=dict)
    source: Text = "python"
    idempotency_key: Text | None = None
    # The NusaSMS drop-in's 18-digit `messageid` for this message (producer/core/aliases.py),
    # and how its callbacks go: "nusasms" is NusaSMS's DR callback (a GET of ref_no, status,
    # sent_date, err_code at the final report). Both left out of the JSON when unset.
    alias: str | None = Field(default=None, pattern=r"^[0-9]{18}$",
                              exclude_if=lambda alias: alias is None)
    callback_format: Literal["kirim", "nusasms"] = Field(
        default="kirim", exclude_if=lambda fmt: fmt == "kirim")

    @field_validator("text")
    @classmethod
    def _text_unless_erased(cls, value: str, info: ValidationInfo) -> str:
        erased = info.data.get("text_erased", False)
        if not value and not erased:
            raise PydanticCustomError("string_too_short",
                                      "String should have at least {min_length} character",
                                      {"min_length": 1})
        if value and erased:
            raise PydanticCustomError("text_not_erased", "must be empty when text_erased is true")
        return value

    def to_task(self) -> dict[str, Any]:
        """The JSON-ready dict that travels as the task argument."""
        if self.text_erased:  # a stored copy of a final OTP: nothing left to send
            raise ValueError(f"message {self.id}: its text was erased; it cannot be sent again")
        return self.model_dump(mode="json")
