"""API v1.0's routes (spec §2): a JSON body in, a `V1Answer` (HTTP status + JSON) out.

Replies use the envelope `{"error", "error_code", "message", "data"}`; errors are
`{"error": true, "message": …, "description": null}` with a real HTTP status, and validation
errors FastAPI's 422 `{"detail": [{"loc", "msg", "type"}]}`. The HTTP codes of the error
bodies are the spec's decision (§2: validation 422, sender and file 400). The legacy rules
(sandbox/rules.py) decide a send, so credit, windows and magic numbers behave as on
`/api/v3/sendwa/plain`; a legacy status becomes a v1.0 reply in `legacy_error` [decision:
the spec gives no v1.0 body for most of them].
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox import magic, rules
from sandbox.state import JAKARTA, Message

if TYPE_CHECKING:
    from sandbox.app import Sandbox

MAX_MEDIA_BYTES = 512 * 1024
Body = dict[str, Any]


@dataclass(slots=True)
class V1Answer:
    """A route's answer before faults: HTTP status, JSON document, effects for the log."""

    status: int
    doc: Body
    log_status: str  # "0" for an accepted send, else the HTTP status
    delay_s: float = 0.0
    abort: bool = False


def ok(message: str, data: Body, log_status: str = "200") -> V1Answer:
    """A 200 envelope."""
    return V1Answer(200, {"error": False, "error_code": 0, "message": message, "data": data},
                    log_status)


def error(status: int, message: str) -> V1Answer:
    """An error body as public client code shows them."""
    return V1Answer(status, {"error": True, "message": message, "description": None},
                    str(status))


def invalid(field: str, msg: str, kind: str = "value_error") -> V1Answer:
    """A FastAPI validation error naming the body field."""
    return V1Answer(422, {"detail": [{"loc": ["body", field], "msg": msg, "type": kind}]}, "422")


def missing(field: str) -> V1Answer:
    """FastAPI's 422 for a required field that is absent."""
    return invalid(field, "field required", "value_error.missing")


def iso_time(epoch_s: float) -> str:
    """'YYYY-mm-ddTHH:MM:SS' in Jakarta time, as the v1.0 status reply writes dates."""
    return datetime.fromtimestamp(epoch_s, JAKARTA).strftime("%Y-%m-%dT%H:%M:%S")


# Legacy statuses a WhatsApp send can end in, as v1.0 replies [decision].
_LEGACY: dict[int, tuple[int, str]] = {
    rules.NOT_ENOUGH_CREDITS: (400, "Insufficient balance"),
    rules.BALANCE_EXPIRED: (400, "Balance expired"),
    rules.INVALID_USER_OR_PASS: (401, "Invalid API Key"),
    -40: (403, "IP address forbidden"),
    rules.SENDER_NOT_ALLOWED: (400, "Invalid WA Sender"),
    rules.SPAM_PATTERN: (400, "Spam pattern: too many identical messages to this destination"),
    rules.LIMIT_REACHED: (400, "Limit reached for destination"),
    rules.COMMUNICATION_ERROR: (500, "Internal server error"),
    -1: (500, "Internal server error"),
    -23: (500, "Internal server error"),
    -99: (500, "Internal server error"),
}


def legacy_error(status: int) -> V1Answer:
    """A legacy rule's status as a v1.0 error reply."""
    if status in (rules.MISSING_DESTINATION, -11, rules.INVALID_DESTINATION):
        return invalid("destination", "Invalid destination format")
    if status in (rules.MISSING_MESSAGE, rules.SYNTAX_ERROR):
        return invalid("message", f"must be 1 to {rules.WA_MAX_CHARS} characters")
    code, message = _LEGACY.get(status, (400, f"Message rejected ({status})"))
    return error(code, message)


def auth_api_key(sb: Sandbox, body: Body) -> V1Answer:
    """GET /auth/api_key: whose key it is."""
    return ok("API Key info", {"userid": sb.config.user, "idPerson": 1001, "idClient": 2001})


def balance(sb: Sandbox, body: Body) -> V1Answer:
    """GET /balance: both pools, as numbers, with their expiry dates."""
    sms, wa = sb.state.account.sms, sb.state.account.wa
    return ok("Balance", {
        "sms_balance": sms.credits, "sms_expired_date": sms.expired_date.isoformat(),
        "wa_balance": wa.credits, "wa_expired_date": wa.expired_date.isoformat(),
    })


def _string(body: Body, name: str, required: bool = True) -> str | V1Answer:
    value = body.get(name)
    if value is None:
        return missing(name) if required else ""
    if not isinstance(value, str):
        return invalid(name, "str type expected", "type_error.str")
    return value


def _refusal(fields: list[str | V1Answer]) -> V1Answer | None:
    return next((f for f in fields if isinstance(f, V1Answer)), None)


def _destination(gsm: str) -> V1Answer | None:
    ok_gsm = rules.gsm_status(gsm) == rules.OK
    return None if ok_gsm else invalid("destination", "Invalid destination format")


def _length(name: str, value: str, minimum: int) -> V1Answer | None:
    if minimum <= len(value.strip()) and len(value) <= rules.WA_MAX_CHARS:
        return None
    return invalid(name, f"must be {minimum} to {rules.WA_MAX_CHARS} characters")


def _sender_refusal(sb: Sandbox, sender: str) -> V1Answer | None:
    """400 Invalid WA Sender unless the sender is absent, or a plausible number on the
    account's list (`wa_senders`; empty: any)."""
    if not sender:
        return None
    listed = not sb.config.wa_senders or sender in sb.config.wa_senders
    return None if rules.gsm_status(sender) == rules.OK and listed else error(
        400, "Invalid WA Sender")


def whatsapp_message(sb: Sandbox, body: Body) -> V1Answer:
    """POST /whatsapp/message: destination, message, optional sender."""
    fields = [_string(body, "destination"), _string(body, "message"),
              _string(body, "sender", required=False)]
    refused = _refusal(fields)
    if refused is not None:
        return refused
    gsm, text, sender = (str(f) for f in fields)
    refused = _destination(gsm) or _length("message", text, 1) or _sender_refusal(sb, sender)
    if refused is not None:
        return refused
    data = {"sender": sender or None, "queue": None, "destination": gsm, "message": text}
    return _send(sb, rules.Send("wa", gsm, text, sender=sender or None), "WA send message",
                 data, {})


def whatsapp_media(sb: Sandbox, body: Body) -> V1Answer:
    """POST /whatsapp/media: destination, caption, optional sender, and media_url or
    media_base64 + file_name (at most 512 KB decoded)."""
    fields = [_string(body, "destination"), _string(body, "caption", required=False),
              _string(body, "sender", required=False),
              _string(body, "media_url", required=False),
              _string(body, "media_base64", required=False),
              _string(body, "file_name", required=False)]
    refused = _refusal(fields)
    if refused is not None:
        return refused
    gsm, caption, sender, url, inline, file_name = (str(f) for f in fields)
    refused = (_destination(gsm) or _length("caption", caption, 0)
               or _media(url, inline, file_name) or _sender_refusal(sb, sender))
    if refused is not None:
        return refused
    size = len(base64.b64decode(inline)) if inline else 0
    if size > MAX_MEDIA_BYTES:
        return error(400, "File exceed limits (max 512 KB)")
    data = {"sender": sender or None, "queue": None, "destination": gsm, "caption": caption,
            "media_url": url or None}
    extra = {"caption": caption, "media_url": url or None, "file_name": file_name or None,
             "media_bytes": size}
    # The windows and the duplicate count see what was sent: the caption and the file.
    text = f"{caption}\n[media {url or file_name} {size} bytes]"
    return _send(sb, rules.Send("wa", gsm, text, sender=sender or None), "WA Send Media",
                 data, extra)


def _media(url: str, inline: str, file_name: str) -> V1Answer | None:
    """FastAPI's 422 for a media set that is not one http(s) URL or one base64 file."""
    if bool(url) == bool(inline):
        return invalid("media_url", "give exactly one of media_url and media_base64")
    if url:
        ok_url = url.startswith(("http://", "https://")) and len(url) <= 2048
        return None if ok_url else invalid("media_url", "invalid or missing URL scheme")
    if not file_name:
        return missing("file_name")
    try:
        base64.b64decode(inline, validate=True)
    except (binascii.Error, ValueError):
        return invalid("media_base64", "Invalid base64 data")
    return None


def _send(sb: Sandbox, send: rules.Send, message: str, data: Body,
          extra: dict[str, Any]) -> V1Answer:
    """The legacy rules decide; an accepted message is stored with its v1.0 fields."""
    from sandbox.endpoints import text_segments

    found = magic.parse(send.gsm)
    # The sender was checked above against the WhatsApp senders, not the SMS sender names.
    check = rules.Check(sb.state, sb.config, dataclasses.replace(send, sender=None), found,
                        text_segments(sb, send), sb.state.clock.now())
    status = rules.check(check)
    if status != rules.OK:
        return dataclasses.replace(legacy_error(status), delay_s=found.latency_s)
    stored = rules.accept(check, sb.ids.new())
    stored.api, stored.sender = "v1", send.sender
    for name, value in extra.items():
        setattr(stored, name, value)
    answer = ok(message, {**data, "ref_no": stored.messageid}, log_status="0")
    answer.delay_s = found.latency_s + (sb.config.hang_s if found.hang else 0.0)
    answer.abort = found.drop
    return answer


def whatsapp_status(sb: Sandbox, ref_no: str) -> V1Answer:
    """GET /whatsapp/status/{ref_no}: sent, then delivered, then read, on the sandbox clock."""
    stored = sb.state.messages.get(ref_no)
    if stored is None or stored.channel != "wa":
        return error(404, "Message not found")
    return ok("Message data", status_fields(stored, sb.state.clock.now(),
                                            sb.config.wa_read_delay_s))


def status_fields(stored: Message, now_s: float, read_delay_s: float | None) -> Body:
    """The status data of one WhatsApp message at `now_s`.

    Until its report is due: letter P, no dates but sent_date. Then letter D sets
    delivered_date, and read_date `read_delay_s` later (never when None); letter R (a magic
    number) sets both at once, as a read receipt implies delivery; any other letter, no date.
    """
    letter = stored.dr_status(now_s)
    final = now_s >= stored.final_at
    delivered = final and letter in ("D", "R")
    read = delivered and (letter == "R" or (
        read_delay_s is not None and now_s >= stored.final_at + read_delay_s))
    read_at = stored.final_at if letter == "R" else stored.final_at + (read_delay_s or 0.0)
    return {
        "destination": stored.gsm, "sender": stored.sender, "is_group": False,
        "create_date": iso_time(stored.accepted_at), "sent_date": iso_time(stored.accepted_at),
        "read_date": iso_time(read_at) if read else None,
        "delivered_date": iso_time(stored.final_at) if delivered else None,
        "ref_no": stored.messageid, "status": letter,
        "message": None if stored.caption is not None else stored.text,
        "caption": stored.caption, "media_url": stored.media_url,
    }
