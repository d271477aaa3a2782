"""Fault knobs, connection-level misbehaviour, the control API and the command line."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from sandbox.control import SandboxControl
from tests.support.processes import free_port, python_module, spawn, wait_http

SMS = "/api/v3/sendsms/plain"
AUTH = {"user": "demo", "password": "demo"}
GSM = "6281234567890"
FORM = {**AUTH, "GSM": GSM, "SMSText": "halo", "output": "json"}


def status_of(response: httpx.Response) -> str:
    """The status in a JSON send reply."""
    return str(response.json()["results"][0]["status"])


def test_rate_5xx_then_back_to_normal(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(rate_5xx=1.0)
    replies = [sandbox_http.post(SMS, data=FORM) for _ in range(10)]
    assert {r.status_code for r in replies} <= {500, 502, 503}
    assert all(r.headers["content-type"] == "text/html" for r in replies)
    assert "<html>" in replies[0].text
    assert sandbox.messages() == []
    assert sandbox.stats()["faults"] == {"5xx": 10}
    sandbox.configure(rate_5xx=0)
    assert status_of(sandbox_http.post(SMS, data=FORM)) == "0"


def test_rate_429(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(rate_429=1.0)
    reply = sandbox_http.post(SMS, data=FORM)
    assert (reply.status_code, reply.headers["retry-after"]) == (429, "1")
    assert sandbox.messages() == []


def test_rate_malformed(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(rate_malformed=1.0, seed=7)
    bodies = [sandbox_http.post(SMS, data=FORM) for _ in range(12)]
    assert all(r.status_code == 200 for r in bodies)
    truncated = [r for r in bodies if r.text.startswith('{"results"')]
    pages = [r for r in bodies if r.text.startswith("<!DOCTYPE html>")]
    assert truncated and pages and len(truncated) + len(pages) == 12
    with pytest.raises(json.JSONDecodeError):
        truncated[0].json()
    assert sandbox.messages() == []


def test_rate_timeout_hangs_then_closes(sandbox: SandboxControl,
                                        sandbox_http: httpx.Client) -> None:
    sandbox.configure(rate_timeout=1.0, hang_s=5)
    with pytest.raises(httpx.ReadTimeout):
        sandbox_http.post(SMS, data=FORM, timeout=httpx.Timeout(5, read=0.2))
    sandbox.configure(hang_s=0.1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sandbox_http.post(SMS, data=FORM)
    assert sandbox.messages() == []
    assert [e["fault"] for e in sandbox.requests()] == ["timeout", "timeout"]


def test_rate_drop_after_accept(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(rate_drop_after_accept=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sandbox_http.post(SMS, data=FORM)
    assert [m["gsm"] for m in sandbox.messages()] == [GSM]


def test_magic_drop_counts_as_sent(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sandbox_http.post(SMS, data={**FORM, "GSM": "6281193000000"})
    assert [m["gsm"] for m in sandbox.messages()] == ["6281193000000"]
    assert sandbox.counts()[("6281193000000", "halo")] == 1
    assert status_of(sandbox_http.post(SMS, data=FORM)) == "0"  # the client reconnects


def test_magic_hang(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(hang_s=0.3)
    with pytest.raises(httpx.ReadTimeout):
        sandbox_http.post(SMS, data={**FORM, "GSM": "6281194000000"},
                          timeout=httpx.Timeout(5, read=0.1))
    assert [m["gsm"] for m in sandbox.messages()] == ["6281194000000"]
    started = time.monotonic()
    second = sandbox_http.post(SMS, data={**FORM, "GSM": "6281194000000", "SMSText": "2"})
    assert status_of(second) == "0"
    assert time.monotonic() - started >= 0.3


def test_latency_and_jitter(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(latency_ms=150, latency_jitter_ms=50)
    started = time.monotonic()
    assert status_of(sandbox_http.post(SMS, data=FORM)) == "0"
    assert 0.1 <= time.monotonic() - started < 1.0


def test_down_drops_provider_calls_only(sandbox: SandboxControl,
                                        sandbox_http: httpx.Client) -> None:
    sandbox.configure(down=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sandbox_http.post(SMS, data=FORM)
    assert sandbox.config()["down"] is True
    sandbox.configure(down=False)
    assert status_of(sandbox_http.post(SMS, data=FORM)) == "0"
    assert [e["fault"] for e in sandbox.requests()] == ["down", None]


def draw_faults(sandbox: SandboxControl, http: httpx.Client) -> list[int]:
    sandbox.configure(seed=42, rate_5xx=0.3, rate_429=0.3)
    return [http.post(SMS, data={**FORM, "SMSText": str(i)}).status_code for i in range(30)]


def test_seed_reproduces_faults(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    first = draw_faults(sandbox, sandbox_http)
    sandbox.reset()
    assert draw_faults(sandbox, sandbox_http) == first
    assert {200, 429} <= set(first)


def test_request_log(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    before = time.time()
    sandbox_http.post(SMS, data=FORM)
    sandbox_http.get(SMS, params={**FORM, "GSM": "0812"})
    sandbox_http.get("/api/command", params={**AUTH, "cmd": "CREDITS"})
    log = sandbox.requests()
    assert [(e["method"], e["gsm"], e["cmd"], e["status"]) for e in log] == [
        ("POST", GSM, None, "0"), ("GET", "0812", None, "-13"), ("GET", None, "CREDITS", "0")]
    assert before <= log[0]["t"] <= time.time()
    assert sandbox.requests(limit=1) == log[-1:]
    assert sandbox.stats()["requests"] == 3


def test_keep_alive_chunked_and_pipelined(sandbox: SandboxControl) -> None:
    body = b"user=demo&password=demo&GSM=6281234567890&SMSText=pipe&output=json"
    chunked = (b"POST " + SMS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
               b"application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
               + f"{len(body[:10]):x}\r\n".encode() + body[:10] + b"\r\n"
               + f"{len(body[10:]):x}\r\n".encode() + body[10:] + b"\r\n0\r\n\r\n")
    plain = (b"GET /_sandbox/health HTTP/1.1\r\nHost: x\r\n\r\n")
    host, port = sandbox.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(chunked + plain + chunked)
        received = b""
        while received.count(b"HTTP/1.1 200") < 3:
            received += sock.recv(65536)
    assert received.count(b'"status":"0"') == 2
    assert len(sandbox.messages()) == 2


def test_unknown_paths_and_methods(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    assert sandbox_http.get("/api/v3/nope").status_code == 404
    assert sandbox_http.put(SMS, data=FORM).status_code == 405
    assert sandbox_http.get("/_sandbox/nope").status_code == 404
    assert sandbox_http.get("/_sandbox/reset").status_code == 405


def test_control_api_validates_knobs(sandbox: SandboxControl) -> None:
    with pytest.raises(ValueError, match="unknown knob"):
        sandbox.configure(rate_fivexx=1)
    with pytest.raises(ValueError, match="rate_5xx"):
        sandbox.configure(rate_5xx=2)
    with pytest.raises(ValueError, match="forward"):
        sandbox.advance_clock(-1)
    assert sandbox.config()["rate_5xx"] == 0


def test_reset_restores_everything(sandbox: SandboxControl, sandbox_http: httpx.Client) -> None:
    sandbox.configure(same_text_limit=1, latency_ms=5)
    sandbox.set_credits(5, "2020-01-01")
    sandbox.set_credits(6, "2021-01-01", product="wa")
    sandbox.advance_clock(100)
    sandbox.reset()
    config, stats = sandbox.config(), sandbox.stats()
    assert (config["same_text_limit"], config["latency_ms"]) == (10, 0)
    assert (stats["credits"], stats["expired_date"], stats["clock_offset_s"]) == (
        1_000_000, "2099-12-31", 0)
    assert (stats["wa_credits"], stats["wa_expired_date"]) == (1_000_000, "2099-12-31")
    assert sandbox.health()


def test_default_knobs(sandbox: SandboxControl) -> None:
    config: dict[str, Any] = sandbox.config()
    assert config == {
        "user": "demo", "password": "demo", "latency_ms": 0.0, "latency_jitter_ms": 0.0,
        "rate_5xx": 0.0, "rate_timeout": 0.0, "rate_malformed": 0.0, "rate_429": 0.0,
        "rate_drop_after_accept": 0.0, "hang_s": 30.0, "dr_delay_s": 1.0,
        "dr_default_letter": "D", "dr_callback_url": None, "inbox_url": None,
        "same_text_limit": 10, "per_number_limit": 50, "otp_marker_check": True,
        "otp_route": True, "allowed_senders": [], "credits_as_string": False,
        "newline_counts_double": True,
        "groups": {"Example": ["6281234567890", "6281234567891"]}, "seed": None, "down": False,
        "api_key": "demo-api-key", "v1_prefix": "/nusasms_api/1.0", "wa_senders": [],
        "wa_read_delay_s": 1.0,
    }


def test_command_line_knobs(tmp_path: Any) -> None:
    port = free_port()
    groups = json.dumps({"Staff": ["6281234567890"]})
    proc = spawn(python_module(
        "sandbox", "--port", str(port), "--user", "acme", "--password", "pw",
        "--credits", "7", "--credits-expiry", "2030-01-02", "--no-otp-marker-check",
        "--wa-credits", "8", "--wa-credits-expiry", "2031-02-03", "--no-otp-route",
        "--allowed-senders", "KIRIM,Toko Budi",
        "--same-text-limit", "2", "--groups", groups, "--seed", "3",
    ), log=tmp_path / "sandbox.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_sandbox/health", "sandbox")
        with SandboxControl(url) as control:
            config = control.config()
            assert (config["user"], config["otp_marker_check"], config["seed"]) == (
                "acme", False, 3)
            assert config["groups"] == {"Staff": ["6281234567890"]}
            assert (config["otp_route"], config["allowed_senders"]) == (
                False, ["KIRIM", "Toko Budi"])
            form = {"user": "acme", "password": "pw", "GSM": GSM, "SMSText": "kode 1234",
                    "output": "json"}
            assert status_of(httpx.post(url + SMS, data=form)) == "0"
            control.reset()
            stats = control.stats()
            assert (stats["credits"], stats["expired_date"]) == (7, "2030-01-02")
            assert (stats["wa_credits"], stats["wa_expired_date"]) == (8, "2031-02-03")
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_bad_command_line_knob_fails(tmp_path: Any) -> None:
    proc = spawn(python_module("sandbox", "--rate-5xx", "3"), log=tmp_path / "log")
    assert proc.wait(10) == 2
    assert "rate_5xx" in (tmp_path / "log").read_text()
