"""Status callbacks: real worker and beat, the sandbox, and a local HTTP receiver that checks
signatures, sees every state of a message's life in order, and fails once to force a retry."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from producer.client import KirimClient
from producer.core.contract import State
from producer.core.settings import Settings
from tests.kirim_stack import Workers, wait_for, wait_states

pytestmark = pytest.mark.timeout(120)

SECRET = "callback-secret-for-tests"
ALL_QUEUES = "otp,sms,wa,maintenance,reports"


@dataclass
class Receiver:
    """A local HTTP endpoint that records every POST: answers 500 to the first `fail_first`,
    `status` after; with `hang_s`, holds each request that long or until the client gives up."""

    fail_first: int = 0
    status: int = 200
    hang_s: float = 0.0
    hits: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    in_flight: int = 0
    most_in_flight: int = 0  # the most requests it held at one time

    def record(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = 500 if len(self.hits) < self.fail_first else self.status
            self.hits.append({"headers": headers, "body": body, "status": status,
                              "t": time.time()})
            return status

    def json_ok(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 200, in arrival order."""
        with self.lock:
            return [json.loads(h["body"]) for h in self.hits if h["status"] == 200]

    def by_event(self) -> dict[str, list[dict[str, Any]]]:
        """Hits grouped by X-Kirim-Event, each group in arrival order."""
        with self.lock:
            out: dict[str, list[dict[str, Any]]] = {}
            for hit in self.hits:
                out.setdefault(hit["headers"]["x-kirim-event"], []).append(hit)
            return out

    def handle(self, conn: socket.socket, headers: dict[str, str], body: bytes) -> int:
        """Record one request and answer it (after holding it, if this receiver hangs)."""
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            status = self.record(headers, body)
            if self.hang_s:
                _hold(conn, self.hang_s)
            return status
        finally:
            with self.lock:
                self.in_flight -= 1


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


@contextlib.contextmanager
def serving_receiver(**options: Any) -> Iterator[Receiver]:
    """A Receiver (with `options`) served on 127.0.0.1, a free port, in a thread."""
    rec = Receiver(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = rec.handle(self.connection, headers, body)
            with contextlib.suppress(OSError):  # a client that gave up hears nothing
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A callback receiver for one test."""
    with serving_receiver() as rec:
        yield rec


def _stack(kirim_env: dict[str, str], tmp_path: Path) -> tuple[Workers, Settings]:
    env = {**kirim_env, "KIRIM_STATUS_CALLBACK_SECRET": SECRET}
    pool = Workers(env, tmp_path)
    pool.start(queues=ALL_QUEUES)
    pool.beat()
    return pool, Settings(**{k.removeprefix("KIRIM_").lower(): v  # type: ignore[arg-type]
                             for k, v in env.items()})


def states_posted(receiver: Receiver, mid: str) -> list[str]:
    """States the receiver took (answered 200) for one message, in arrival order."""
    return [b["state"] for b in receiver.json_ok() if b["id"] == mid]


def life(kirim: KirimClient, mid: str) -> list[str]:
    """The message's states after `accepted` (which is the creation, not a change)."""
    return [e["state"] for e in kirim.status(mid).timeline][1:]


def all_posted_in_order(kirim: KirimClient, receiver: Receiver, ids: list[str]) -> bool:
    """Whether the receiver took every state change of every message, in order."""
    return all(states_posted(receiver, mid) == life(kirim, mid) for mid in ids)


def test_every_state_change_is_posted_signed_and_in_order(kirim_env, tmp_path, sandbox,
                                                          receiver):
    pool, settings = _stack(kirim_env, tmp_path)
    try:
        with KirimClient(settings, source="shop") as kirim:
            ids = [kirim.send_sms(f"62812555{i:05d}", f"order {i}", callback_url=receiver.url)
                   for i in range(3)]
            dead = kirim.send_sms("6281190013000", "bad number", callback_url=receiver.url)
            quiet = kirim.send_sms("6281255599999", "no callback")
            wait_states(kirim, [*ids, quiet], {State.SENT, State.DELIVERED})
            wait_states(kirim, [dead], {State.DEAD})
            wait_for(lambda: all_posted_in_order(kirim, receiver, [*ids, dead]), 30,
                     "every state change of every message posted in order")
    finally:
        pool.stop_all()
    bodies = receiver.json_ok()
    assert {b["id"] for b in bodies} == {*ids, dead}, "no callback without a callback_url"
    assert states_posted(receiver, ids[0])[:3] == ["queued", "sending", "sent"]
    assert states_posted(receiver, dead)[-1] == "dead"
    assert all(set(b) == {"id", "state", "from", "code", "provider_id", "at"} for b in bodies)
    for hit in receiver.hits:
        want = "sha256=" + hmac.new(SECRET.encode(), hit["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(hit["headers"]["x-kirim-signature"], want)
        assert hit["headers"]["x-kirim-timestamp"].isdigit()


def test_a_refused_callback_is_retried_and_order_is_kept(kirim_env, tmp_path, sandbox,
                                                         receiver):
    receiver.fail_first = 1
    pool, settings = _stack(kirim_env, tmp_path)
    try:
        with KirimClient(settings, source="shop") as kirim:
            mid = kirim.send_sms("6281255500001", "retry me", callback_url=receiver.url)
            wait_states(kirim, [mid], {State.SENT, State.DELIVERED})
            wait_for(lambda: all_posted_in_order(kirim, receiver, [mid]), 30,
                     "the refused callback retried and every state posted in order")
    finally:
        pool.stop_all()
    first, *rest = receiver.hits
    assert first["status"] == 500
    event = first["headers"]["x-kirim-event"]
    retried = [h for h in rest if h["headers"]["x-kirim-event"] == event]
    assert retried and retried[0]["status"] == 200 and retried[0]["body"] == first["body"]
