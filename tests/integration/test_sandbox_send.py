"""The sandbox's send rules, through the wire: every status it documents, both formats."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from sandbox.control import SandboxControl

SMS = "/api/v3/sendsms/plain"
WA = "/api/v3/sendwa/plain"
GROUP = "/api/v3/sendsms/group"
GSM = "6281234567890"
AUTH = {"user": "demo", "password": "demo"}


def call(http: httpx.Client, path: str, params: dict[str, Any],
         method: str = "POST") -> dict[str, Any]:
    """One provider call with output=json (form body for POST); the first result."""
    fields = {**params, "output": "json"}
    response = http.post(path, data=fields) if method == "POST" else http.get(path, params=fields)
    assert response.status_code == 200
    body = response.json()
    return body["results"][0] if "results" in body else body


def sms(http: httpx.Client, gsm: str = GSM, text: str = "Halo dari kirim",
        **extra: Any) -> dict[str, Any]:
    """Send one SMS; the reply's result."""
    return call(http, SMS, {**AUTH, "GSM": gsm, "SMSText": text, **extra})


def wa(http: httpx.Client, gsm: str = GSM, text: str = "Halo WA", **extra: Any
       ) -> dict[str, Any]:
    """Send one WhatsApp message with `username`; the reply's result."""
    return call(http, WA, {"username": "demo", "password": "demo", "GSM": gsm,
                           "text": text, **extra})


def test_accepted_reply_shape(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    result = sms(sandbox_http)
    assert result["status"] == "0"
    assert result["destination"] == GSM
    assert isinstance(result["messageid"], str) and len(result["messageid"]) == 18
    assert result["messageid"].isdigit()
    [message] = sandbox.messages()
    assert message["messageid"] == result["messageid"]
    assert (message["channel"], message["gsm"], message["parts"]) == ("sms", GSM, 1)


def test_message_ids_are_unique(sandbox_http: httpx.Client) -> None:
    ids = {sms(sandbox_http, text=f"pesan {i}")["messageid"] for i in range(30)}
    assert len(ids) == 30


@pytest.mark.parametrize(("params", "status"), [
    ({"user": "demo", "password": "wrong"}, "-5"),
    ({"user": "nobody", "password": "demo"}, "-5"),
    ({"password": "demo"}, "-5"),
    ({**AUTH, "SMSText": "hi"}, "-6"),
    ({**AUTH, "GSM": "", "SMSText": "hi"}, "-6"),
    ({**AUTH, "GSM": "081234567890", "SMSText": "hi"}, "-13"),
    ({**AUTH, "GSM": "+6281234567890", "SMSText": "hi"}, "-13"),
    ({**AUTH, "GSM": "62812345", "SMSText": "hi"}, "-13"),
    ({**AUTH, "GSM": "6221234567890", "SMSText": "hi"}, "-13"),
    ({**AUTH, "GSM": "62812-3456789", "SMSText": "hi"}, "-13"),
    ({**AUTH, "GSM": "628123456789012", "SMSText": "hi"}, "-13"),
    ({**AUTH, "GSM": GSM}, "-12"),
    ({**AUTH, "GSM": GSM, "SMSText": "   "}, "-12"),
    ({**AUTH, "GSM": GSM, "SMSText": "Kode OTP anda 123456"}, "-10"),
    ({**AUTH, "GSM": GSM, "SMSText": "Your verification code is 8812"}, "-10"),
    ({**AUTH, "GSM": GSM, "SMSText": "hi", "sender": "MuchTooLongSender"}, "-34"),
])
def test_refusals_echo_destination(sandbox: SandboxControl, sandbox_http: httpx.Client,
                                   params: dict[str, str], status: str) -> None:
    result = call(sandbox_http, SMS, params)
    assert result == {"status": status, "messageid": "", "destination": params.get("GSM", "")}
    assert sandbox.messages() == []
    assert sandbox.stats()["by_status"] == {status: 1}


def test_otp_route_and_knob(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    assert sms(sandbox_http, text="Kode OTP anda 123456", otp="Y")["status"] == "0"
    assert sms(sandbox_http, text="Order 12345 shipped")["status"] == "0"
    sandbox.configure(otp_marker_check=False)
    assert sms(sandbox_http, text="Your code: 4711")["status"] == "0"
    assert [m["otp"] for m in sandbox.messages()] == [True, False, False]


def test_foreign_number_is_accepted(sandbox_http: httpx.Client) -> None:
    assert sms(sandbox_http, gsm="6591234567")["status"] == "0"  # Singapore mobile


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_xml_is_the_default(sandbox_http: httpx.Client, method: str) -> None:
    fields = {**AUTH, "GSM": GSM, "SMSText": "hello xml"}
    response = (sandbox_http.get(SMS, params=fields) if method == "GET"
                else sandbox_http.post(SMS, data=fields))
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?><results><result>')
    result = ET.fromstring(response.content).find("result")
    assert result is not None
    assert result.findtext("status") == "0"
    assert result.findtext("destination") == GSM
    assert len(result.findtext("messageid") or "") == 18


def test_xml_error(sandbox_http: httpx.Client) -> None:
    response = sandbox_http.get(SMS, params={**AUTH, "GSM": "0812", "SMSText": "x"})
    result = ET.fromstring(response.content).find("result")
    assert result is not None
    assert [result.findtext(k) for k in ("status", "messageid", "destination")] == [
        "-13", "", "0812"]


def test_json_reply_is_compact_with_string_fields(sandbox_http: httpx.Client) -> None:
    response = sandbox_http.get(SMS,
                                params={**AUTH, "GSM": GSM, "SMSText": "x", "output": "JSON"})
    assert response.text.startswith('{"results":[{"status":"0","messageid":"')


def test_query_and_form_and_json_bodies(sandbox: SandboxControl,
                                        sandbox_http: httpx.Client) -> None:
    by_query = sandbox_http.post(SMS, params={**AUTH, "GSM": GSM, "SMSText": "q", "output": "json"})
    mixed = sandbox_http.post(SMS + "?output=json", data={**AUTH, "GSM": GSM, "SMSText": "f"})
    as_json = sandbox_http.post(SMS, json={**AUTH, "GSM": GSM, "SMSText": "j", "output": "json"})
    for response in (by_query, mixed, as_json):
        assert response.json()["results"][0]["status"] == "0"
    assert [m["text"] for m in sandbox.messages()] == ["q", "f", "j"]


def test_unicode_and_parts(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sms(sandbox_http, text="a" * 161)
    sms(sandbox_http, text="Terima kasih 🙏", unicode="True")
    sms(sandbox_http, text="Selamat pagi 😀")  # UCS-2 even without the flag
    sms(sandbox_http, text="{" * 81)  # extension characters count 2: 162 septets
    parts = [(m["encoding"], m["parts"]) for m in sandbox.messages()]
    assert parts == [("gsm7", 2), ("ucs2", 1), ("ucs2", 1), ("gsm7", 2)]
    assert sandbox.stats()["credits"] == 1_000_000 - 6


def test_older_encoding_param_and_sender(sandbox: SandboxControl,
                                         sandbox_http: httpx.Client) -> None:
    assert sms(sandbox_http, text="plain", encoding="U", sender="KIRIM")["status"] == "0"
    [message] = sandbox.messages()
    assert (message["unicode"], message["encoding"], message["sender"]) == (True, "ucs2", "KIRIM")


def test_messages_filters_and_wait_for(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sms(sandbox_http)
    sms(sandbox_http, gsm="6281234567891")
    wa(sandbox_http)
    assert len(sandbox.messages(gsm=GSM)) == 2
    assert [m["channel"] for m in sandbox.messages(gsm=GSM, channel="wa")] == ["wa"]
    assert len(sandbox.messages(limit=1)) == 1
    assert len(sandbox.wait_for(3, timeout_s=1)) == 3
    with pytest.raises(AssertionError, match="3 of 4"):
        sandbox.wait_for(4, timeout_s=0.1)


def test_bad_json_body_is_a_syntax_error(sandbox: SandboxControl,
                                         sandbox_http: httpx.Client) -> None:
    reply = sandbox_http.post(SMS + "?output=json", content=b"{not json",
                              headers={"Content-Type": "application/json"})
    assert reply.json() == {"results": [{"status": "-22", "messageid": "", "destination": ""}]}
    assert sandbox.requests()[0]["fault"] == "bad_body"


def test_whatsapp_user_or_username(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    assert wa(sandbox_http)["status"] == "0"
    by_user = call(sandbox_http, WA, {"user": "demo", "password": "demo", "GSM": GSM, "text": "x"})
    assert by_user["status"] == "0"
    assert wa(sandbox_http, password="nope")["status"] == "-5"
    assert wa(sandbox_http, text="")["status"] == "-12"
    assert wa(sandbox_http, text="w" * 1000)["status"] == "0"
    assert wa(sandbox_http, text="w" * 1001)["status"] == "-22"
    assert wa(sandbox_http, text="Kode OTP 123456")["status"] == "0"  # no OTP route on WA
    assert {m["channel"] for m in sandbox.messages()} == {"wa"}
    stats = sandbox.stats()
    assert (stats["credits"], stats["wa_credits"]) == (1_000_000, 1_000_000 - 4)


def test_same_text_limit_and_rolling_window(sandbox: SandboxControl,
                                            sandbox_http: httpx.Client) -> None:
    for _ in range(10):
        assert sms(sandbox_http, text="promo")["status"] == "0"
    assert sms(sandbox_http, text="promo")["status"] == "-77"
    assert sms(sandbox_http, text="another")["status"] == "0"
    assert wa(sandbox_http, text="promo")["status"] == "0"  # WhatsApp counts apart
    sandbox.advance_clock(23 * 3600)
    assert sms(sandbox_http, text="promo")["status"] == "-77"
    sandbox.advance_clock(3600 + 1)
    assert sms(sandbox_http, text="promo")["status"] == "0"
    assert sandbox.counts()[(GSM, "promo")] == 12
    assert sandbox.counts(channel="sms")[(GSM, "promo")] == 11
    stats = sandbox.stats()
    assert (stats["duplicates"], stats["duplicate_sends"]) == (1, 10)


def test_per_number_limit(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(per_number_limit=3, same_text_limit=2)
    assert [sms(sandbox_http, text=f"t{i}")["status"] for i in range(4)] == ["0", "0", "0", "-78"]
    assert sms(sandbox_http, gsm="6281234567891", text="t0")["status"] == "0"
    sandbox.advance_clock(86_400)
    assert sms(sandbox_http, text="t9")["status"] == "0"


def test_refused_sends_do_not_count(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(per_number_limit=2)
    sms(sandbox_http, text="")
    sms(sandbox_http, password="x")
    assert [sms(sandbox_http, text=f"t{i}")["status"] for i in range(3)] == ["0", "0", "-78"]


def test_credits_run_out(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.set_credits(3)
    assert sms(sandbox_http, text="x" * 200)["status"] == "0"  # 2 parts
    assert sms(sandbox_http, text="y" * 200)["status"] == "-2"  # needs 2, has 1
    assert wa(sandbox_http)["status"] == "0"  # the WhatsApp pool is apart
    assert sms(sandbox_http, text="z")["status"] == "0"
    assert sms(sandbox_http, text="z2")["status"] == "-2"
    sandbox.set_credits(10)
    assert sms(sandbox_http, text="z2")["status"] == "0"
    assert sandbox.stats()["credits"] == 9


def test_expired_balance(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.set_credits(100, expired_date="2020-01-01")
    assert sms(sandbox_http)["status"] == "-7"
    assert wa(sandbox_http)["status"] == "0"  # the WhatsApp pool has its own expiry
    sandbox.set_credits(100, expired_date="2099-12-31")
    assert sms(sandbox_http)["status"] == "0"


def test_expiry_follows_the_sandbox_clock(sandbox: SandboxControl,
                                          sandbox_http: httpx.Client) -> None:
    import datetime as dt

    tomorrow = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).date() + dt.timedelta(1)
    sandbox.set_credits(100, expired_date=tomorrow)
    assert sms(sandbox_http)["status"] == "0"
    sandbox.advance_clock(3 * 86_400)
    assert sms(sandbox_http, text="later")["status"] == "-7"


@pytest.mark.parametrize(("gsm", "status"), [
    ("6281190077000", "-77"), ("6281190002000", "-2"), ("6281190026000", "-26"),
    ("6281190078000", "-78"), ("6281190099000", "-99"), ("6281190000000", "0"),
])
def test_magic_fixed_status(sandbox_http: httpx.Client, gsm: str, status: str) -> None:
    result = sms(sandbox_http, gsm=gsm)
    assert (result["status"], result["destination"]) == (status, gsm)
    assert wa(sandbox_http, gsm=gsm)["status"] == status


def test_magic_numbers_still_check_credentials(sandbox_http: httpx.Client) -> None:
    assert sms(sandbox_http, gsm="6281190077000", password="bad")["status"] == "-5"


def test_magic_transient_then_accepted(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    gsm = "6281195200000"
    assert [sms(sandbox_http, gsm=gsm)["status"] for _ in range(3)] == ["-26", "-26", "0"]
    assert sms(sandbox_http, gsm=gsm, text="other text")["status"] == "-26"  # per (gsm, text)
    assert len(sandbox.messages()) == 1


def test_magic_latency(sandbox_http: httpx.Client) -> None:
    response = sandbox_http.post(SMS, data={**AUTH, "GSM": "6281192030000", "SMSText": "slow"})
    assert response.elapsed.total_seconds() >= 0.3
    assert "<status>0</status>" in response.text


def test_group_send(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    result = call(sandbox_http, GROUP, {**AUTH, "group": "Example", "SMSText": "Halo grup"})
    assert result["status"] == "0"
    assert result["group"] == "Example"
    assert result["campaign_name"].startswith("Group-Api-Campaign-")
    assert sorted(m["gsm"] for m in sandbox.messages()) == ["6281234567890", "6281234567891"]
    assert {m["group"] for m in sandbox.messages()} == {"Example"}
    assert sandbox.stats()["credits"] == 1_000_000 - 2


def test_group_errors(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    missing = call(sandbox_http, GROUP, {**AUTH, "group": "Nope", "SMSText": "x"})
    assert missing == {"status": "-55", "campaign_name": "", "group": "Nope"}
    sandbox.configure(groups={"Empty": [], "Two": [GSM, "6281234567891"]})
    for group in ("Empty", "Example"):
        empty = call(sandbox_http, GROUP, {**AUTH, "group": group, "SMSText": "x"})
        assert empty["status"] == "-55"
    bad = call(sandbox_http, GROUP,
               {"user": "demo", "password": "x", "group": "Two", "SMSText": "x"})
    assert bad["status"] == "-5"
    sandbox.set_credits(1)
    assert call(sandbox_http, GROUP, {**AUTH, "group": "Two", "SMSText": "x"})["status"] == "-2"
    response = sandbox_http.get(GROUP, params={**AUTH, "group": "Two", "SMSText": ""})
    assert ET.fromstring(response.content).findtext("result/status") == "-12"
