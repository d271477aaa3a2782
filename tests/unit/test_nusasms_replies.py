"""Reply parsing: every shape the spec shows or allows, and everything else as ProtocolError."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.nusasms.errors import NusaSMSError, ProtocolError, ProviderRejected
from worker.nusasms.replies import (
    MAX_REPLY_CHARS,
    parse_credits,
    parse_delivery_report,
    parse_group_reply,
    parse_send_reply,
    report_from_fields,
)
from worker.nusasms.status import Action, DeliveryState

PASSWORD = "Sup3r-S3cret"

# The doc's own examples (docs/nusasms-api.md §1.4).
DOC_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><results><result><status>0</status>'
    "<messageid>175041319203754627</messageid><destination>6285100803380</destination>"
    "</result></results>"
)
DOC_JSON = (
    '{"results":[{"status":"0","messageid":"175041319203754627",'
    '"destination":"6285100803380"}]}'
)


# --- send replies ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [DOC_JSON, DOC_XML, DOC_JSON.encode(), DOC_XML.encode()])
def test_doc_examples(body: str | bytes) -> None:
    result = parse_send_reply(body)
    assert result.status.code == 0
    assert result.status.action is Action.DONE
    assert result.message_id == "175041319203754627"
    assert result.destination == "6285100803380"


@pytest.mark.parametrize(
    "body",
    [
        '{"results":[{"status":0,"messageid":175041319203754627,"destination":6285100803380}]}',
        '{"results":{"status":"0","messageid":"175041319203754627","destination":"6285100803380"}}',
        '{"status":"0","messageid":"175041319203754627","destination":"6285100803380"}',
        '[{"status":"0","messageid":"175041319203754627","destination":"6285100803380"}]',
        '{"Results":[{"Status":" 0 ","MessageId":"175041319203754627",'
        '"Destination":"6285100803380"}]}',
        "<result><status>0</status><messageid>175041319203754627</messageid>"
        "<destination>6285100803380</destination></result>",
        "\n  <results>\n <result>\n <status> 0 </status>\n"
        "<messageid>175041319203754627</messageid>\n"
        "<destination>6285100803380</destination></result></results>\n",
    ],
    ids=["ints", "results-object", "flat", "bare-list", "key-case", "xml-flat", "xml-spaces"],
)
def test_tolerated_send_shapes(body: str) -> None:
    result = parse_send_reply(body)
    assert (result.status.code, result.message_id, result.destination) == (
        0,
        "175041319203754627",
        "6285100803380",
    )


def test_negative_status_is_a_result_not_an_error() -> None:
    body = '{"results":[{"status":"-13","messageid":"","destination":"6281234567890"}]}'
    result = parse_send_reply(body)
    assert result.status.name == "INVALID_DESTINATION_ADDRESS"
    assert result.status.action is Action.DEAD
    assert result.message_id is None
    assert result.destination == "6281234567890"


def test_xml_error_reply() -> None:
    body = (
        "<results><result><status>-2</status><messageid></messageid>"
        "<destination>6281234567890</destination></result></results>"
    )
    result = parse_send_reply(body)
    assert (result.status.code, result.status.action, result.message_id) == (
        -2,
        Action.PAUSE,
        None,
    )


def test_unknown_status_code_is_a_dead_result_with_its_code() -> None:
    result = parse_send_reply('{"results":[{"status":"-123","messageid":""}]}')
    assert (result.status.code, result.status.name) == (-123, "UNKNOWN_CODE")
    assert result.status.action is Action.DEAD


def test_missing_destination_falls_back_to_what_was_sent() -> None:
    result = parse_send_reply('{"results":[{"status":"-6"}]}', destination="62811")
    assert result.destination == "62811"


def test_first_result_wins() -> None:
    body = '{"results":[{"status":"0","messageid":"1"},{"status":"-1","messageid":""}]}'
    assert parse_send_reply(body).message_id == "1"


def test_raw_keeps_the_body_but_not_the_password() -> None:
    body = '{"results":[{"status":"0","messageid":"9","note":"' + PASSWORD + '"}]}'
    result = parse_send_reply(body, secrets=(PASSWORD,))
    assert PASSWORD not in result.raw
    assert '"messageid":"9"' in result.raw


# --- group replies --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        # The doc's fragment, exactly as printed: no root element.
        "<status>0</status><campaign_name>Group-Api-Campaign-17</campaign_name>"
        "<group>Example</group>",
        "<results><result><status>0</status><campaign_name>Group-Api-Campaign-17"
        "</campaign_name><group>Example</group></result></results>",
        '{"results":[{"status":"0","campaign_name":"Group-Api-Campaign-17","group":"Example"}]}',
    ],
    ids=["doc-fragment", "xml", "json"],
)
def test_group_replies(body: str) -> None:
    result = parse_group_reply(body, group="ignored")
    assert result.status.action is Action.DONE
    assert result.campaign_name == "Group-Api-Campaign-17"
    assert result.group == "Example"


def test_group_not_found() -> None:
    result = parse_group_reply('{"results":[{"status":"-55"}]}', group="Pelanggan")
    assert (result.status.name, result.status.action) == ("GROUP_NOT_FOUND", Action.DEAD)
    assert result.group == "Pelanggan"
    assert result.campaign_name is None


# --- credits --------------------------------------------------------------------------


D_2512 = date(2025, 12, 31)
D_2603 = date(2026, 3, 1)


@pytest.mark.parametrize(
    ("body", "value", "expires"),
    [
        ('{"value": 12500, "expiredDate": "2025-12-31"}', Decimal(12500), D_2512),
        ('{"value": "12500", "expiredDate": "2025-12-31 23:59:59"}', Decimal(12500), D_2512),
        ('{"value": 12500.75, "expiredDate": "2025-12-31T23:59:59"}', Decimal("12500.75"), D_2512),
        ('{"value": " 0.5 ", "expiredDate": "2025-12-31 10:00:00.0"}', Decimal("0.5"), D_2512),
        ('{"value": "-3", "expiredDate": "2025-12-31 10:00:00+07:00"}', Decimal(-3), D_2512),
        ('{"value": "100"}', Decimal(100), None),
        ('{"value": "100", "expiredDate": null}', Decimal(100), None),
        ('{"value": "100", "expiredDate": ""}', Decimal(100), None),
        ('{"value": "100", "expiredDate": "0000-00-00 00:00:00"}', Decimal(100), None),
        ('{"VALUE": "100", "ExpiredDate": "2026-03-01"}', Decimal(100), D_2603),
        ('{"results":[{"status":"0","value":"7","expiredDate":"2026-03-01"}]}', Decimal(7), D_2603),
        ("<c><value>42</value><expiredDate>2026-03-01</expiredDate></c>", Decimal(42), D_2603),
    ],
)
def test_credits(body: str, value: Decimal, expires: date | None) -> None:
    credits = parse_credits(body)
    assert credits.value == value
    assert credits.expires == expires
    assert credits.raw == body


def test_credits_float_keeps_its_decimal_digits() -> None:
    assert str(parse_credits('{"value": 0.1}').value) == "0.1"


@pytest.mark.parametrize(
    ("body", "code", "action"),
    [
        ('{"results":[{"status":"-5","messageid":"","destination":""}]}', -5, Action.PAUSE),
        ('{"results":{"status":"-40"}}', -40, Action.PAUSE),
        ("<results><result><status>-99</status></result></results>", -99, Action.RETRY),
    ],
)
def test_credits_error_reply_is_rejected(body: str, code: int, action: Action) -> None:
    with pytest.raises(ProviderRejected) as caught:
        parse_credits(body)
    assert caught.value.status.code == code
    assert caught.value.action is action


@pytest.mark.parametrize(
    "body",
    [
        '{"value": "abc"}',
        '{"value": "1,000"}',
        '{"value": NaN}',
        '{"value": "Infinity"}',
        '{"value": true}',
        '{"value": null}',
        '{"value": [1]}',
        '{"value": "10", "expiredDate": "31/12/2025"}',
        '{"value": "10", "expiredDate": "2025-02-30"}',
        '{"value": "10", "expiredDate": 20251231}',
        '{"expiredDate": "2025-12-31"}',
        '{"results":[{"status":"0"}]}',
    ],
)
def test_bad_credits_are_protocol_errors(body: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_credits(body)
    assert caught.value.action is Action.RETRY


# --- delivery reports -----------------------------------------------------------------

SANDBOX_DR = (
    '{"ref_no":"175041319203754627","status":"D","sent_date":"2017-09-25 17:49:05.0",'
    '"err_code":"0"}'
)


@pytest.mark.parametrize(
    "body",
    [
        SANDBOX_DR,
        f'{{"results":{SANDBOX_DR}}}',
        f'{{"results":[{SANDBOX_DR}]}}',
        f"[{SANDBOX_DR}]",
        "<results><result><ref_no>175041319203754627</ref_no><status>D</status>"
        "<sent_date>2017-09-25 17:49:05.0</sent_date><err_code>0</err_code></result></results>",
        '<?xml version="1.0"?><dr><ref_no>175041319203754627</ref_no><status>D</status>'
        "<sent_date>2017-09-25 17:49:05.0</sent_date><err_code>0</err_code></dr>",
    ],
    ids=["flat", "results-object", "results-list", "bare-list", "xml-results", "xml-flat"],
)
def test_delivery_report_shapes(body: str) -> None:
    report = parse_delivery_report(body, ref_no="other")
    assert report.ref_no == "175041319203754627"
    assert (report.letter, report.state, report.final) == ("D", DeliveryState.DELIVERED, True)
    assert report.sent_date == "2017-09-25 17:49:05.0"
    assert report.err_code == "0"


@pytest.mark.parametrize(
    ("letter", "state", "final"),
    [
        ("U", DeliveryState.UNDELIVERED, True),
        ("F", DeliveryState.FAILED, True),
        ("R", DeliveryState.REJECTED, True),
        ("E", DeliveryState.EXPIRED, True),
        ("P", DeliveryState.PENDING, False),
        ("S", DeliveryState.PENDING, False),
        ("Q", DeliveryState.PENDING, False),
        ("A", DeliveryState.PENDING, False),
        ("X", DeliveryState.UNKNOWN_LETTER, False),
        ("DELIVRD", DeliveryState.UNKNOWN_LETTER, False),
    ],
)
def test_delivery_report_letters(letter: str, state: DeliveryState, final: bool) -> None:
    report = parse_delivery_report(json.dumps({"status": letter}), ref_no="7")
    assert (report.ref_no, report.letter, report.state, report.final) == ("7", letter, state, final)
    assert report.sent_date is None and report.err_code is None


def test_delivery_report_tolerates_ints() -> None:
    report = parse_delivery_report('{"ref_no":175041319203754627,"status":"D","err_code":0}')
    assert (report.ref_no, report.err_code) == ("175041319203754627", "0")


@pytest.mark.parametrize(
    "body",
    [
        '{"results":[{"status":"-5"}]}',
        '{"results":{"status":-5}}',
        "<result><status>-5</status></result>",
    ],
)
def test_delivery_report_error_reply_is_rejected(body: str) -> None:
    with pytest.raises(ProviderRejected) as caught:
        parse_delivery_report(body, ref_no="1")
    assert caught.value.status.name == "INVALID_USER_OR_PASS"


@pytest.mark.parametrize(
    "body",
    ['{"ref_no":"1"}', '{"ref_no":"1","status":""}', '{"status":"D"}', '{"status":{"x":1}}'],
)
def test_bad_delivery_reports_are_protocol_errors(body: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_delivery_report(body)
    assert caught.value.action is Action.RETRY


def test_callback_fields_go_through_the_same_code() -> None:
    fields = {"ref_no": "9", "status": "U", "sent_date": "2025-01-01 00:00:00", "err_code": "34"}
    report = report_from_fields(fields)
    assert (report.ref_no, report.state, report.final, report.err_code) == (
        "9",
        DeliveryState.UNDELIVERED,
        True,
        "34",
    )
    with pytest.raises(ProtocolError):
        report_from_fields({"ref_no": "9"})


# --- malformed bodies, for every parser -----------------------------------------------

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1></body></html>"
)
XHTML_PAGE = "<html><head><title>Maintenance</title></head><body><p>Back soon</p></body></html>"
MALFORMED = {
    "empty": "",
    "whitespace": " \r\n\t ",
    "html": HTML_PAGE,
    "xhtml": XHTML_PAGE,
    "truncated-json": DOC_JSON[:40],
    "truncated-json-at-brace": DOC_JSON[:-2],
    "truncated-xml": DOC_XML[:-20],
    "truncated-xml-at-tag": DOC_XML[: DOC_XML.index("<destination>")],
    "plain-text": "OK",
    "json-number": "0",
    "json-string": '"0"',
    "json-null": "null",
    "json-list-of-numbers": "[0, 1]",
    "json-empty-object": "{}",
    "json-empty-results": '{"results":[]}',
    "status-not-a-number": '{"results":[{"status":"OK"}]}',
    "status-bool": '{"status": true}',
    "status-float": '{"status": 0.0}',
    "status-object": '{"status": {"code": 0}}',
    "messageid-list": '{"status": "0", "messageid": ["1"]}',
    "xml-entity": '<!DOCTYPE r [<!ENTITY a "b">]><r><status>&a;</status></r>',
    "huge": "{" + " " * MAX_REPLY_CHARS + "}",
    "deep-json": "[" * 100_000,
}

PARSERS: dict[str, tuple[Callable[..., object], Action]] = {
    "send": (parse_send_reply, Action.UNKNOWN),
    "group": (parse_group_reply, Action.UNKNOWN),
    "credits": (parse_credits, Action.RETRY),
    "dr": (parse_delivery_report, Action.RETRY),
}

# A DR status is a letter, not a number; a group reply has no messageid to be wrong.
VALID_FOR = {("dr", "status-not-a-number"), ("group", "messageid-list")}


@pytest.mark.parametrize("parser_name", list(PARSERS))
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_bodies_are_protocol_errors(parser_name: str, case: str) -> None:
    parser, action = PARSERS[parser_name]
    if (parser_name, case) in VALID_FOR:
        parser(MALFORMED[case], ref_no="1") if parser_name == "dr" else parser(MALFORMED[case])
        return
    with pytest.raises(ProtocolError) as caught:
        parser(MALFORMED[case])
    assert caught.value.action is action
    assert caught.value.operation
    assert len(caught.value.excerpt) <= 200


def test_protocol_error_excerpt_never_shows_the_password() -> None:
    page = f"<html><body>Error for user=demo&password={PASSWORD}: " + "x" * 400 + "</body>"
    for parser, _ in PARSERS.values():
        with pytest.raises(ProtocolError) as caught:
            parser(page, secrets=(PASSWORD,))
        assert PASSWORD not in str(caught.value)
        assert PASSWORD not in repr(caught.value)
        assert "Error for user=demo" in caught.value.excerpt


# --- arbitrary input ------------------------------------------------------------------

KEYS = st.sampled_from(
    ["status", "messageid", "destination", "results", "value", "expiredDate", "ref_no",
     "err_code", "sent_date", "group", "campaign_name", "Status", "RESULTS"]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)
XML_BODIES = st.recursive(
    st.text(alphabet="-0123456789DUxz <>&/", max_size=12),
    lambda inner: st.builds(
        lambda tag, kids: f"<{tag}>{''.join(kids)}</{tag}>",
        KEYS,
        st.lists(inner, max_size=4),
    ),
    max_leaves=15,
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    JSON_VALUES.map(json.dumps),
    XML_BODIES,
    st.builds(lambda s, n: s[:n], JSON_VALUES.map(json.dumps), st.integers(0, 60)),
)


@settings(max_examples=400, deadline=None)
@given(body=BODIES)
def test_send_parsers_only_ever_raise_protocol_error(body: str | bytes) -> None:
    for parser in (parse_send_reply, parse_group_reply):
        with contextlib.suppress(ProtocolError):
            parser(body)


@settings(max_examples=400, deadline=None)
@given(body=BODIES)
def test_query_parsers_only_ever_raise_their_errors(body: str | bytes) -> None:
    for parser in (parse_credits, parse_delivery_report):
        try:
            parser(body)
        except (ProtocolError, ProviderRejected) as exc:
            assert isinstance(exc, NusaSMSError)
