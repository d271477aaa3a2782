"""Per-product credit pools, the sender allow-list and the OTP route, through the wire."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from sandbox.control import SandboxControl

SMS = "/api/v3/sendsms/plain"
WA = "/api/v3/sendwa/plain"
GROUP = "/api/v3/sendsms/group"
COMMAND = "/api/command"
GSM = "6281234567890"
AUTH = {"user": "demo", "password": "demo"}
REFUSED_22 = {"results": [{"status": "-22", "messageid": "", "destination": ""}]}


def call(http: httpx.Client, path: str, **params: str) -> Any:
    """One provider call with output=json as a form POST; the parsed JSON body."""
    response = http.post(path, data={**params, "output": "json"})
    assert response.status_code == 200
    return response.json()


def status(http: httpx.Client, path: str, **params: str) -> str:
    """The status of one send."""
    return str(call(http, path, **params)["results"][0]["status"])


def sms(http: httpx.Client, text: str = "Halo dari kirim", **extra: str) -> str:
    """Send one SMS; its status."""
    return status(http, SMS, **AUTH, GSM=GSM, SMSText=text, **extra)


def otp(http: httpx.Client, text: str = "Kode OTP anda 123456") -> str:
    """Send one SMS with otp=Y; its status."""
    return sms(http, text, otp="Y")


def wa(http: httpx.Client, text: str = "Halo WA") -> str:
    """Send one WhatsApp message; its status."""
    return status(http, WA, username="demo", password="demo", GSM=GSM, text=text)


def group(http: httpx.Client, **extra: str) -> str:
    """Send to the default Example group (two members); its status."""
    return status(http, GROUP, **AUTH, group="Example", SMSText="Halo grup", **extra)


def credits_json(http: httpx.Client, **extra: str) -> Any:
    """cmd=CREDITS with output=json."""
    return call(http, COMMAND, **{**AUTH, "cmd": "CREDITS", **extra})


def credits_xml(http: httpx.Client, **extra: str) -> ET.Element:
    """cmd=CREDITS in the default XML; the result element."""
    response = http.get(COMMAND, params={**AUTH, "cmd": "CREDITS", **extra})
    result = ET.fromstring(response.content).find("result")
    assert result is not None
    return result


def test_empty_wa_pool_refuses_only_wa(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    assert sandbox.set_credits(0, product="wa") == {
        "product": "wa", "value": 0, "expired_date": "2099-12-31"}
    assert wa(sandbox_http) == "-2"
    assert (sms(sandbox_http), otp(sandbox_http), group(sandbox_http)) == ("0", "0", "0")
    stats = sandbox.stats()
    assert (stats["credits"], stats["wa_credits"]) == (1_000_000 - 4, 0)
    assert stats["by_status"] == {"-2": 1, "0": 3}
    sandbox.set_credits(1, product="wa")
    assert wa(sandbox_http) == "0"
    assert wa(sandbox_http, "again") == "-2"


def test_empty_sms_pool_refuses_sms_otp_and_group(sandbox: SandboxControl,
                                                  sandbox_http: httpx.Client) -> None:
    sandbox.set_credits(0)
    assert (sms(sandbox_http), otp(sandbox_http), group(sandbox_http)) == ("-2", "-2", "-2")
    assert wa(sandbox_http) == "0"
    assert [m["channel"] for m in sandbox.messages()] == ["wa"]


def test_each_product_charges_its_own_pool(sandbox: SandboxControl,
                                           sandbox_http: httpx.Client) -> None:
    sms(sandbox_http, "x" * 161)  # 2 parts
    otp(sandbox_http)
    group(sandbox_http)  # 1 part x 2 members
    wa(sandbox_http, "w" * 900)  # one message, whatever its length
    stats = sandbox.stats()
    assert (stats["credits"], stats["wa_credits"]) == (1_000_000 - 5, 1_000_000 - 1)


def test_expired_wa_pool_answers_7_for_wa_only(sandbox: SandboxControl,
                                               sandbox_http: httpx.Client) -> None:
    sandbox.set_credits(100, "2020-01-01", product="wa")
    assert wa(sandbox_http) == "-7"
    assert (sms(sandbox_http), otp(sandbox_http), group(sandbox_http)) == ("0", "0", "0")
    stats = sandbox.stats()
    assert (stats["expired_date"], stats["wa_expired_date"]) == ("2099-12-31", "2020-01-01")
    sandbox.set_credits(0, "2020-01-01", product="wa")
    assert wa(sandbox_http, "expiry comes before the balance") == "-7"


def test_credits_command_answers_each_pool(sandbox: SandboxControl,
                                           sandbox_http: httpx.Client) -> None:
    sandbox.set_credits(1234, "2031-05-06")
    sandbox.set_credits(56, "2030-02-03", product="wa")
    sms_pool = {"value": 1234, "expiredDate": "2031-05-06"}
    wa_pool = {"value": 56, "expiredDate": "2030-02-03"}
    assert credits_json(sandbox_http, type="sms") == sms_pool
    assert credits_json(sandbox_http, type="wa") == wa_pool
    assert credits_json(sandbox_http, type="WA") == wa_pool
    assert credits_json(sandbox_http) == sms_pool  # no type: sms
    assert credits_json(sandbox_http, type="") == sms_pool
    for kind, pool in (("sms", sms_pool), ("wa", wa_pool)):
        result = credits_xml(sandbox_http, type=kind)
        assert result.findtext("value") == str(pool["value"])
        assert result.findtext("expiredDate") == pool["expiredDate"]
    sandbox.configure(credits_as_string=True)
    assert credits_json(sandbox_http, type="wa") == {"value": "56", "expiredDate": "2030-02-03"}


def test_credits_command_unknown_type(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    assert credits_json(sandbox_http, type="mms") == REFUSED_22
    result = credits_xml(sandbox_http, type="voice")
    assert [result.findtext(k) for k in ("status", "messageid", "destination")] == [
        "-22", "", ""]
    assert credits_json(sandbox_http, type="mms", password="x")["results"][0]["status"] == "-5"


def test_set_credits_body(sandbox: SandboxControl) -> None:
    sandbox.set_credits(10, "2030-01-01", product="wa")
    reply = sandbox.http.post("/credits", json={"product": "wa", "value": 11}).json()
    assert reply == {"product": "wa", "value": 11, "expired_date": "2030-01-01"}
    reply = sandbox.http.post("/credits", json={"value": 5}).json()  # today's body: sms
    assert reply == {"product": "sms", "value": 5, "expired_date": "2099-12-31"}
    with pytest.raises(ValueError, match="product"):
        sandbox.set_credits(1, product="mms")
    with pytest.raises(ValueError, match="credits"):
        sandbox.set_credits(1, "not a date", product="wa")
    stats = sandbox.stats()
    assert (stats["credits"], stats["wa_credits"], stats["wa_expired_date"]) == (
        5, 11, "2030-01-01")


def test_sender_allow_list(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    assert sms(sandbox_http, sender="TOKO") == "0"  # default: any well-formed sender
    assert sandbox.configure(allowed_senders=["KIRIM"])["allowed_senders"] == ["KIRIM"]
    assert sms(sandbox_http, sender="KIRIM") == "0"
    assert call(sandbox_http, SMS, **AUTH, GSM=GSM, SMSText="x", sender="TOKO") == {
        "results": [{"status": "-34", "messageid": "", "destination": GSM}]}
    assert sms(sandbox_http, sender="kirim") == "-34"  # exact names
    assert sms(sandbox_http, sender="MuchTooLongSender") == "-34"
    assert sms(sandbox_http) == "0"  # no sender: the account's default
    assert (group(sandbox_http, sender="TOKO"), group(sandbox_http, sender="KIRIM")) == ("-34", "0")
    assert otp(sandbox_http) == "0"
    assert wa(sandbox_http) == "0"  # WhatsApp v3 has no sender
    assert [m["sender"] for m in sandbox.messages(channel="sms")] == [
        "TOKO", "KIRIM", None, "KIRIM", "KIRIM", None]
    sandbox.configure(allowed_senders="KIRIM,TOKO")
    assert sms(sandbox_http, "comma list", sender="TOKO") == "0"
    sandbox.configure(allowed_senders=[])
    assert sms(sandbox_http, "empty list", sender="ANYONE") == "0"
    with pytest.raises(ValueError, match="allowed_senders"):
        sandbox.configure(allowed_senders=[1])


def test_no_otp_route(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    assert sandbox.configure(otp_route=False)["otp_route"] is False
    assert otp(sandbox_http) == "-10"
    assert otp(sandbox_http, "Pesanan anda sudah dikirim") == "-10"  # whatever the text
    assert group(sandbox_http, otp="Y") == "-10"
    assert sms(sandbox_http) == "0"
    assert wa(sandbox_http, "Kode OTP 123456") == "0"
    assert sms(sandbox_http, "Kode OTP anda 123456") == "-10"  # the marker check still applies
    assert otp(sandbox_http, "") == "-12"  # a missing text answers first
    assert [m["otp"] for m in sandbox.messages()] == [False, False]
    sandbox.configure(otp_route=True)
    assert otp(sandbox_http) == "0"


def test_magic_33_is_reachable(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    gsm = "6281190033000"
    assert call(sandbox_http, SMS, **AUTH, GSM=gsm, SMSText="x") == {
        "results": [{"status": "-33", "messageid": "", "destination": gsm}]}
    assert status(sandbox_http, WA, username="demo", password="demo", GSM=gsm, text="x") == "-33"
    assert sandbox.messages() == []
