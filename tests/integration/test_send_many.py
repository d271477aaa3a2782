"""NusaSMSClient.send_many against the real sandbox: each call gets what its single-call method
returns or raises, over WireClient (all at once) and over httpx (one after the other)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.control import SandboxControl
from worker.nusasms import (
    Action,
    NusaSMSClient,
    NusaSMSConfig,
    NusaSMSError,
    OutcomeUnknown,
    SendResult,
    build_http_client,
)
from worker.nusasms.client import USER_AGENT, SendCall
from worker.nusasms.wire import WireClient

READ_S = 0.5  # below the sandbox's hang (configured to 2 s)

CALLS = [
    SendCall("6281234567890", "Halo dari kirim", "sms"),
    SendCall("6281234567891", "Halo 🙏 dari WhatsApp", "wa"),
    SendCall("6281234567892", "Kode OTP Anda 482913", "sms", otp=True),
    SendCall("6281234567893", "Kode OTP Anda 482913", "sms"),  # an OTP off the OTP route: -10
    SendCall("6281190002000", "Halo", "sms"),  # magic: status -2
    SendCall("6281234567894", "Terima kasih 🙏", "sms"),  # UCS-2
    SendCall("6281193000000", "Halo", "sms"),  # magic: the connection drops after accepting
    SendCall("6281194000000", "Halo", "sms"),  # magic: the reply hangs past the read timeout
]


@pytest.fixture(params=["wire", "httpx"])
def nusasms(request: pytest.FixtureRequest, sandbox: SandboxControl
            ) -> Iterator[NusaSMSClient]:
    """A client on the sandbox over WireClient (post_many) or httpx (the proxy fallback)."""
    sandbox.configure(hang_s=2.0)
    http: WireClient | httpx.Client
    if request.param == "wire":
        http = WireClient(2.0, READ_S, 8, user_agent=USER_AGENT)
    else:
        http = build_http_client(connect_timeout_s=2.0, read_timeout_s=READ_S, pool_size=8)
    with http:
        yield NusaSMSClient(NusaSMSConfig(sandbox.url, "demo", "demo"), http)


def _single(client: NusaSMSClient, call: SendCall) -> SendResult | NusaSMSError:
    try:
        if call.channel == "wa":
            return client.send_wa(call.gsm, call.text)
        return client.send_sms(call.gsm, call.text, otp=call.otp)
    except NusaSMSError as exc:
        return exc


def _shape(outcome: SendResult | NusaSMSError) -> tuple[object, ...]:
    """What must match between send_many and the single call (message ids differ)."""
    if isinstance(outcome, SendResult):
        return (SendResult, outcome.status, outcome.message_id is not None, outcome.destination)
    return (type(outcome), outcome.action, str(outcome), type(outcome.__cause__))


def test_each_call_gets_what_the_single_call_gets(
        nusasms: NusaSMSClient, sandbox: SandboxControl) -> None:
    started = time.perf_counter()
    many = nusasms.send_many(CALLS)
    wall_s = time.perf_counter() - started
    single = [_single(nusasms, call) for call in CALLS]
    assert [_shape(o) for o in many] == [_shape(o) for o in single]
    # The mix really is a mix.
    actions = [o.status.action if isinstance(o, SendResult) else o.action for o in many]
    assert actions == [Action.DONE, Action.DONE, Action.DONE, Action.DEAD, Action.PAUSE,
                       Action.DONE, Action.UNKNOWN, Action.UNKNOWN]
    assert isinstance(many[6], OutcomeUnknown) and isinstance(many[7], OutcomeUnknown)
    # elapsed_s: up to each call's own reply, within the whole call.
    assert all(0 < o.elapsed_s <= wall_s for o in many if isinstance(o, SendResult))
    # What the sandbox took: the OTP on the OTP route, UCS-2 detected, WhatsApp as WhatsApp.
    assert [m["otp"] for m in sandbox.messages(gsm="6281234567892")] == [True, True]
    assert [m["unicode"] for m in sandbox.messages(gsm="6281234567894")] == [True, True]
    assert len(sandbox.messages(gsm="6281234567891", channel="wa")) == 2


def test_both_clients_give_the_same_results(sandbox: SandboxControl) -> None:
    sandbox.configure(hang_s=2.0)
    config = NusaSMSConfig(sandbox.url, "demo", "demo")
    with WireClient(2.0, READ_S, 8, user_agent=USER_AGENT) as wire, build_http_client(
            connect_timeout_s=2.0, read_timeout_s=READ_S, pool_size=8) as proxied:
        over_wire = NusaSMSClient(config, wire).send_many(CALLS)
        over_httpx = NusaSMSClient(config, proxied).send_many(CALLS)
    # The same results and error classes; the httpx exceptions' own messages differ.
    assert [_shape(o)[:2] for o in over_wire] == [_shape(o)[:2] for o in over_httpx]


def test_eight_sends_cost_one_provider_latency(sandbox: SandboxControl) -> None:
    sandbox.configure(latency_ms=200)
    calls = [SendCall(f"62812345678{i:02d}", f"Halo {i}", "sms") for i in range(8)]
    with WireClient(2.0, 5.0, 8, user_agent=USER_AGENT) as http:
        client = NusaSMSClient(NusaSMSConfig(sandbox.url, "demo", "demo"), http)
        client.send_sms("6281234567800", "warm up")  # one pooled connection; 7 new ones
        started = time.perf_counter()
        results = client.send_many(calls)
        wall_s = time.perf_counter() - started
    assert all(isinstance(r, SendResult) and r.status.action is Action.DONE for r in results)
    # Each call timed from its own connection and write; the sandbox's event-loop timer can
    # fire a little under its 200 ms after the request arrived (a cached loop clock).
    assert all(isinstance(r, SendResult) and r.elapsed_s >= 0.19 for r in results)
    assert wall_s < 0.2 * 2


def test_a_call_in_a_later_wave_is_timed_from_its_own_write(sandbox: SandboxControl) -> None:
    """kirim_provider_latency_seconds observes elapsed_s: a call that waited for a free
    connection (the pool's second wave) is timed from its write, not from the batch's start."""
    sandbox.configure(latency_ms=200)
    calls = [SendCall(f"62812345679{i:02d}", f"Halo {i}", "sms") for i in range(4)]
    with WireClient(2.0, 5.0, 2, user_agent=USER_AGENT) as http:  # 2 connections: 2 waves
        client = NusaSMSClient(NusaSMSConfig(sandbox.url, "demo", "demo"), http)
        started = time.perf_counter()
        results = client.send_many(calls)
        wall_s = time.perf_counter() - started
    assert wall_s >= 0.4  # two waves of one provider latency each
    assert all(isinstance(r, SendResult) for r in results)
    assert all(0.19 <= r.elapsed_s < 0.35 for r in results if isinstance(r, SendResult))
