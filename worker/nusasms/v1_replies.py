"""Reading NusaSMS API v1.0 replies (pure): HTTP status + JSON body in, typed results out.

Every reply is the envelope `{"error": bool, "error_code": int, "message": str, "data": {…}}`
(docs/nusasms-api.md §2), or FastAPI's `{"detail": …}` for a validation error. A send's
error reply is a result (`SendResult.status`, from `v1_status.lookup_v1`); a query's is
raised as `ProviderRejected`. A 2xx that is not a readable reply is a `ProtocolError`
(UNKNOWN on a send: the provider may have the message; RETRY on a query).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from worker.nusasms.errors import ProtocolError, ProviderRejected, excerpt, scrub
from worker.nusasms.replies import MAX_REPLY_CHARS, _date, _decimal, _Malformed, _text
from worker.nusasms.results import Credits, SendResult
from worker.nusasms.status import Action, DeliveryState, Scope, StatusInfo, lookup_letter
from worker.nusasms.v1_status import ACCEPTED, ENVELOPE_404, lookup_v1

Envelope = dict[str, Any]


@dataclass(frozen=True)
class ApiKeyInfo:
    """Whose key it is (`GET /auth/api_key`): ids as strings, None when not given."""

    userid: str | None
    id_person: str | None
    id_client: str | None
    raw: str


@dataclass(frozen=True)
class Balances:
    """The account's balances per product (`GET /balance`)."""

    sms: Credits
    wa: Credits
    raw: str


@dataclass(frozen=True)
class WAStatus:
    """Where a WhatsApp message sent through v1.0 is (`GET /whatsapp/status/{ref_no}`).

    The fields decide, not the letter (docs/nusasms-api.md §1.7): `read_date` set → READ
    (final), else `delivered_date` set or letter D → DELIVERED (not final: it may still be
    read), else the legacy letter table (U/F/E are final failures; a bare R is taken as
    DELIVERED, not final, until `read_date` shows). `final`: no later change is expected.
    """

    ref_no: str
    letter: str
    state: DeliveryState
    final: bool
    sent_date: str | None
    delivered_date: str | None
    read_date: str | None


def _decode(body: str | bytes) -> str:
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body


def _json_object(text: str) -> Envelope:
    stripped = text.strip()
    if not stripped:
        raise _Malformed("empty body")
    if len(stripped) > MAX_REPLY_CHARS:
        raise _Malformed(f"body of {len(stripped)} characters is too large for a reply")
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise _Malformed(f"truncated or invalid JSON ({exc.msg} at char {exc.pos})") from exc
    except (ValueError, RecursionError) as exc:
        raise _Malformed(f"unreadable JSON ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise _Malformed("JSON is not an object")
    return data


def _is_error(doc: Envelope) -> bool:
    return doc.get("error") is True or "detail" in doc


def _said(doc: Envelope) -> tuple[str, str | None]:
    """(the provider's message, the refused field of a 422) of an error body."""
    detail = doc.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = detail[0].get("loc")
        parts = [str(p) for p in loc if p != "body"] if isinstance(loc, list) else []
        return str(detail[0].get("msg") or ""), ".".join(parts) or None
    if isinstance(detail, str):
        return detail, None
    message = doc.get("message")
    return (message if isinstance(message, str) else ""), None


def error_row(status_code: int, text: str, *, for_query: bool = False) -> StatusInfo:
    """The v1 table row for an error reply (a table HTTP status, or a 2xx saying error)."""
    try:
        doc = _json_object(text)
    except _Malformed:
        if status_code in (400, 422):
            # Not the provider's JSON: a proxy or gateway in front of it; nothing per message.
            return StatusInfo(status_code, "UNREADABLE_ERROR",
                              "an error page that is not NusaSMS's JSON: check the URL and"
                              " proxy", Action.PAUSE, Scope.ACCOUNT)
        return lookup_v1(status_code)
    if for_query and status_code == 404 and "error" in doc:
        return ENVELOPE_404
    message, field = _said(doc)
    return lookup_v1(status_code, message, field)


def _scrubbed(row: StatusInfo, secrets: tuple[str, ...]) -> StatusInfo:
    meaning = excerpt(row.meaning, secrets)
    return StatusInfo(row.code, row.name, meaning, row.action, row.scope)


def parse_v1_send(
    status_code: int, body: str | bytes, *, destination: str, operation: str,
    secrets: tuple[str, ...] = (),
) -> SendResult:
    """Read a WhatsApp send reply (text or media): DONE with `message_id` = `data.ref_no`,
    or the table row of an error reply."""
    text = _decode(body)
    raw = scrub(text, secrets)
    if not 200 <= status_code < 300:
        row = _scrubbed(error_row(status_code, text), secrets)
        return SendResult(status=row, message_id=None, destination=destination, raw=raw)
    try:
        doc = _json_object(text)
        if _is_error(doc):
            row = _scrubbed(error_row(400, text), secrets)
            return SendResult(status=row, message_id=None, destination=destination, raw=raw)
        data = _data(doc)
        ref_no = _text(data.get("ref_no"), "ref_no")
        if ref_no is None:
            raise _Malformed("no data.ref_no in an accepted reply")
        echoed = _text(data.get("destination"), "destination")
    except _Malformed as exc:
        raise ProtocolError(operation, str(exc), excerpt(text, secrets),
                            action=Action.UNKNOWN) from exc
    return SendResult(status=ACCEPTED, message_id=ref_no, destination=echoed or destination,
                      raw=raw)


def parse_v1_query(
    status_code: int, body: str | bytes, *, operation: str, secrets: tuple[str, ...] = ()
) -> Envelope:
    """The `data` object of a query's reply; ProviderRejected for an error reply,
    ProtocolError (RETRY) for an unreadable one."""
    text = _decode(body)
    if not 200 <= status_code < 300:
        row = error_row(status_code, text, for_query=True)
        raise ProviderRejected(operation, _scrubbed(row, secrets))
    try:
        doc = _json_object(text)
        if _is_error(doc):
            raise ProviderRejected(operation, _scrubbed(error_row(400, text), secrets))
        return _data(doc)
    except _Malformed as exc:
        raise ProtocolError(operation, str(exc), excerpt(text, secrets),
                            action=Action.RETRY) from exc


def _data(doc: Envelope) -> Envelope:
    data = doc.get("data")
    if not isinstance(data, dict):
        raise _Malformed("no data object")
    return data


def balances_from(data: Envelope, raw: str, *, operation: str = "balance") -> Balances:
    """Balances from `/balance`'s data: `sms_balance`, `sms_expired_date`, `wa_…`."""
    try:
        sms = Credits(_decimal(_need(data, "sms_balance")),
                      _date(data.get("sms_expired_date")), raw)
        wa = Credits(_decimal(_need(data, "wa_balance")), _date(data.get("wa_expired_date")), raw)
    except _Malformed as exc:
        raise ProtocolError(operation, str(exc), excerpt(raw), action=Action.RETRY) from exc
    return Balances(sms=sms, wa=wa, raw=raw)


def api_key_info_from(data: Envelope, raw: str, *, operation: str = "check_key") -> ApiKeyInfo:
    """Whose key it is, from `/auth/api_key`'s data (`userid`, `idPerson`, `idClient`)."""
    try:
        return ApiKeyInfo(
            userid=_text(data.get("userid"), "userid"),
            id_person=_text(data.get("idPerson"), "idPerson"),
            id_client=_text(data.get("idClient"), "idClient"),
            raw=raw,
        )
    except _Malformed as exc:
        raise ProtocolError(operation, str(exc), excerpt(raw), action=Action.RETRY) from exc


def wa_status_from(
    data: Envelope, ref_no: str, raw: str, *, operation: str = "wa_status"
) -> WAStatus:
    """A WAStatus from `/whatsapp/status/{ref_no}`'s data (see WAStatus for the rule)."""
    try:
        letter = _text(data.get("status"), "status") or ""
        sent, delivered, read = (_text(data.get(name), name)
                                 for name in ("sent_date", "delivered_date", "read_date"))
        ref = _text(data.get("ref_no"), "ref_no") or ref_no
    except _Malformed as exc:
        raise ProtocolError(operation, str(exc), excerpt(raw), action=Action.RETRY) from exc
    state, final = _wa_state(letter, delivered, read)
    return WAStatus(ref_no=ref, letter=letter, state=state, final=final, sent_date=sent,
                    delivered_date=delivered, read_date=read)


def _wa_state(letter: str, delivered: str | None, read: str | None) -> tuple[DeliveryState, bool]:
    if read:
        return DeliveryState.READ, True
    state, final = lookup_letter(letter)
    if delivered or state in (DeliveryState.DELIVERED, DeliveryState.REJECTED):
        return DeliveryState.DELIVERED, False
    return state, final


def _need(data: Envelope, name: str) -> object:
    if name not in data:
        raise _Malformed(f"no {name} field")
    return data[name]
