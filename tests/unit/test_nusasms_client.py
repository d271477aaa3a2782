"""NusaSMSClient over httpx.MockTransport: request shape, replies, and every way a call fails."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import traceback
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from worker.nusasms import (
    COMMAND_PATH,
    SEND_GROUP_PATH,
    SEND_SMS_PATH,
    SEND_WA_PATH,
    Action,
    ClientMisconfigured,
    DeliveryState,
    NusaSMSClient,
    NusaSMSConfig,
    NusaSMSError,
    OutcomeUnknown,
    ProtocolError,
    ProviderHTTPError,
    ProviderRejected,
    ProviderThrottled,
    ReplyLost,
    RequestNotSent,
    build_http_client,
)
from worker.nusasms.wire import WireClient

PASSWORD = "Sup3r-S3cret"
BASE = "https://api.nusasms.test"
CONFIG = NusaSMSConfig(BASE, "demo", PASSWORD)
GSM = "6281234567890"
OK_SEND = (
    '{"results":[{"status":"0","messageid":"175041319203754627","destination":"' + GSM + '"}]}'
)
OK_GROUP = '{"results":[{"status":"0","campaign_name":"Group-Api-Campaign-1","group":"VIP"}]}'
OK_CREDITS = '{"value":"12500","expiredDate":"2025-12-31"}'
OK_DR = (
    '{"ref_no":"175041319203754627","status":"D","sent_date":"2025-01-01 10:00:00",'
    '"err_code":"0"}'
)

Handler = Callable[[httpx.Request], httpx.Response]
Call = Callable[[NusaSMSClient], object]


class Recorder:
    """A MockTransport handler that answers with `reply` and keeps every request."""

    def __init__(self, reply: Handler | str = OK_SEND, status: int = 200) -> None:
        self.reply = reply
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if callable(self.reply):
            return self.reply(request)
        return httpx.Response(self.status, text=self.reply)

    @property
    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.requests[-1].content.decode(), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}


def make(handler: Handler, config: NusaSMSConfig = CONFIG, **client_kw: object) -> NusaSMSClient:
    http = httpx.Client(transport=httpx.MockTransport(handler), **client_kw)  # type: ignore[arg-type]
    return NusaSMSClient(config, http)


SENDS: dict[str, tuple[Call, str]] = {
    "send_sms": (lambda c: c.send_sms(GSM, "Halo"), OK_SEND),
    "send_otp": (lambda c: c.send_sms(GSM, "Kode 1234", otp=True), OK_SEND),
    "send_wa": (lambda c: c.send_wa(GSM, "Halo"), OK_SEND),
    "send_group": (lambda c: c.send_group("VIP", "Halo"), OK_GROUP),
}
QUERIES: dict[str, tuple[Call, str]] = {
    "credits": (lambda c: c.credits(), OK_CREDITS),
    "delivery_report": (lambda c: c.delivery_report("175041319203754627"), OK_DR),
}
CALLS = SENDS | QUERIES


# --- request shape ---------------------------------------------------------------------


def test_send_sms_request() -> None:
    recorder = Recorder()
    make(recorder).send_sms(GSM, "Halo")
    request = recorder.requests[0]
    assert request.method == "POST"
    assert str(request.url) == BASE + SEND_SMS_PATH
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert recorder.form == {
        "user": "demo",
        "password": PASSWORD,
        "GSM": GSM,
        "SMSText": "Halo",
        "output": "json",
    }


@pytest.mark.parametrize("name", list(CALLS))
def test_credentials_travel_in_the_body_never_the_url(name: str) -> None:
    call, reply = CALLS[name]
    recorder = Recorder(reply)
    call(make(recorder))
    request = recorder.requests[0]
    assert request.method == "POST"
    assert request.url.query == b""
    assert PASSWORD not in str(request.url) and "demo" not in str(request.url)
    assert recorder.form["password"] == PASSWORD
    assert recorder.form["output"] == "json"


def test_otp_flag() -> None:
    recorder = Recorder()
    client = make(recorder)
    client.send_sms(GSM, "Kode 1234", otp=True)
    assert recorder.form["otp"] == "Y"
    client.send_sms(GSM, "Halo")
    assert "otp" not in recorder.form


@pytest.mark.parametrize(
    ("text", "unicode", "sent"),
    [
        ("Halo apa kabar", None, None),
        ("Harga €5 [promo]", None, None),
        ("Terima kasih 🙏", None, "True"),
        ("naïve", None, "True"),
        ("Terima kasih 🙏", False, None),
        ("Halo", True, "True"),
    ],
)
def test_unicode_is_chosen_from_the_text(text: str, unicode: bool | None, sent: str | None) -> None:
    recorder = Recorder()
    make(recorder).send_sms(GSM, text, unicode=unicode)
    assert recorder.form.get("unicode") == sent
    assert recorder.form["SMSText"] == text


def test_sender_only_when_configured() -> None:
    recorder = Recorder()
    make(recorder).send_sms(GSM, "Halo")
    assert "sender" not in recorder.form
    with_sender = make(recorder, NusaSMSConfig(BASE, "demo", PASSWORD, sender="KIRIM"))
    with_sender.send_sms(GSM, "Halo")
    assert recorder.form["sender"] == "KIRIM"
    with_sender.send_wa(GSM, "Halo")
    assert "sender" not in recorder.form


def test_send_wa_request() -> None:
    recorder = Recorder()
    result = make(recorder).send_wa(GSM, "Halo 🙏")
    assert str(recorder.requests[0].url) == BASE + SEND_WA_PATH
    assert recorder.form == {
        "username": "demo",
        "password": PASSWORD,
        "GSM": GSM,
        "text": "Halo 🙏",
        "output": "json",
    }
    assert result.message_id == "175041319203754627"


def test_send_group_request_and_result() -> None:
    recorder = Recorder(OK_GROUP)
    result = make(recorder).send_group("VIP", "Promo 🙏")
    assert str(recorder.requests[0].url) == BASE + SEND_GROUP_PATH
    assert recorder.form == {
        "user": "demo",
        "password": PASSWORD,
        "group": "VIP",
        "SMSText": "Promo 🙏",
        "unicode": "True",
        "output": "json",
    }
    assert (result.status.code, result.campaign_name, result.group) == (
        0,
        "Group-Api-Campaign-1",
        "VIP",
    )
    assert result.elapsed_s > 0


def test_credits_request_and_result() -> None:
    recorder = Recorder(OK_CREDITS)
    client = make(recorder)
    credits = client.credits()
    assert str(recorder.requests[0].url) == BASE + COMMAND_PATH
    assert recorder.form == {
        "user": "demo",
        "password": PASSWORD,
        "cmd": "CREDITS",
        "type": "sms",
        "output": "json",
    }
    assert str(credits.value) == "12500"
    client.credits("wa")
    assert recorder.form["type"] == "wa"


def test_delivery_report_request_and_result() -> None:
    recorder = Recorder(OK_DR)
    report = make(recorder).delivery_report("175041319203754627")
    assert str(recorder.requests[0].url) == BASE + COMMAND_PATH
    assert recorder.form == {
        "user": "demo",
        "password": PASSWORD,
        "cmd": "DR",
        "ref_no": "175041319203754627",
        "output": "json",
    }
    assert (report.state, report.final) == (DeliveryState.DELIVERED, True)


def test_base_url_path_prefix_and_trailing_slash() -> None:
    recorder = Recorder()
    make(recorder, NusaSMSConfig("http://127.0.0.1:9/nusa/", "demo", PASSWORD)).send_sms(GSM, "x")
    assert str(recorder.requests[0].url) == "http://127.0.0.1:9/nusa" + SEND_SMS_PATH


# --- results ---------------------------------------------------------------------------


def test_send_result() -> None:
    result = make(Recorder()).send_sms(GSM, "Halo")
    assert result.status.action is Action.DONE
    assert (result.message_id, result.destination) == ("175041319203754627", GSM)
    assert result.raw == OK_SEND
    assert result.elapsed_s > 0


@pytest.mark.parametrize(("code", "action"), [(-2, Action.PAUSE), (-78, Action.DEFER)])
def test_negative_status_is_a_result(code: int, action: Action) -> None:
    body = f'{{"results":[{{"status":"{code}","messageid":"","destination":"{GSM}"}}]}}'
    result = make(Recorder(body)).send_sms(GSM, "Halo")
    assert (result.status.code, result.status.action, result.message_id) == (code, action, None)


def test_xml_reply_is_read_even_though_json_was_asked() -> None:
    body = "<results><result><status>-1</status><messageid></messageid></result></results>"
    result = make(Recorder(body)).send_wa(GSM, "Halo")
    assert (result.status.action, result.destination) == (Action.RETRY, GSM)


def test_any_2xx_is_read_as_a_reply() -> None:
    result = make(Recorder(OK_SEND, status=202)).send_sms(GSM, "Halo")
    assert result.status.code == 0


@pytest.mark.parametrize("name", list(QUERIES))
def test_query_rejected_by_status(name: str) -> None:
    call, _ = QUERIES[name]
    with pytest.raises(ProviderRejected) as caught:
        call(make(Recorder('{"results":[{"status":"-5","messageid":"","destination":""}]}')))
    assert caught.value.action is Action.PAUSE
    assert caught.value.operation == name


# --- transport failures ----------------------------------------------------------------


def raising(exc_type: type[Exception]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated failure", request=request)  # type: ignore[call-arg]

    return handler


TRANSPORT_FAILURES = [
    (httpx.ConnectError, RequestNotSent, RequestNotSent),
    (httpx.ConnectTimeout, RequestNotSent, RequestNotSent),
    (httpx.PoolTimeout, RequestNotSent, RequestNotSent),
    (httpx.WriteTimeout, RequestNotSent, RequestNotSent),
    (httpx.ReadTimeout, OutcomeUnknown, ReplyLost),
    (httpx.ReadError, OutcomeUnknown, ReplyLost),
    (httpx.RemoteProtocolError, OutcomeUnknown, ReplyLost),
    (httpx.ProxyError, ClientMisconfigured, ClientMisconfigured),
    (httpx.UnsupportedProtocol, ClientMisconfigured, ClientMisconfigured),
]


@pytest.mark.parametrize(("exc_type", "on_send", "on_query"), TRANSPORT_FAILURES)
@pytest.mark.parametrize("name", list(CALLS))
def test_transport_failures(
    name: str,
    exc_type: type[Exception],
    on_send: type[NusaSMSError],
    on_query: type[NusaSMSError],
) -> None:
    call, _ = CALLS[name]
    expected = on_send if name in SENDS else on_query
    with pytest.raises(NusaSMSError) as caught:
        call(make(raising(exc_type)))
    assert type(caught.value) is expected
    assert isinstance(caught.value.__cause__, exc_type)
    assert caught.value.operation in (name, "send_sms")


# --- HTTP errors -----------------------------------------------------------------------

HTTP_FAILURES = [
    # (status, headers, class, action on a send, action on a query, retry_after_s)
    (500, {}, ProviderHTTPError, Action.RETRY, Action.RETRY, None),
    (502, {}, ProviderHTTPError, Action.RETRY, Action.RETRY, None),
    (503, {"Retry-After": "20"}, ProviderHTTPError, Action.RETRY, Action.RETRY, 20.0),
    (504, {}, ProviderHTTPError, Action.UNKNOWN, Action.RETRY, None),
    (408, {}, ProviderHTTPError, Action.RETRY, Action.RETRY, None),
    (429, {"Retry-After": "30"}, ProviderThrottled, Action.RETRY, Action.RETRY, 30.0),
    (429, {}, ProviderThrottled, Action.RETRY, Action.RETRY, None),
    (404, {}, ProviderHTTPError, Action.PAUSE, Action.PAUSE, None),
    (401, {}, ProviderHTTPError, Action.PAUSE, Action.PAUSE, None),
    (403, {}, ProviderHTTPError, Action.PAUSE, Action.PAUSE, None),
    (302, {"Location": "https://x.test/"}, ProviderHTTPError, Action.PAUSE, Action.PAUSE, None),
]


@pytest.mark.parametrize(
    ("status", "headers", "cls", "on_send", "on_query", "retry_after_s"), HTTP_FAILURES
)
@pytest.mark.parametrize("name", ["send_sms", "credits"])
def test_http_failures(
    name: str,
    status: int,
    headers: dict[str, str],
    cls: type[ProviderHTTPError],
    on_send: Action,
    on_query: Action,
    retry_after_s: float | None,
) -> None:
    call, _ = CALLS[name]
    page = "<html><body><h1>Something went wrong</h1></body></html>"
    with pytest.raises(ProviderHTTPError) as caught:
        call(make(lambda r: httpx.Response(status, headers=headers, text=page)))
    assert type(caught.value) is cls
    assert caught.value.status_code == status
    assert caught.value.action is (on_send if name == "send_sms" else on_query)
    assert caught.value.retry_after_s == retry_after_s
    assert "Something went wrong" in caught.value.excerpt


def test_redirects_are_never_followed_even_if_the_client_would() -> None:
    recorder = Recorder(lambda r: httpx.Response(307, headers={"Location": "https://evil.test/"}))
    with pytest.raises(ProviderHTTPError) as caught:
        make(recorder, follow_redirects=True).send_sms(GSM, "Halo")
    assert caught.value.action is Action.PAUSE
    assert len(recorder.requests) == 1


# --- unreadable 200 replies ------------------------------------------------------------

BAD_BODIES = {
    "empty": "",
    "html": "<!DOCTYPE html><html><body>Maintenance</body></html>",
    "truncated-json": OK_SEND[:30],
    "truncated-xml": "<results><result><status>0</status><messageid>1750",
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
@pytest.mark.parametrize("name", list(CALLS))
def test_unreadable_200_reply(name: str, body: str) -> None:
    call, _ = CALLS[name]
    with pytest.raises(ProtocolError) as caught:
        call(make(Recorder(body)))
    expected = Action.UNKNOWN if name in SENDS else Action.RETRY
    assert caught.value.action is expected


# --- the password never shows ----------------------------------------------------------


def echo(status: int, wrap: str = "<html><body>{}</body></html>") -> Handler:
    """A provider (or proxy) that echoes our request into its error page."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=wrap.format(request.content.decode()))

    return handler


LEAKY_HANDLERS: dict[str, Handler] = {
    "400-echo": echo(400),
    "500-echo": echo(500),
    "429-echo": echo(429),
    "200-html-echo": echo(200),
    "200-json-echo": echo(200, '{{"echo": "{}"'),
    "200-rejected-echo": echo(200, '{{"results":[{{"status":"-5","note":"{}"}}]}}'),
    "connect-error": raising(httpx.ConnectError),
    "read-timeout": raising(httpx.ReadTimeout),
}


@pytest.mark.parametrize("handler", list(LEAKY_HANDLERS.values()), ids=list(LEAKY_HANDLERS))
@pytest.mark.parametrize("name", list(CALLS))
def test_password_never_in_an_error(name: str, handler: Handler) -> None:
    call, _ = CALLS[name]
    try:
        result = call(make(handler))
    except NusaSMSError as exc:
        shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        assert not [text for text in shown if PASSWORD in text]
    else:
        assert PASSWORD not in repr(result)


def test_config_and_client_repr_hide_the_password() -> None:
    config = NusaSMSConfig(BASE, "demo", PASSWORD, sender="KIRIM")
    assert PASSWORD not in repr(config) and PASSWORD not in str(config)
    assert "demo" in repr(config) and "KIRIM" in repr(config)
    assert PASSWORD not in repr(make(Recorder(), config))


@pytest.mark.parametrize(
    ("base_url", "user", "password"),
    [
        ("api.nusasms.com", "demo", PASSWORD),
        ("ftp://api.nusasms.com", "demo", PASSWORD),
        (f"https://demo:{PASSWORD}@api.nusasms.com", "demo", PASSWORD),
        (f"https://api.nusasms.com/?password={PASSWORD}", "demo", PASSWORD),
        (BASE, "", PASSWORD),
        (BASE, "demo", ""),
    ],
)
def test_config_validation(base_url: str, user: str, password: str) -> None:
    with pytest.raises(ValueError) as caught:
        NusaSMSConfig(base_url, user, password)
    assert PASSWORD not in str(caught.value)


def test_blank_sender_means_none() -> None:
    assert NusaSMSConfig(BASE, "demo", PASSWORD, sender="  ").sender is None


# --- the http client helper ------------------------------------------------------------


def test_build_http_client_sets_explicit_limits() -> None:
    with build_http_client(connect_timeout_s=2.0, read_timeout_s=15.0, pool_size=8) as http:
        assert http.timeout == httpx.Timeout(connect=2.0, read=15.0, write=2.0, pool=2.0)
        assert http.follow_redirects is False
        assert http.headers["User-Agent"].startswith("kirim-nusasms/")


@pytest.mark.parametrize("args", [(0, 1, 1), (1, 0, 1), (1, 1, 0), (-1, 1, 1)])
def test_build_http_client_refuses_nonsense(args: tuple[float, float, int]) -> None:
    with pytest.raises(ValueError):
        build_http_client(*args)


# --- real sockets on 127.0.0.1: httpx raises what the mapping expects --------------------


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(ln.split(b":")[1]) for ln in lines if ln.startswith(b"content-length")), 0)
    while len(body) < length:
        body += conn.recv(65536) or b"x" * length


def _serve_once(behaviour: Callable[[socket.socket], None]) -> tuple[str, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run() -> None:
        with listener, contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                _read_request(conn)
                behaviour(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}", thread


def _hang(conn: socket.socket) -> None:
    time.sleep(1.0)


def _close(conn: socket.socket) -> None:
    conn.shutdown(socket.SHUT_RDWR)


def _truncate(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + OK_SEND[:20].encode())


# Both HTTP clients NusaSMSClient runs on: httpx (tools, v1.0) and the send path's WireClient.
CLIENTS = {"httpx": build_http_client,
           "wire": lambda connect_timeout_s, read_timeout_s, pool_size: WireClient(
               connect_timeout_s, read_timeout_s, pool_size)}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("behaviour", "cause"),
    [
        (_hang, httpx.ReadTimeout),
        (_close, httpx.RemoteProtocolError),
        (_truncate, httpx.RemoteProtocolError),
    ],
    ids=["read-timeout", "closed-after-request", "truncated-reply"],
)
def test_real_socket_failures_after_the_request_left(
    behaviour: Callable[[socket.socket], None], cause: type[Exception], client: str
) -> None:
    url, thread = _serve_once(behaviour)
    config = NusaSMSConfig(url, "demo", PASSWORD)
    http = CLIENTS[client](connect_timeout_s=1.0, read_timeout_s=0.3, pool_size=1)
    with http, pytest.raises(NusaSMSError) as caught:
        NusaSMSClient(config, http).send_sms(GSM, "Halo")
    assert type(caught.value) is OutcomeUnknown
    assert type(caught.value.__cause__) is cause
    assert PASSWORD not in str(caught.value)
    thread.join(2)


@pytest.mark.parametrize("client", CLIENTS)
def test_real_connection_refused_is_not_sent(client: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    config = NusaSMSConfig(f"http://127.0.0.1:{port}", "demo", PASSWORD)
    http = CLIENTS[client](connect_timeout_s=1.0, read_timeout_s=1.0, pool_size=1)
    with http, pytest.raises(RequestNotSent) as caught:
        NusaSMSClient(config, http).send_sms(GSM, "Halo")
    assert type(caught.value.__cause__) is httpx.ConnectError


def test_send_many_over_httpx_asks_before_each_write_and_writes_none_withdrawn():
    from worker.nusasms.client import SendCall

    recorder = Recorder(OK_SEND)
    asked: list[int] = []

    def before_write(i: int) -> bool:
        asked.append(i)
        return i != 1  # call 1's mark was not taken: it must not be written

    calls = [SendCall(GSM, f"Halo {i}", "sms") for i in range(3)]
    results = make(recorder).send_many(calls, before_write=before_write)
    assert asked == [0, 1, 2]
    assert [r.content.decode().count("Halo+1") for r in recorder.requests] == [0, 0]
    assert len(recorder.requests) == 2
    withdrawn = results[1]
    assert isinstance(withdrawn, RequestNotSent)
    assert isinstance(withdrawn.__cause__, httpx.PoolTimeout)
    assert not isinstance(results[0], NusaSMSError) and not isinstance(results[2], NusaSMSError)
