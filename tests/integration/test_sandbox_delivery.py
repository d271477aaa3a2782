"""Delivery reports (pull and push), inbound push and the CREDITS command, through the wire;
pushes land on the local `receiver` (tests/support/receiver.py)."""

from __future__ import annotations

import queue
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from sandbox.control import SandboxControl
from tests.support.receiver import Receiver
from tests.support.waiting import wait_for

SMS = "/api/v3/sendsms/plain"
COMMAND = "/api/command"
AUTH = {"user": "demo", "password": "demo"}
GSM = "6281234567890"


def send(http: httpx.Client, gsm: str = GSM, text: str = "halo") -> str:
    """Send an SMS; its messageid."""
    reply = http.post(SMS, data={**AUTH, "GSM": gsm, "SMSText": text, "output": "json"})
    result = reply.json()["results"][0]
    assert result["status"] == "0"
    return str(result["messageid"])


def command(http: httpx.Client, **params: str) -> dict[str, Any]:
    """A JSON /api/command call by GET."""
    result: dict[str, Any] = http.get(COMMAND, params={**AUTH, "output": "json", **params}).json()
    return result


def test_dr_pull_pending_then_final(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    messageid = send(sandbox_http)
    report = command(sandbox_http, cmd="DR", ref_no=messageid)
    assert report["ref_no"] == messageid
    assert (report["status"], report["err_code"]) == ("P", "0")
    assert report["sent_date"].endswith(".0") and len(report["sent_date"]) == 21
    sandbox.advance_clock(1.0)
    assert command(sandbox_http, cmd="DR", ref_no=messageid)["status"] == "D"


@pytest.mark.parametrize(("digit", "letter"), [
    ("1", "D"), ("2", "U"), ("3", "F"), ("4", "R"), ("5", "E"), ("6", "P"), ("7", "X"),
])
def test_magic_dr_letters(sandbox: SandboxControl, sandbox_http: httpx.Client, digit: str,
                          letter: str) -> None:
    messageid = send(sandbox_http, gsm=f"6281191{digit}00000")
    sandbox.advance_clock(10)
    report = command(sandbox_http, cmd="DR", ref_no=messageid)
    assert report["status"] == letter
    assert report["err_code"] == ("0" if letter in "DP" else "1")


def test_dr_default_letter_and_delay_knobs(sandbox: SandboxControl,
                                           sandbox_http: httpx.Client) -> None:
    sandbox.configure(dr_delay_s=0, dr_default_letter="u")
    assert command(sandbox_http, cmd="DR", ref_no=send(sandbox_http))["status"] == "U"


def test_dr_xml_and_errors(sandbox_http: httpx.Client) -> None:
    messageid = send(sandbox_http)
    xml = sandbox_http.post(COMMAND, data={**AUTH, "cmd": "DR", "ref_no": messageid})
    assert ET.fromstring(xml.content).findtext("result/ref_no") == messageid
    unknown = command(sandbox_http, cmd="DR", ref_no="999999999999999999")
    assert unknown == {"results": [{"status": "-22", "messageid": "", "destination": ""}]}
    bad_auth = sandbox_http.get(COMMAND, params={"user": "demo", "password": "x", "cmd": "DR",
                                                 "ref_no": messageid, "output": "json"}).json()
    assert bad_auth["results"][0]["status"] == "-5"
    assert command(sandbox_http, cmd="NOPE")["results"][0]["status"] == "-22"


def test_credits_command(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    assert command(sandbox_http, cmd="CREDITS", type="sms") == {"value": 1_000_000,
                                                       "expiredDate": "2099-12-31"}
    send(sandbox_http, text="x" * 300)  # 2 parts
    sandbox.set_credits(1234, expired_date="2031-05-06")
    sandbox.configure(credits_as_string=True)
    assert command(sandbox_http, cmd="CREDITS", type="sms") == {"value": "1234",
                                                       "expiredDate": "2031-05-06"}
    xml = sandbox_http.get(COMMAND, params={**AUTH, "cmd": "CREDITS", "type": "sms"})
    assert ET.fromstring(xml.content).findtext("result/value") == "1234"
    denied = command(sandbox_http, cmd="CREDITS", type="sms", password="wrong")
    assert denied == {"results": [{"status": "-5", "messageid": "", "destination": ""}]}
    assert sandbox.stats()["commands"] == {"CREDITS": 3}  # refused calls not counted


def test_credits_are_used_by_sends(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    send(sandbox_http, text="x" * 300)
    assert command(sandbox_http, cmd="CREDITS", type="sms")["value"] == 1_000_000 - 2


def test_dr_push_when_final(sandbox: SandboxControl, sandbox_http: httpx.Client,
                            receiver: Receiver) -> None:
    sandbox.configure(dr_callback_url=receiver.base + "/dr?token=s3cret", dr_delay_s=0.1)
    delivered = send(sandbox_http)
    failed = send(sandbox_http, gsm="6281191300000")
    send(sandbox_http, gsm="6281191600000")  # stays pending: never pushed
    pushed = {call["query"]["ref_no"]: call for call in (receiver.next(), receiver.next())}
    assert set(pushed) == {delivered, failed}
    call = pushed[delivered]
    assert (call["method"], call["path"]) == ("GET", "/dr")
    assert call["query"]["token"] == "s3cret"
    assert (call["query"]["status"], call["query"]["err_code"]) == ("D", "0")
    assert call["query"]["sent_date"].endswith(".0")
    assert pushed[failed]["query"]["status"] == "F"
    wait_for(lambda: sandbox.stats()["pushes"] == {"dr_ok": 2}, 5, "two pushes counted")
    with pytest.raises(queue.Empty):
        receiver.next(timeout_s=0.3)


def test_dr_push_follows_the_clock(sandbox: SandboxControl, sandbox_http: httpx.Client,
                                   receiver: Receiver) -> None:
    sandbox.configure(dr_callback_url=receiver.base, dr_delay_s=3600)
    messageid = send(sandbox_http)
    with pytest.raises(queue.Empty):
        receiver.next(timeout_s=0.2)
    sandbox.advance_clock(3600)
    assert receiver.next()["query"]["ref_no"] == messageid


def test_dr_push_failure_is_recorded(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(dr_callback_url="http://127.0.0.1:9/unreachable", dr_delay_s=0)
    send(sandbox_http)
    wait_for(lambda: bool(sandbox.pushes()), 5, "the failed push recorded")
    [push] = sandbox.pushes()
    assert push["status_code"] is None and push["error"]
    assert sandbox.stats()["pushes"] == {"dr_failed": 1}


def test_inbound_push(sandbox: SandboxControl, receiver: Receiver) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        sandbox.inbound("6281298765432", "halo")  # no inbox_url yet: 409
    sandbox.configure(inbox_url=receiver.base + "/inbox")
    result = sandbox.inbound("6281298765432", "Halo, saya mau pesan", gateway_number="62811999")
    assert result["status_code"] == 200
    call = receiver.next()
    assert (call["method"], call["path"]) == ("POST", "/inbox")
    form = call["form"]
    assert form["originator"] == "6281298765432"
    assert form["msg"] == "Halo, saya mau pesan"
    assert form["gateway_number"] == "62811999"
    assert form["id"] == result["id"]
    assert len(form["receive_date"]) == 19 and form["receive_date"][10] == " "
    second = sandbox.inbound("6281298765432", "lagi", receive_date="2024-01-02 03:04:05")
    assert receiver.next()["form"]["receive_date"] == "2024-01-02 03:04:05"
    assert second["id"] != result["id"]
