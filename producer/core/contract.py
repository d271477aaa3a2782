"""The job contract: what a producer hands kirim, and the payload a worker receives.

`SendRequest` is the caller's input (validated, with errors naming the field); `Job` is the
versioned, normalised payload of the `kirim.send` task (documented for other languages).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
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
    model_validator,
)
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import UnionSchema

SCHEMA_VERSION = 2  # 1: no WhatsApp media or sender (still accepted); 2: with them
WA_MAX_CHARS = 1000
# NusaSMS API v1.0 takes a WhatsApp file of at most 512 KB (docs/nusasms-api.md §2).
WA_MEDIA_MAX_BYTES = 512 * 1024
WA_CAPTION_MAX_CHARS = 1000
# The job fields that only a WhatsApp message sent through API v1.0 carries (schema v2).
WA_FIELDS = ("media_url", "media_base64", "file_name", "caption", "sender")
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
    READ = "read"  # WhatsApp through API v1.0: the recipient opened it (after delivered)
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    DEAD = "dead"


S = State
# `delivered` is final for SMS and v3 WhatsApp; a v1.0 WhatsApp may still move on to `read`.
FINAL_REPORT_STATES = frozenset({S.DELIVERED, S.READ, S.UNDELIVERED, S.FAILED, S.REJECTED,
                                 S.EXPIRED})
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
    # Read receipts (WhatsApp through API v1.0): after delivered, or straight from sent (or
    # unknown) when the first report already carries a read_date. Nothing follows read.
    S.READ: frozenset({S.SENT, S.UNKNOWN, S.DELIVERED}),
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


def _media_size(value: str) -> str:
    """`value` if it is base64 (standard alphabet, padded) whose bytes fit WhatsApp's cap."""
    # Counted before decoding: a huge string is refused without allocating its bytes.
    if len(value) > 4 * ((WA_MEDIA_MAX_BYTES + 2) // 3):
        raise PydanticCustomError(
            "media_too_large", "decodes to more than {limit} bytes (512 KB, the provider's"
            " limit for a WhatsApp file): send a smaller file, or give media_url instead",
            {"limit": WA_MEDIA_MAX_BYTES})
    try:
        size = len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        raise PydanticCustomError(
            "base64", "is not valid base64 (standard alphabet A-Z a-z 0-9 + /, padded with"
            " =, no line breaks)") from None
    if size == 0:
        raise PydanticCustomError("media_empty", "decodes to an empty file")
    if size > WA_MEDIA_MAX_BYTES:
        raise PydanticCustomError(
            "media_too_large", "decodes to {size} bytes; a WhatsApp file takes at most {limit}"
            " (512 KB): send a smaller file, or give media_url instead",
            {"size": size, "limit": WA_MEDIA_MAX_BYTES})
    return value


def _file_name(value: str) -> str:
    """`value` if it is a bare file name (no folder, no control character)."""
    if value in (".", "..") or any(c in value for c in "/\\") or not value.isprintable():
        raise PydanticCustomError("file_name", "must be a bare file name such as invoice.pdf"
                                  " (no folder, no control character)")
    return value


def _wa_sender(value: str) -> str:
    """`value` if it is a phone number in international format, digits only."""
    if not (value.isascii() and value.isdigit() and 7 <= len(value) <= 15) or value[0] == "0":
        raise PydanticCustomError("wa_sender", "must be one of the account's WhatsApp sender"
                                  " numbers in international format, digits only (e.g."
                                  " 6281234567890, no + or spaces)")
    return value


def _http_url(value: str) -> str:
    """`value` if it is an absolute http:// or https:// URL with a host."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#" \
            or any(c.isspace() for c in value):
        raise PydanticCustomError("url_scheme", "must be an absolute http:// or https:// URL"
                                  " (e.g. https://example.com/invoice.pdf)")
    return value


# Length limits go before the check: after it, pydantic would apply them in Python.
Text = Annotated[str, AfterValidator(_utf8)]
NonEmptyText = Annotated[str, StringConstraints(min_length=1), AfterValidator(_utf8)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=128),
                           AfterValidator(_utf8)]
CallbackUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_utf8)]
MediaUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_utf8),
                     AfterValidator(_http_url)]
MediaBase64 = Annotated[str, AfterValidator(_media_size)]
FileName = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_utf8),
                     AfterValidator(_file_name)]
Caption = Annotated[str, StringConstraints(min_length=1, max_length=WA_CAPTION_MAX_CHARS),
                    AfterValidator(_utf8)]
# A WhatsApp sender number of the account, international format without "+" (e.g. 628…).
WASender = Annotated[str, AfterValidator(_wa_sender)]
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
    # WhatsApp through NusaSMS API v1.0 only (schema v2): one file, by URL or inline base64
    # (at most 512 KB decoded, with its file name), a caption for it, and the account's
    # WhatsApp sender number to send from.
    media_url: MediaUrl | None = Field(None, description="WhatsApp: a file to send, by URL")
    media_base64: MediaBase64 | None = Field(
        None, description="WhatsApp: a file to send, base64 (at most 512 KB decoded; with"
        " file_name)")
    file_name: FileName | None = Field(None, description="WhatsApp: media_base64's file name")
    caption: Caption | None = Field(None, description="WhatsApp: the text under the file"
                                    " (default: text)")
    sender: WASender | None = Field(None, description="WhatsApp: the account's sender"
                                    " number, e.g. 6281234567890 (default: the account's)")

    @model_validator(mode="after")
    def _wa_fields_fit(self) -> SendRequest:
        _check_wa_fields(self)
        return self

    def wa_fields(self) -> dict[str, Any]:
        """The job fields for this request's WhatsApp options: the v2 ones that are set, and
        `"v": 2` with them; {} when none is (the job stays schema v1)."""
        given = {name: getattr(self, name) for name in WA_FIELDS
                 if getattr(self, name) is not None}
        return {"v": 2, **given} if given else {}

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
    """Payload of the `kirim.send` task, schema version 1 or 2 (normalised, ready to send).

    Version 2 adds the WhatsApp fields (WA_FIELDS); a job that carries any of them is v2, a
    job without them may say either (kirim writes 1, so older workers still read it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1, 2] = 1  # SCHEMA_VERSION is the newest
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
    # The recipient guard's members are "<text_hash>:<id>": a hash never holds a ':' (kirim's
    # are 16 hex digits; a foreign Celery client's is recomputed by the worker).
    text_hash: Annotated[Text, Field(pattern=r"^[^:]*$")]
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
    # Schema v2, WhatsApp only (see SendRequest); each left out of the JSON when unset.
    media_url: MediaUrl | None = Field(default=None, exclude_if=lambda v: v is None)
    # True only on a stored copy (record) of a message whose inline file was erased once it
    # was no longer needed (erase_text.lua); then `media_base64` is "". Never on a task.
    media_erased: bool = Field(default=False, exclude_if=lambda erased: not erased)
    media_base64: str | None = Field(default=None, exclude_if=lambda v: v is None)
    file_name: FileName | None = Field(default=None, exclude_if=lambda v: v is None)
    caption: Caption | None = Field(default=None, exclude_if=lambda v: v is None)
    sender: WASender | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("media_base64")
    @classmethod
    def _media_unless_erased(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("media_erased", False):
            if value:
                raise PydanticCustomError("media_not_erased",
                                          "must be empty when media_erased is true")
            return value
        return _media_size(value)

    @model_validator(mode="after")
    def _wa_fields_fit(self) -> Job:
        given = [name for name in WA_FIELDS if getattr(self, name) is not None]
        if given and self.v == 1:
            raise _located(given[0], "schema_version", "needs job schema version 2 (\"v\": 2);"
                           " a v1 job carries no WhatsApp media or sender")
        if given or self.media_erased:
            _check_wa_fields(self)
        return self

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

    @property
    def has_media(self) -> bool:
        """True when the message carries a file (by URL or inline)."""
        return self.media_url is not None or self.media_base64 is not None

    def to_task(self) -> dict[str, Any]:
        """The JSON-ready dict that travels as the task argument."""
        if self.text_erased:  # a stored copy of a final OTP: nothing left to send
            raise ValueError(f"message {self.id}: its text was erased; it cannot be sent again")
        if self.media_erased:  # a stored copy of a sent WhatsApp: its file is gone
            raise ValueError(f"message {self.id}: its file was erased once it was sent; it"
                             " cannot be sent again")
        return self.model_dump(mode="json")


def _located(field: str, kind: str, message: str) -> ValidationError:
    """A refusal located at `field` (a model validator's own would name no field)."""
    return ValidationError.from_exception_data("wa_fields", [
        InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=None)])


def _check_wa_fields(m: SendRequest | Job) -> None:
    """The WhatsApp options fit together: WhatsApp only, one file, a name with inline bytes,
    a caption only under a file. Raises a refusal naming the field."""
    given = [name for name in WA_FIELDS if getattr(m, name) is not None]
    if not given:
        return
    if m.channel != Channel.WA:
        raise _located(given[0], "wa_only", f"applies to channel 'wa' only (this message is"
                       f" {m.channel.value!r}); send files and choose a sender on WhatsApp")
    if m.media_url is not None and m.media_base64 is not None:
        raise _located("media_base64", "one_media", "give one file: media_url or media_base64,"
                       " not both")
    if m.media_base64 is not None and m.file_name is None:
        raise _located("file_name", "missing", "is required with media_base64 (the name the"
                       " recipient sees, e.g. invoice.pdf)")
    if m.file_name is not None and m.media_base64 is None:
        raise _located("file_name", "file_name_alone", "goes with media_base64 only (a"
                       " media_url file is named by its URL)")
    if m.caption is not None and m.media_url is None and m.media_base64 is None:
        raise _located("caption", "caption_alone", "goes with a file only (media_url or"
                       " media_base64); a message without one sends `text`")


def sent_api(fields: Mapping[str, str]) -> str | None:
    """Which NusaSMS API a message's record says sent it: "v1" or "v3" for a WhatsApp (its
    *calling* mark records the API it goes by), "v3" for any other message the provider
    took (the legacy API), None while the provider has not taken it."""
    api = fields.get("api")
    if api:
        return api
    return "v3" if fields.get("provider_id") else None
