"""Reading NusaSMS replies (pure): JSON or XML in, typed results out, ProtocolError otherwise.

Every body is first reduced to a list of flat records (`dict[str, object]`, keys lower-cased),
whatever its shape: a flat object, `{"results": [...]}` or `{"results": {...}}`, a bare list,
or XML with or without a `<results>` wrapper. Each reply kind then reads its fields from
the first record that has them. A well-formed negative status on a send is a result; on
CREDITS or DR it is a ProviderRejected.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from decimal import Decimal, InvalidOperation

from worker.nusasms.errors import ProtocolError, ProviderRejected, excerpt, scrub
from worker.nusasms.results import Credits, DeliveryReport, GroupResult, SendResult
from worker.nusasms.status import Action, StatusInfo, lookup, lookup_letter

# A send reply is ~150 bytes; anything this big is an error page, not worth parsing.
MAX_REPLY_CHARS = 65_536

Record = dict[str, object]


class _Malformed(Exception):
    """Internal: the body is not a reply; the message is the reason (never body text)."""


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_XML_DTD = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}", re.ASCII)
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"([ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?\s*(Z|[+-][0-9]{2}:?[0-9]{2})?)?",
    re.ASCII,
)


@contextmanager
def _reading(
    operation: str, text: str, action: Action, secrets: tuple[str, ...]
) -> Iterator[None]:
    try:
        yield
    except _Malformed as exc:
        raise ProtocolError(operation, str(exc), excerpt(text, secrets), action=action) from exc


def _decode(body: str | bytes) -> str:
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body


def _records(text: str) -> list[Record]:
    stripped = text.strip()
    if not stripped:
        raise _Malformed("empty body")
    if len(stripped) > MAX_REPLY_CHARS:
        raise _Malformed(f"body of {len(stripped)} characters is too large for a reply")
    if stripped[0] in "{[":
        return _json_records(stripped)
    if stripped[0] == "<":
        return _xml_records(stripped)
    raise _Malformed("body is neither JSON nor XML")


def _json_records(text: str) -> list[Record]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Malformed(f"truncated or invalid JSON ({exc.msg} at char {exc.pos})") from exc
    except (ValueError, RecursionError) as exc:
        raise _Malformed(f"unreadable JSON ({type(exc).__name__})") from exc
    if isinstance(data, dict) and "status" not in _lower_keys(data):
        data = _lower_keys(data).get("results", data)
    items = data if isinstance(data, list) else [data]
    records = [_lower_keys(item) for item in items if isinstance(item, dict)]
    if not records:
        raise _Malformed("JSON holds no reply object")
    return records


def _lower_keys(data: dict[str, object]) -> Record:
    return {str(key).lower(): value for key, value in data.items()}


def _xml_records(text: str) -> list[Record]:
    body = _XML_DECLARATION.sub("", text, count=1)
    if _XML_DTD.search(body):
        # No reply needs a DTD; refusing them keeps entity tricks out of the parser.
        raise _Malformed("XML with a DTD (an HTML page?)")
    root = _parse_xml(body)
    # A record is an element whose children are all leaves: <result><status>…</status></result>.
    records: list[Record] = [
        {_tag(child): (child.text or "").strip() for child in element}
        for element in root.iter()
        if len(element) and all(len(child) == 0 for child in element)
    ]
    return records or [{_tag(root): (root.text or "").strip()}]


def _parse_xml(body: str) -> ET.Element:
    try:
        return ET.fromstring(body)
    except (ET.ParseError, ValueError) as exc:
        first = exc
    try:
        # The doc's group reply is a run of elements with no root; give it one.
        return ET.fromstring(f"<reply>{body}</reply>")
    except (ET.ParseError, ValueError):
        raise _Malformed(f"truncated or invalid XML ({first})") from first


def _tag(element: ET.Element) -> str:
    return str(element.tag).rsplit("}", 1)[-1].lower()


def _first_with(records: list[Record], *keys: str) -> Record:
    for record in records:
        if any(key in record for key in keys):
            return record
    raise _Malformed(f"no {' or '.join(keys)} field")


def _get(record: Record, *names: str) -> object:
    return next((record[name] for name in names if name in record), None)


def _integer(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _status(record: Record, otp: bool = False) -> StatusInfo:
    code = _integer(record.get("status"))
    if code is None:
        raise _Malformed("status is not an integer")
    return lookup(code, otp=otp)


def _text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    raise _Malformed(f"{field} is not a string")


def _decimal(value: object) -> Decimal:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # repr() of a float is its shortest exact form: 12.5 stays 12.5, not 12.4999…
        text = repr(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
    else:
        raise _Malformed("value is not a number")
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise _Malformed("value is not a number") from exc
    if not number.is_finite():
        raise _Malformed("value is not a finite number")
    return number


def _date(value: object) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _Malformed("expiredDate is not a string")
    # MySQL's zero date is how PHP back ends commonly say "no date".
    if value.strip().startswith("0000-00-00"):
        return None
    match = _DATE.fullmatch(value.strip())
    if match is None:
        raise _Malformed("expiredDate is not YYYY-MM-DD[ time]")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise _Malformed("expiredDate is not a calendar date") from exc


def _raise_if_rejected(operation: str, record: Record) -> None:
    code = _integer(record.get("status"))
    if code is not None and code < 0:
        raise ProviderRejected(operation, lookup(code))


def parse_send_reply(
    body: str | bytes, *, destination: str = "", operation: str = "send",
    secrets: tuple[str, ...] = (), otp: bool = False,
) -> SendResult:
    """Read an SMS/WhatsApp send reply; `destination` stands in when the reply has none;
    `otp`: the request had otp=Y (some codes then mean something else)."""
    text = _decode(body)
    with _reading(operation, text, Action.UNKNOWN, secrets):
        record = _first_with(_records(text), "status")
        return SendResult(
            status=_status(record, otp),
            message_id=_text(_get(record, "messageid", "message_id"), "messageid"),
            destination=_text(record.get("destination"), "destination") or destination,
            raw=scrub(text, secrets),
        )


def parse_group_reply(
    body: str | bytes, *, group: str = "", operation: str = "send_group",
    secrets: tuple[str, ...] = (),
) -> GroupResult:
    """Read a group send reply (status, campaign_name, group)."""
    text = _decode(body)
    with _reading(operation, text, Action.UNKNOWN, secrets):
        record = _first_with(_records(text), "status")
        return GroupResult(
            status=_status(record),
            campaign_name=_text(_get(record, "campaign_name", "campaignname"), "campaign_name"),
            group=_text(record.get("group"), "group") or group,
            raw=scrub(text, secrets),
        )


def parse_credits(
    body: str | bytes, *, operation: str = "credits", secrets: tuple[str, ...] = ()
) -> Credits:
    """Read a CREDITS reply: `value` (number or numeric string) and `expiredDate`."""
    text = _decode(body)
    with _reading(operation, text, Action.RETRY, secrets):
        record = _first_with(_records(text), "value", "status")
        _raise_if_rejected(operation, record)
        if "value" not in record:
            raise _Malformed("no value field")
        expires = _get(record, "expireddate", "expired_date", "expires")
        return Credits(_decimal(record["value"]), _date(expires), scrub(text, secrets))


def parse_delivery_report(
    body: str | bytes, *, ref_no: str = "", operation: str = "delivery_report",
    secrets: tuple[str, ...] = (),
) -> DeliveryReport:
    """Read a DR pull reply; `ref_no` stands in when the reply does not echo it."""
    text = _decode(body)
    with _reading(operation, text, Action.RETRY, secrets):
        record = _first_with(_records(text), "status")
        _raise_if_rejected(operation, record)
        return _report(record, ref_no)


def report_from_fields(
    fields: Mapping[str, object], *, ref_no: str = "", operation: str = "delivery_report"
) -> DeliveryReport:
    """A report from fields already decoded elsewhere (a DR callback's query or JSON body)."""
    record = {str(key).lower(): value for key, value in fields.items()}
    with _reading(operation, str(record), Action.RETRY, ()):
        return _report(record, ref_no)


def _report(record: Record, ref_no: str) -> DeliveryReport:
    letter = _text(record.get("status"), "status")
    if letter is None:
        raise _Malformed("no delivery status letter")
    ref = _text(_get(record, "ref_no", "refno"), "ref_no") or ref_no
    if not ref:
        raise _Malformed("no ref_no")
    state, final = lookup_letter(letter)
    return DeliveryReport(
        ref_no=ref,
        letter=letter,
        state=state,
        final=final,
        sent_date=_text(record.get("sent_date"), "sent_date"),
        err_code=_text(_get(record, "err_code", "errcode"), "err_code"),
    )
