"""The send path's lean HTTP client (worker/nusasms/wire.py) against real sockets: keep-alive
reuse, connections the server closed or that idled too long never reused, the request as
sent, the pool bound, proxies handed to httpx."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from worker.nusasms import (
    NusaSMSClient,
    NusaSMSConfig,
    ProviderThrottled,
    RequestNotSent,
    build_send_client,
)
from worker.nusasms.wire import WireClient

SEND = ('{"results":[{"status":0,"destination":"6281234567890",'
        '"messageId":"abc123","text":"ok"}]}')


class Provider(ThreadingHTTPServer):
    """Counts connections and remembers requests; each reply as `reply` says."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.requests: list[dict[str, object]] = []
        self.close_after_reply = False
        self.status, self.headers_out, self.delay_s = 200, {}, 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Provider

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append({"path": self.path, "body": body.decode(),
                                     "headers": dict(self.headers.items())})
        time.sleep(self.server.delay_s)
        payload = SEND.encode()
        self.send_response(self.server.status)
        for name, value in self.server.headers_out.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        if self.server.close_after_reply:  # an idle keep-alive connection closed by the server
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_requests_share_one_keep_alive_connection_and_are_sent_as_forms(
        provider: Provider) -> None:
    with WireClient(1.0, 1.0, 4, user_agent="kirim-test") as http:
        replies = [http.post(f"{provider.url}/api/v3/sendsms/plain?x=1",
                             data={"GSM": "6281234567890", "SMSText": f"halo {i} & é"})
                   for i in range(3)]
    assert [r.status_code for r in replies] == [200] * 3
    assert json.loads(replies[0].text)["results"][0]["messageId"] == "abc123"
    assert provider.connections == 1
    first = provider.requests[0]
    assert first["path"] == "/api/v3/sendsms/plain?x=1"
    assert first["body"] == "GSM=6281234567890&SMSText=halo+0+%26+%C3%A9"
    headers = first["headers"]
    assert isinstance(headers, dict)
    assert headers["Host"] == provider.url.removeprefix("http://")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["User-Agent"] == "kirim-test" and "Accept-Encoding" not in headers


def test_a_connection_the_server_closed_is_not_reused(provider: Provider) -> None:
    provider.close_after_reply = True
    with WireClient(1.0, 1.0, 4) as http:
        for _ in range(3):
            assert http.post(provider.url, data={"a": "1"}).status_code == 200
            time.sleep(0.05)  # the close reaches us while the connection idles
    assert provider.connections == 3 and len(provider.requests) == 3


def test_an_idle_connection_past_its_expiry_is_not_reused(provider: Provider) -> None:
    with WireClient(1.0, 1.0, 4, keepalive_expiry_s=0.1) as http:
        http.post(provider.url, data={"a": "1"})
        http.post(provider.url, data={"a": "2"})
        time.sleep(0.2)
        http.post(provider.url, data={"a": "3"})
    assert provider.connections == 2


def test_a_full_pool_refuses_before_sending(provider: Provider) -> None:
    provider.delay_s = 0.5
    config = NusaSMSConfig(provider.url, "demo", "secret-password")
    with WireClient(0.1, 2.0, 1) as http:
        client = NusaSMSClient(config, http)
        busy = threading.Thread(target=client.send_sms, args=("6281234567890", "one"))
        busy.start()
        time.sleep(0.1)
        with pytest.raises(RequestNotSent) as caught:
            client.send_sms("6281234567891", "two")
        busy.join()
    assert type(caught.value.__cause__) is httpx.PoolTimeout
    assert len(provider.requests) == 1


def test_a_429_carries_its_retry_after(provider: Provider) -> None:
    provider.status, provider.headers_out = 429, {"Retry-After": "7"}
    config = NusaSMSConfig(provider.url, "demo", "secret-password")
    with WireClient(1.0, 1.0, 2) as http, pytest.raises(ProviderThrottled) as caught:
        NusaSMSClient(config, http).send_sms("6281234567890", "halo")
    assert caught.value.retry_after_s == 7.0


def test_a_proxy_in_the_environment_gets_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = build_send_client("https://api.nusasms.com", 1.0, 1.0, 2)
    direct = build_send_client("http://127.0.0.1:9", 1.0, 1.0, 2)
    try:
        assert isinstance(proxied, httpx.Client) and isinstance(direct, WireClient)
    finally:
        proxied.close()
        direct.close()


def test_only_http_and_https(provider: Provider) -> None:
    with WireClient(1.0, 1.0, 1) as http, pytest.raises(httpx.UnsupportedProtocol):
        http.post("ftp://127.0.0.1/x", data={})


def test_a_connection_on_a_descriptor_above_1024_is_reused(provider: Provider) -> None:
    """select() refuses descriptors >= 1024; a busy worker has that many open."""
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with WireClient(1.0, 1.0, 2) as http:
            for i in range(3):
                assert http.post(provider.url, data={"a": str(i)}).status_code == 200
    finally:
        for fd in filler:
            os.close(fd)
    assert provider.connections == 1


def test_credentials_in_the_url_get_httpx() -> None:
    client = build_send_client("http://user:pw@127.0.0.1:9", 1.0, 1.0, 1)
    try:
        assert isinstance(client, httpx.Client)
    finally:
        client.close()
