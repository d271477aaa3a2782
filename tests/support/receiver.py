"""The local HTTP receiver: one endpoint for status callbacks, alert and inbound webhooks and
the sandbox's pushes. It records every request and can refuse the first few, answer with any
status, or hang; and what a test reads from it (callbacks of a message, alert levels)."""

from __future__ import annotations

import contextlib
import json
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from producer.client import KirimClient

FORM = "application/x-www-form-urlencoded"


@dataclass
class Receiver:
    """Records every GET and POST: answers `fail_status` to the first `fail_first`, `status`
    after; with `hang_s`, holds each request that long or until the client gives up; with
    `location`, sends it as a Location header (a redirect, with a 3xx status).

    `url` is the endpoint to give kirim (…/hook); `base` is the server's root, for tests that
    pick their own paths. A hit is {method, path, query, form, headers, body, status, t}.
    """

    fail_first: int = 0
    fail_status: int = 500
    status: int = 200
    hang_s: float = 0.0
    location: str = ""  # sent as a Location header (with a 3xx status: a redirect)
    hits: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""
    in_flight: int = 0
    most_in_flight: int = 0  # the most requests it held at one time
    arrivals: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI of each handshake

    @property
    def url(self) -> str:
        """The endpoint to configure as a callback or webhook URL."""
        return f"{self.base}/hook"

    def record(self, method: str, target: str, headers: dict[str, str], body: bytes) -> int:
        """Keep one request; the status to answer it with."""
        parts = urlsplit(target)
        is_form = headers.get("content-type", "").startswith(FORM)
        hit: dict[str, Any] = {
            "method": method, "path": parts.path, "query": _first(parse_qs(parts.query)),
            "form": _first(parse_qs(body.decode(errors="replace"))) if is_form else {},
            "headers": headers, "body": body, "t": time.time()}
        with self.lock:
            status = self.fail_status if len(self.hits) < self.fail_first else self.status
            hit["status"] = status
            self.hits.append(hit)
        self.arrivals.put(hit)
        return status

    def next(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """The next request in arrival order; queue.Empty if none comes within `timeout_s`."""
        return self.arrivals.get(timeout=timeout_s)

    def json_ok(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 200, in arrival order."""
        with self.lock:
            return [json.loads(h["body"]) for h in self.hits if h["status"] == 200]

    def by_event(self) -> dict[str, list[dict[str, Any]]]:
        """Hits grouped by webhook-id (the event: the same on every retry), in arrival order."""
        with self.lock:
            out: dict[str, list[dict[str, Any]]] = {}
            for hit in self.hits:
                out.setdefault(hit["headers"]["webhook-id"], []).append(hit)
            return out

    def alert_levels(self, kind: str) -> list[str]:
        """Levels of the alerts of one kind (balance, expiry, circuit:sms, …) it took."""
        return [b["level"] for b in self.json_ok() if b.get("kind") == kind]

    def handle(self, conn: socket.socket, method: str, target: str, headers: dict[str, str],
               body: bytes) -> int:
        """Record one request and answer it (after holding it, if this receiver hangs)."""
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            status = self.record(method, target, headers, body)
            if self.hang_s:
                _hold(conn, self.hang_s)
            return status
        finally:
            with self.lock:
                self.in_flight -= 1


def _first(values: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in values.items()}


def _hold(conn: socket.socket, seconds: float) -> None:
    """Wait `seconds`, or less if the client closes the connection (it timed out)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select([conn], [], [], 0.02)
        try:
            if readable and conn.recv(1, socket.MSG_PEEK) == b"":
                return
        except OSError:
            return


def _handler_for(rec: Receiver) -> type[BaseHTTPRequestHandler]:
    """A request handler class that hands every GET and POST to `rec`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = rec.handle(self.connection, self.command, self.path, headers, body)
            with contextlib.suppress(OSError):  # a client that gave up hears nothing
                self.send_response(status)
                if rec.location:
                    self.send_header("Location", rec.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serving_receiver(tls: tuple[Path, Path] | None = None, **options: Any) -> Iterator[Receiver]:
    """A Receiver (with `options`) served on 127.0.0.1, a free port, in a thread; with
    `tls` (certificate file, key file) over HTTPS, recording the SNI of each handshake."""
    rec = Receiver(**options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(rec))
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)

        def remember(_sock: Any, name: str | None, _ctx: Any) -> None:
            rec.server_names.append(name)

        context.sni_callback = remember
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    rec.base = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def states_posted(receiver: Receiver, mid: str) -> list[str]:
    """States the receiver took (answered 200) for one message, in arrival order."""
    return [b["state"] for b in receiver.json_ok() if b["id"] == mid]


def life(kirim: KirimClient, mid: str) -> list[str]:
    """The message's states after `accepted` (which is the creation, not a change)."""
    return [e["state"] for e in kirim.status(mid).timeline][1:]


def all_posted_in_order(kirim: KirimClient, receiver: Receiver, ids: list[str]) -> bool:
    """Whether the receiver took every state change of every message, in order."""
    return all(states_posted(receiver, mid) == life(kirim, mid) for mid in ids)
