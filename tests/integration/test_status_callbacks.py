"""Status callbacks: real worker and beat, the sandbox, and a local HTTP receiver that checks
signatures, sees every state of a message's life in order, and fails once to force a retry."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from producer.client import KirimClient
from producer.contract import State
from producer.settings import Settings
from tests.kirim_stack import Workers, wait_for, wait_states

pytestmark = pytest.mark.timeout(120)

SECRET = "callback-secret-for-tests"
ALL_QUEUES = "otp,sms,wa,maintenance,reports"


@dataclass
class Receiver:
    """A local HTTP endpoint that records every POST; answers 500 to the first `fail_first`."""

    fail_first: int = 0
    hits: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def record(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = 500 if len(self.hits) < self.fail_first else 200
            self.hits.append({"headers": headers, "body": body, "status": status})
            return status

    def json_ok(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 200, in arrival order."""
        with self.lock:
            return [json.loads(h["body"]) for h in self.hits if h["status"] == 200]


@contextlib.contextmanager
def serving_receiver() -> Iterator[Receiver]:
    """A Receiver served on 127.0.0.1, a free port, in a thread."""
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = rec.record({k.lower(): v for k, v in self.headers.items()}, body)
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


def _states_posted(receiver: Receiver, mid: str) -> list[str]:
    return [b["state"] for b in receiver.json_ok() if b["id"] == mid]


def _life(kirim: KirimClient, mid: str) -> list[str]:
    """The message's states after `accepted` (which is the creation, not a change)."""
    return [e["state"] for e in kirim.status(mid).timeline][1:]


def _all_posted_in_order(kirim: KirimClient, receiver: Receiver, ids: list[str]) -> bool:
    return all(_states_posted(receiver, mid) == _life(kirim, mid) for mid in ids)


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
            wait_for(lambda: _all_posted_in_order(kirim, receiver, [*ids, dead]), 30,
                     "every state change of every message posted in order")
    finally:
        pool.stop_all()
    bodies = receiver.json_ok()
    assert {b["id"] for b in bodies} == {*ids, dead}, "no callback without a callback_url"
    assert _states_posted(receiver, ids[0])[:3] == ["queued", "sending", "sent"]
    assert _states_posted(receiver, dead)[-1] == "dead"
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
            wait_for(lambda: _all_posted_in_order(kirim, receiver, [mid]), 30,
                     "the refused callback retried and every state posted in order")
    finally:
        pool.stop_all()
    first, *rest = receiver.hits
    assert first["status"] == 500
    event = first["headers"]["x-kirim-event"]
    retried = [h for h in rest if h["headers"]["x-kirim-event"] == event]
    assert retried and retried[0]["status"] == 200 and retried[0]["body"] == first["body"]
