"""A worker SIGKILLed between a message's *calling* mark and its request's write: the next
worker on the host reads the dead worker's call journal (worker/journal.py) and requeues the
message, which is then sent once, instead of leaving it `unknown` without a call. Killed
after the write, the message is left to the lease sweep: the provider may have it."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.core.contract import State
from tests.support.waiting import wait_for, wait_states
from worker.journal import WRITING, CallJournal
from worker.nusasms.wire import WireClient

pytestmark = [pytest.mark.timeout(90)]

# Long enough that nothing but the kill ends the first worker's call.
HANGING = {"KIRIM_NUSASMS_CONNECT_TIMEOUT_S": "30", "KIRIM_NUSASMS_READ_TIMEOUT_S": "30"}


@pytest.fixture
def unanswered_connect() -> Iterator[str]:
    """A provider URL whose connections never complete: its accept queue is full."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname())  # the one the queue holds
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    filler.close()
    server.close()


class SilentProvider:
    """Accepts, reads every request, never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.received = bytearray()
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        while chunk := _recv(conn):
            self.received += chunk

    def close(self) -> None:
        self.server.close()
        for conn in self.conns:
            conn.close()


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(65536)
    except OSError:
        return b""


@pytest.fixture
def silent_provider() -> Iterator[SilentProvider]:
    provider = SilentProvider()
    yield provider
    provider.close()


def _journals_of(directory: Path, pid: int) -> list[Path]:
    return [p for p in directory.glob("*.journal") if f"-{pid}-" in p.name]


def test_killed_after_the_mark_before_the_write_the_next_worker_requeues_it(
        kirim, workers, sandbox, unanswered_connect, tmp_path):
    first = workers.start(concurrency=2, extra_env={**HANGING,
                                                   "KIRIM_NUSASMS_URL": unanswered_connect})
    mid = kirim.send("sms", "6281300000001", "journal: marked, never written")
    wait_for(lambda: (r := kirim.store.get(mid)) is not None and r.get("calling") == "1",
             30, "the first worker's *calling* mark")
    workers.kill(first, signal.SIGKILL)  # in its connect: nothing written
    record = kirim.store.get(mid)
    assert record is not None and record.state == State.SENDING
    assert _journals_of(tmp_path / "journal", first.pid), "the dead worker left no journal"

    workers.start(concurrency=2)  # on the sandbox; no beat, so no lease sweep either
    assert wait_states(kirim, [mid], {State.SENT, State.DELIVERED, State.UNKNOWN},
                       timeout_s=30) != [State.UNKNOWN]
    record = kirim.store.get(mid)
    assert record is not None
    assert sandbox.counts()[("6281300000001", "journal: marked, never written")] == 1
    assert record.get("attempts") == "1", "the unwritten attempt was not given back"
    notes = [e.get("note", "") for e in record.timeline]
    assert any("call journal" in n for n in notes), notes
    assert not _journals_of(tmp_path / "journal", first.pid), "the settled journal stayed"


def test_killed_after_the_write_the_message_is_left_to_the_lease_sweep(
        kirim, workers, silent_provider, tmp_path):
    first = workers.start(concurrency=2, extra_env={**HANGING,
                                                   "KIRIM_NUSASMS_URL": silent_provider.url})
    text = "journal: written, never answered"
    mid = kirim.send("sms", "6281300000002", text)
    wait_for(lambda: b"journal%3A+written" in silent_provider.received, 30,
             "the request at the provider")
    workers.kill(first, signal.SIGKILL)
    workers.start(concurrency=2, extra_env=HANGING)
    wait_for(lambda: not _journals_of(tmp_path / "journal", first.pid), 30,
             "the next worker's scan of the dead worker's journal")
    record = kirim.store.get(mid)
    assert record is not None
    assert (record.state, record.get("calling")) == (State.SENDING, "1"), \
        "a message the provider may have was requeued: it could be sent twice"


def test_the_wire_client_flips_the_slot_before_its_bytes_leave(sandbox, tmp_path):
    journal = CallJournal(tmp_path, "t0000000000b")
    client = WireClient(1.0, 2.0, 2)
    at_flip: list[tuple[int, int]] = []

    def on_write() -> None:
        journal.writing()
        assert journal.path is not None
        at_flip.append((journal.path.read_bytes()[0], sandbox.stats()["requests"]))

    client.on_write = on_write
    journal.intend("m1", "c1")
    reply = client.post(sandbox.url + "/api/command", {"user": "demo", "password": "demo",
                                                       "cmd": "CREDITS", "output": "json"})
    assert reply.status_code == 200
    [(slot, requests_before)] = at_flip
    assert slot == WRITING
    assert sandbox.stats()["requests"] == requests_before + 1, "flipped after the write"
    journal.close()
    client.close()
