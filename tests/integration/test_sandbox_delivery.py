"""Delivery reports (pull and push), inbound push and the CREDITS command, through the wire."""

from __future__ import annotations

import queue
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox.control import SandboxControl

SMS = "/api/v3/sendsms/plain"
COMMAND = "/api/command"
AUTH = {"user": "demo", "password": "demo"}
GSM = "6281234567890"


@pytest.fixture
def api(sandbox: SandboxControl) -> Iterator[httpx.Client]:
    """An HTTP client on the (freshly reset) sandbox."""
    with httpx.Client(base_url=sandbox.url, timeout=5) as client:
        yield client


class Receiver:
    """A local HTTP server that records every callback it gets."""

    def __init__(self) -> None:
        self.calls: queue.Queue[dict[str, Any]] = queue.Queue()
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                url = urlsplit(self.path)
                calls.put({"method": self.command, "path": url.path,
                           "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                           "form": {k: v[0] for k, v in parse_qs(body).items()}})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def next(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """The next callback received."""
        return self.calls.get(timeout=timeout_s)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll condition until it holds or the time is up; its last value."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def send(api: httpx.Client, gsm: str = GSM, text: str = "halo") -> str:
    """Send an SMS; its messageid."""
    reply = api.post(SMS, data={**AUTH, "GSM": gsm, "SMSText": text, "output": "json"})
    result = reply.json()["results"][0]
    assert result["status"] == "0"
    return str(result["messageid"])


def command(api: httpx.Client, **params: str) -> dict[str, Any]:
    """A JSON /api/command call by GET."""
    result: dict[str, Any] = api.get(COMMAND, params={**AUTH, "output": "json", **params}).json()
    return result


def test_dr_pull_pending_then_final(sandbox: SandboxControl, api: httpx.Client) -> None:
    messageid = send(api)
    report = command(api, cmd="DR", ref_no=messageid)
    assert report["ref_no"] == messageid
    assert (report["status"], report["err_code"]) == ("P", "0")
    assert report["sent_date"].endswith(".0") and len(report["sent_date"]) == 21
    sandbox.advance_clock(1.0)
    assert command(api, cmd="DR", ref_no=messageid)["status"] == "D"


@pytest.mark.parametrize(("digit", "letter"), [
    ("1", "D"), ("2", "U"), ("3", "F"), ("4", "R"), ("5", "E"), ("6", "P"), ("7", "X"),
])
def test_magic_dr_letters(sandbox: SandboxControl, api: httpx.Client, digit: str,
                          letter: str) -> None:
    messageid = send(api, gsm=f"6281191{digit}00000")
    sandbox.advance_clock(10)
    report = command(api, cmd="DR", ref_no=messageid)
    assert report["status"] == letter
    assert report["err_code"] == ("0" if letter in "DP" else "1")


def test_dr_default_letter_and_delay_knobs(sandbox: SandboxControl, api: httpx.Client) -> None:
    sandbox.configure(dr_delay_s=0, dr_default_letter="u")
    assert command(api, cmd="DR", ref_no=send(api))["status"] == "U"


def test_dr_xml_and_errors(api: httpx.Client) -> None:
    messageid = send(api)
    xml = api.post(COMMAND, data={**AUTH, "cmd": "DR", "ref_no": messageid})
    assert ET.fromstring(xml.content).findtext("result/ref_no") == messageid
    unknown = command(api, cmd="DR", ref_no="999999999999999999")
    assert unknown == {"results": [{"status": "-22", "messageid": "", "destination": ""}]}
    bad_auth = api.get(COMMAND, params={"user": "demo", "password": "x", "cmd": "DR",
                                        "ref_no": messageid, "output": "json"}).json()
    assert bad_auth["results"][0]["status"] == "-5"
    assert command(api, cmd="NOPE")["results"][0]["status"] == "-22"


def test_credits_command(sandbox: SandboxControl, api: httpx.Client) -> None:
    assert command(api, cmd="CREDITS", type="sms") == {"value": 1_000_000,
                                                       "expiredDate": "2099-12-31"}
    send(api, text="x" * 300)  # 2 parts
    sandbox.set_credits(1234, expired_date="2031-05-06")
    sandbox.configure(credits_as_string=True)
    assert command(api, cmd="CREDITS", type="sms") == {"value": "1234",
                                                       "expiredDate": "2031-05-06"}
    xml = api.get(COMMAND, params={**AUTH, "cmd": "CREDITS", "type": "sms"})
    assert ET.fromstring(xml.content).findtext("result/value") == "1234"
    denied = command(api, cmd="CREDITS", type="sms", password="wrong")
    assert denied == {"results": [{"status": "-5", "messageid": "", "destination": ""}]}
    assert sandbox.stats()["commands"] == {"CREDITS": 3}  # refused calls not counted


def test_credits_are_used_by_sends(sandbox: SandboxControl, api: httpx.Client) -> None:
    send(api, text="x" * 300)
    assert command(api, cmd="CREDITS", type="sms")["value"] == 1_000_000 - 2


def test_dr_push_when_final(sandbox: SandboxControl, api: httpx.Client,
                            receiver: Receiver) -> None:
    sandbox.configure(dr_callback_url=receiver.url + "/dr?token=s3cret", dr_delay_s=0.1)
    delivered = send(api)
    failed = send(api, gsm="6281191300000")
    send(api, gsm="6281191600000")  # stays pending: never pushed
    pushed = {call["query"]["ref_no"]: call for call in (receiver.next(), receiver.next())}
    assert set(pushed) == {delivered, failed}
    call = pushed[delivered]
    assert (call["method"], call["path"]) == ("GET", "/dr")
    assert call["query"]["token"] == "s3cret"
    assert (call["query"]["status"], call["query"]["err_code"]) == ("D", "0")
    assert call["query"]["sent_date"].endswith(".0")
    assert pushed[failed]["query"]["status"] == "F"
    assert eventually(lambda: sandbox.stats()["pushes"] == {"dr_ok": 2})
    with pytest.raises(queue.Empty):
        receiver.next(timeout_s=0.3)


def test_dr_push_follows_the_clock(sandbox: SandboxControl, api: httpx.Client,
                                   receiver: Receiver) -> None:
    sandbox.configure(dr_callback_url=receiver.url, dr_delay_s=3600)
    messageid = send(api)
    with pytest.raises(queue.Empty):
        receiver.next(timeout_s=0.2)
    sandbox.advance_clock(3600)
    assert receiver.next()["query"]["ref_no"] == messageid


def test_dr_push_failure_is_recorded(sandbox: SandboxControl, api: httpx.Client) -> None:
    sandbox.configure(dr_callback_url="http://127.0.0.1:9/unreachable", dr_delay_s=0)
    send(api)
    assert eventually(lambda: bool(sandbox.pushes()))
    [push] = sandbox.pushes()
    assert push["status_code"] is None and push["error"]
    assert sandbox.stats()["pushes"] == {"dr_failed": 1}


def test_inbound_push(sandbox: SandboxControl, receiver: Receiver) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        sandbox.inbound("6281298765432", "halo")  # no inbox_url yet: 409
    sandbox.configure(inbox_url=receiver.url + "/inbox")
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
