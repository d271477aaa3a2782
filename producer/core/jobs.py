"""Turn a caller's SendRequest into a normalised, validated Job (pure: no I/O)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic import ValidationError

from producer.core.contract import WA_MAX_CHARS, Channel, Job, SendRequest
from producer.core.entropy import token_hex
from producer.core.errors import InvalidMessage
from producer.core.recipient import normalize_recipient
from producer.core.segments import Encoding, count_segments, is_gsm7, text_hash
from producer.core.settings import Settings


def new_message_id(now: float | None = None) -> str:
    """A sortable, unguessable id: milliseconds in hex, then 40 random bits."""
    ms = int((now or time.time()) * 1000)
    return f"{ms:012x}{token_hex(5)}"


def parse_request(data: object) -> SendRequest:
    """Validate raw input into a SendRequest; the error names the first bad field."""
    try:
        return SendRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_message(exc) from None  # chained, it would carry the whole input


def invalid_message(exc: ValidationError) -> InvalidMessage:
    """The InvalidMessage naming the first field a ValidationError found at fault."""
    err = exc.errors(include_url=False, include_input=False)[0]
    return InvalidMessage(field_name(err["loc"]), printable(err["msg"]))


def field_name(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a dotted field name, e.g. `metadata.order`."""
    return printable(".".join(str(part) for part in loc)) or "body"


def printable(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) written as escapes."""
    # A refused metadata key is echoed in the field name; the error itself must encode.
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode()


def build_job(req: SendRequest, settings: Settings, *, source: str = "python",
              now: float | None = None, message_id: str | None = None) -> Job:
    """Validate and normalise one request into the job a worker will send.

    ConfigError when KIRIM_HASH_KEY is not set: the text hash is keyed with it.
    """
    key = settings.hash_key_bytes  # first: a process without the key enqueues nothing
    now = time.time() if now is None else now
    text = _checked_text(req)
    to, group = _destination(req)
    encoding, parts = _size(req.channel, text, settings)
    try:
        return Job(
            id=message_id or new_message_id(now), channel=req.channel, to=to, group=group,
            text=text, encoding=encoding, parts=parts, text_hash=text_hash(text, key),
            created_at=now, valid_until=_valid_until(req, settings, now),
            send_at=_send_at(req, now, settings.message_ttl_s),
            callback_url=req.callback_url, metadata=req.metadata, source=source,
            idempotency_key=req.idempotency_key, **req.wa_fields(),
        )
    except ValidationError as exc:  # a request the Job refuses (one built without validation)
        raise invalid_message(exc) from None


def _checked_text(req: SendRequest) -> str:
    if not req.text.strip():
        raise InvalidMessage("text", "must not be empty or only white space")
    if "\x00" in req.text:
        raise InvalidMessage("text", "contains a NUL character, which no handset can show")
    return req.text


def _destination(req: SendRequest) -> tuple[str | None, str | None]:
    if (req.to is None) == (req.group is None):
        raise InvalidMessage("to", "give exactly one of `to` (a phone number) or `group`")
    if req.group is not None:
        if req.channel != Channel.SMS:
            raise InvalidMessage("group", "group sends are SMS only (channel must be 'sms')")
        if not req.group.strip() or len(req.group) > 100:
            raise InvalidMessage("group", "must be a NusaSMS group name of 1 to 100 characters")
        return None, req.group
    return normalize_recipient(req.to or ""), None


def _size(channel: Channel, text: str, settings: Settings) -> tuple[Encoding, int]:
    if channel == Channel.WA:
        if len(text) > WA_MAX_CHARS:
            raise InvalidMessage(
                "text", f"is {len(text)} characters; a WhatsApp message takes at most"
                f" {WA_MAX_CHARS}")
        return ("gsm7" if is_gsm7(text) else "ucs2"), 1
    seg = count_segments(text, newline_counts_double=settings.newline_counts_double)
    if seg.parts > settings.sms_max_parts:
        raise InvalidMessage(
            "text", f"needs {seg.parts} SMS parts ({seg.units} {seg.encoding} units); the"
            f" limit is {settings.sms_max_parts} (KIRIM_SMS_MAX_PARTS): shorten it or split it")
    return seg.encoding, seg.parts


def _valid_until(req: SendRequest, settings: Settings, now: float) -> float | None:
    if req.channel != Channel.OTP:
        if req.otp_validity_s is not None:
            raise InvalidMessage("otp_validity_s", "applies to channel 'otp' only")
        return None
    return now + (req.otp_validity_s or settings.otp_validity_s)


def _send_at(req: SendRequest, now: float, horizon_s: int) -> float | None:
    if req.send_at is None:
        return None
    if req.channel == Channel.OTP:
        raise InvalidMessage("send_at", "an OTP is sent at once; it cannot be scheduled")
    # The record lives KIRIM_MESSAGE_TTL_S; a send further ahead would outlive its record.
    if req.send_at > now + horizon_s:
        raise InvalidMessage(
            "send_at", f"is more than {horizon_s} s ahead (KIRIM_MESSAGE_TTL_S); schedule it later")
    return req.send_at if req.send_at > now else None
