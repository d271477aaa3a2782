"""The sandbox's pure parts: part counting, number and OTP rules, magic numbers, knobs, parsing."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from datetime import date
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox import magic, replies, segments
from sandbox.app import parse_form
from sandbox.config import COERCERS, Config, KnobError, coerce
from sandbox.http import BadRequest, parse_head, take_chunked
from sandbox.rules import (
    Check,
    Send,
    accept,
    check,
    check_group,
    gsm_status,
    looks_like_otp,
    sender_allowed,
    sender_ok,
)
from sandbox.state import Account, Pool, State, Windows

NOW_S = 1_750_000_000.0  # 2025-06-15 in Jakarta
GSM = "6281234567890"


@pytest.mark.parametrize(("text", "unicode", "encoding", "parts"), [
    ("", False, "gsm7", 0),
    ("a" * 160, False, "gsm7", 1),
    ("a" * 161, False, "gsm7", 2),
    ("a" * 306, False, "gsm7", 2),
    ("a" * 307, False, "gsm7", 3),
    ("€" * 80, False, "gsm7", 1),
    ("€" * 81, False, "gsm7", 2),
    ("a" * 152 + "[" + "a" * 8, False, "gsm7", 2),  # 162 septets
    ("\n" * 80, False, "gsm7", 1),
    ("\n" * 81, False, "gsm7", 2),
    ("\f" * 81, False, "gsm7", 2),
    ("a" * 70, True, "ucs2", 1),
    ("é" * 71, True, "ucs2", 2),
    ("ş" * 70, False, "ucs2", 1),
    ("ş" * 71, False, "ucs2", 2),
    ("ş" * 134, False, "ucs2", 2),
    ("ş" * 135, False, "ucs2", 3),
    ("😀" * 35, False, "ucs2", 1),
    ("😀" * 36, False, "ucs2", 2),
])
def test_part_counts(text: str, unicode: bool, encoding: str, parts: int) -> None:
    found = segments.count(text, unicode=unicode)
    assert (found.encoding, found.parts) == (encoding, parts)


def test_newline_can_count_once() -> None:
    assert segments.count("\n" * 160, newline_counts_double=False).parts == 1
    assert segments.count("\n" * 160).parts == 3


def test_an_escape_is_never_split() -> None:
    # 152 plain + '{' would straddle the 153-septet boundary: it moves to part two.
    assert segments.count("a" * 152 + "{" + "a" * 152).parts == 3
    assert segments.count("a" * 151 + "{" + "a" * 153).parts == 2


@given(st.text(alphabet="abc{€\n é😀", max_size=600))
def test_parts_bound_the_units(text: str) -> None:
    found = segments.count(text)
    single, per_part = ((segments.GSM7_SINGLE, segments.GSM7_PART) if found.encoding == "gsm7"
                        else (segments.UCS2_SINGLE, segments.UCS2_PART))
    if found.units <= single:
        assert found.parts == (1 if text else 0)
    else:
        assert -(-found.units // per_part) <= found.parts <= found.units // (per_part - 1) + 1


@pytest.mark.parametrize(("gsm", "status"), [
    ("6281234567890", 0), ("628123456789", 0), ("62812345678", 0), ("62812345678901", 0),
    ("6591234567", 0), ("14155552671", 0), ("", -6), ("081234567890", -13),
    ("+6281234567890", -13), ("6221234567890", -13), ("62812345", -13),
    ("628123456789012", -13), ("62 81234567890", -13), ("٦٢٨١٢٣٤٥٦٧٨٩٠", -13),
    ("1234567", -13), ("9991234567890", -13),
])
def test_gsm_rules(gsm: str, status: int) -> None:
    assert gsm_status(gsm) == status


@pytest.mark.parametrize(("text", "otp"), [
    ("Kode OTP anda 123456", True), ("123456 adalah kode verifikasi Anda", True),
    ("Your verification code is 8812", True), ("CODE: 12345678", True),
    ("Pesanan 12345 sudah dikirim", False), ("Kode promo HEMAT50", False),
    ("Your code is 123", False), ("Order 123456789 code", False),
])
def test_otp_markers(text: str, otp: bool) -> None:
    assert looks_like_otp(text) is otp


@pytest.mark.parametrize(("sender", "ok"), [
    (None, True), ("", True), ("KIRIM", True), ("Toko Budi", True), ("ElevenChars", True),
    ("TwelveCharss", False), ("62812345678901", True), ("628123456789012", False),
])
def test_sender_rules(sender: str | None, ok: bool) -> None:
    assert sender_ok(sender) is ok


@pytest.mark.parametrize(("gsm", "expected"), [
    ("6281234567890", magic.NONE),
    ("6281190077000", magic.Magic(status=-77)),
    ("6281190000000", magic.NONE),
    ("6281191300000", magic.Magic(dr_letter="F")),
    ("6281191600000", magic.Magic(dr_letter="P")),
    ("6281191800000", magic.NONE),
    ("6281192150000", magic.Magic(latency_s=1.5)),
    ("6281193000000", magic.Magic(drop=True)),
    ("6281194000000", magic.Magic(hang=True)),
    ("6281195300000", magic.Magic(transient=3)),
    ("6281190033000", magic.Magic(status=-33)),
    ("6281190034000", magic.Magic(status=-34)),
    ("62811950300000", magic.NONE),
])
def test_magic_numbers(gsm: str, expected: magic.Magic) -> None:
    assert magic.parse(gsm) == expected
    assert gsm_status(gsm) == 0


def test_every_knob_has_a_coercer() -> None:
    assert {f.name for f in dataclasses.fields(Config)} == set(COERCERS)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("rate_5xx", "0.5", 0.5), ("down", "true", True), ("down", False, False),
    ("dr_callback_url", "", None), ("seed", None, None), ("dr_default_letter", "u", "U"),
    ("groups", '{"A": ["1"]}', {"A": ["1"]}), ("same_text_limit", 3.0, 3),
    ("otp_route", "false", False), ("allowed_senders", [], []),
    ("allowed_senders", "KIRIM, Toko Budi,", ["KIRIM", "Toko Budi"]),
    ("allowed_senders", '["KIRIM"]', ["KIRIM"]), ("allowed_senders", "", []),
])
def test_knob_coercion(name: str, value: object, expected: object) -> None:
    assert coerce(name, value) == expected


@pytest.mark.parametrize(("name", "value"), [
    ("nope", 1), ("rate_5xx", 1.5), ("rate_5xx", True), ("latency_ms", -1),
    ("same_text_limit", 2.5), ("dr_callback_url", "ftp://x"), ("groups", {"A": "1"}),
    ("down", "maybe"), ("dr_default_letter", "DD"), ("otp_route", "maybe"),
    ("allowed_senders", "[1]"), ("allowed_senders", [""]),
    ("allowed_senders", {"KIRIM": 1}), ("allowed_senders", "[not json"),
])
def test_bad_knobs(name: str, value: object) -> None:
    with pytest.raises(KnobError, match=name):
        coerce(name, value)


def test_config_update_is_all_or_nothing() -> None:
    config = Config()
    with pytest.raises(KnobError):
        config.update({"latency_ms": 5, "rate_429": 9})
    assert config.latency_ms == 0
    copy = config.copy()
    copy.groups["Example"].append("x")
    assert config.groups["Example"] == ["6281234567890", "6281234567891"]


def test_windows_roll() -> None:
    windows = Windows(window_s=100)
    for t in (0, 10, 20):
        windows.record("sms", "62", "hi", t)
    assert windows.same_text("sms", "62", "hi", 50) == 3
    assert windows.per_number("sms", "62", 105) == 2
    assert windows.per_number("sms", "62", 110) == 1  # exactly window_s old: gone
    assert windows.same_text("wa", "62", "hi", 50) == 0


def test_reply_shapes() -> None:
    assert replies.send_result(-13, "", "0812", as_json=True) == (
        b'{"results":[{"status":"-13","messageid":"","destination":"0812"}]}')
    xml = replies.send_result(0, "1" * 18, "62<&>", as_json=False)
    assert ET.fromstring(xml).findtext("result/destination") == "62<&>"
    assert json.loads(replies.flat({"value": 5}, as_json=True)) == {"value": 5}
    assert replies.wants_json("JSON") and not replies.wants_json(None)


def test_parse_head() -> None:
    request = parse_head(b"post /a?b=1 HTTP/1.0\r\nConnection: keep-alive\r\nX-Y:  z ")
    assert (request.method, request.path, request.query) == ("POST", "/a", "b=1")
    assert request.headers == {"connection": "keep-alive", "x-y": "z"}
    assert request.keep_alive
    assert not parse_head(b"GET / HTTP/1.0").keep_alive
    assert not parse_head(b"GET / HTTP/1.1\r\nConnection: close").keep_alive
    with pytest.raises(BadRequest):
        parse_head(b"GARBAGE")


def test_take_chunked() -> None:
    buf = bytearray(b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\nNEXT")
    assert take_chunked(buf) == b"abcde"
    assert buf == b"NEXT"
    partial = bytearray(b"3\r\nab")
    assert take_chunked(partial) is None
    assert partial == b"3\r\nab"
    with pytest.raises(BadRequest):
        take_chunked(bytearray(b"zz\r\n"))


@given(st.dictionaries(st.text(min_size=1), st.text(), max_size=5))
def test_parse_form_matches_the_standard_library(fields: dict[str, str]) -> None:
    encoded = urlencode(fields)
    assert parse_form(encoded) == dict(parse_qsl(encoded, keep_blank_values=True))


@pytest.mark.parametrize("raw", ["a=1&b=&c", "x=%E2%82%AC+y&x=2", "a=b=c&&d=%zz", ""])
def test_parse_form_odd_inputs(raw: str) -> None:
    assert parse_form(raw) == dict(parse_qsl(raw, keep_blank_values=True))


def a_check(send: Send, account: Account | None = None, found: magic.Magic = magic.NONE,
            **knobs: object) -> Check:
    """A Check of `send` on fresh state with these knobs, at NOW_S."""
    config = Config()
    config.update(knobs)
    seg = (segments.Segments("whatsapp", len(send.text), 1) if send.channel == "wa"
           else segments.count(send.text))
    return Check(State(account or Account()), config, send, found, seg, NOW_S)


SMS, OTP, WA = Send("sms", GSM, "Halo"), Send("sms", GSM, "Halo", otp=True), Send("wa", GSM, "Hi")


def test_default_knobs_allow_what_they_always_did() -> None:
    for send in (SMS, OTP, WA, dataclasses.replace(SMS, sender="ANY.NAME")):
        assert check(a_check(send)) == 0


@pytest.mark.parametrize(("sender", "allowed", "ok"), [
    (None, ["KIRIM"], True), ("", ["KIRIM"], True), ("KIRIM", [], True),
    ("KIRIM", ["KIRIM"], True), ("TOKO", ["KIRIM", "TOKO"], True),
    ("OTHER", ["KIRIM"], False), ("kirim", ["KIRIM"], False),
])
def test_sender_allow_list(sender: str | None, allowed: list[str], ok: bool) -> None:
    assert sender_allowed(sender, allowed) is ok
    send = dataclasses.replace(SMS, sender=sender)
    assert check(a_check(send, allowed_senders=allowed)) == (0 if ok else -34)


def test_sender_rule_comes_first() -> None:
    # -34 outranks a missing GSM, an empty text and the OTP route
    send = Send("sms", "", "", otp=True, sender="OTHER")
    assert check(a_check(send, allowed_senders=["KIRIM"], otp_route=False)) == -34
    assert check(a_check(dataclasses.replace(send, sender="KIRIM"),
                         allowed_senders=["KIRIM"])) == -6


def test_no_otp_route_rejects_every_otp_send() -> None:
    assert check(a_check(OTP, otp_route=False)) == -10
    assert check(a_check(dataclasses.replace(OTP, text="Kode OTP 123456"), otp_route=False)) == -10
    assert check(a_check(SMS, otp_route=False)) == 0
    assert check(a_check(WA, otp_route=False)) == 0
    assert check(a_check(dataclasses.replace(OTP, text=" "), otp_route=False)) == -12
    group = a_check(OTP, otp_route=False)
    assert check_group(group, 2) == -10


def test_each_product_draws_on_its_own_pool() -> None:
    empty_wa = Account(wa=Pool(credits=0))
    assert [check(a_check(s, empty_wa)) for s in (SMS, OTP, WA)] == [0, 0, -2]
    empty_sms = Account(sms=Pool(credits=0))
    assert [check(a_check(s, empty_sms)) for s in (SMS, OTP, WA)] == [-2, -2, 0]
    assert check_group(a_check(SMS, empty_sms), 2) == -2
    expired_wa = Account(wa=Pool(expired_date=date(2020, 1, 1)))
    assert [check(a_check(s, expired_wa)) for s in (SMS, OTP, WA)] == [0, 0, -7]
    expired_sms = Account(sms=Pool(0, date(2020, 1, 1)))
    assert check(a_check(SMS, expired_sms)) == -7  # expiry before the balance
    assert check_group(a_check(SMS, expired_sms), 2) == -7


def test_accept_charges_the_product_pool() -> None:
    wa, sms = a_check(WA), a_check(Send("sms", GSM, "x" * 161))
    sms.state = wa.state
    accept(wa, "1" * 18)
    accept(sms, "2" * 18)
    assert (wa.state.account.sms.credits, wa.state.account.wa.credits) == (
        1_000_000 - 2, 1_000_000 - 1)


def test_account_pools() -> None:
    account = Account(Pool(5, date(2030, 1, 2)), Pool(7))
    assert (account.pool("sms").credits, account.pool("wa").credits) == (5, 7)
    copy = account.copy()
    copy.sms.credits = 0
    assert account.sms.credits == 5
    with pytest.raises(ValueError, match="product"):
        account.pool("mms")
    assert Pool(expired_date=date(2025, 6, 14)).expired(NOW_S)
    assert not Pool(expired_date=date(2025, 6, 15)).expired(NOW_S)
