"""A worker SIGKILLed between a message's *calling* mark and its request's write: the next
worker on the host reads the dead worker's call journal (worker/journal.py) and requeues the
message, which is then sent once, instead of leaving it `unknown` without a call. Killed
after the write, the message is left to the lease sweep: the provider may have it."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from producer.core.contract import State
from tests.support.processes import free_port
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from worker.journal import WRITING, CallJournal
from worker.nusasms.wire import WireClient
from worker.services import journal_writes

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

    port = free_port()  # on the sandbox; no beat, so no lease sweep either
    workers.start(concurrency=2, extra_env={"KIRIM_METRICS_PORT": str(port)})
    assert wait_states(kirim, [mid], {State.SENT, State.DELIVERED, State.UNKNOWN},
                       timeout_s=30) != [State.UNKNOWN]
    record = kirim.store.get(mid)
    assert record is not None
    assert sandbox.counts()[("6281300000001", "journal: marked, never written")] == 1
    assert record.get("attempts") == "1", "the unwritten attempt was not given back"
    notes = [e.get("note", "") for e in record.timeline]
    assert any("call journal" in n for n in notes), notes
    assert not _journals_of(tmp_path / "journal", first.pid), "the settled journal stayed"
    scrape = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert "kirim_unwritten_requeued_total 1.0" in scrape.splitlines()


def test_killed_after_the_write_the_message_is_left_to_the_lease_sweep(
        kirim, workers, silent_provider, tmp_path):
    first = workers.start(concurrency=2, extra_env={**HANGING,
                                                   "KIRIM_NUSASMS_URL": silent_provider.url})
    text = "journal: written, never answered"
    mid = kirim.send("sms", "6281300000002", text)
    wait_for(lambda: b"journal%3A+written" in silent_provider.received, 30,
             "the request at the provider")
    assert _journals_of(tmp_path / "journal", first.pid), "the worker kept no journal"
    workers.kill(first, signal.SIGKILL)
    workers.start(concurrency=2, extra_env=HANGING)
    wait_for(lambda: not _journals_of(tmp_path / "journal", first.pid), 30,
             "the next worker's scan of the dead worker's journal")
    record = kirim.store.get(mid)
    assert record is not None
    assert (record.state, record.get("calling")) == (State.SENDING, "1"), \
        "a message the provider may have was requeued: it could be sent twice"


def test_a_batch_killed_mid_write_requeues_its_unwritten_calls_and_only_those(
        kirim, workers, sandbox, silent_provider, tmp_path):
    # One connection: the batch's first call is written and waits for a reply that never
    # comes; the other two are marked *calling* (one step) and wait for the connection.
    first = workers.start(concurrency=1, extra_env={
        **HANGING, "KIRIM_NUSASMS_URL": silent_provider.url, "KIRIM_NUSASMS_POOL_SIZE": "1"})
    texts = {f"62813000001{i}": f"journal batch {i}" for i in range(3)}
    ids = [r.id for r in kirim.send_many([{"channel": "sms", "to": to, "text": t}
                                          for to, t in texts.items()])]
    wait_for(lambda: b"journal+batch" in silent_provider.received, 30, "the first call")

    def marked() -> list[str | None]:
        return [(r.get("calling") if (r := kirim.store.get(i)) else None) for i in ids]

    wait_for(lambda: marked() == ["1", "1", "1"], 10, "the batch's marks")
    written = [i for i, t in zip(ids, texts.values(), strict=True)
               if t.replace(" ", "+").encode() in silent_provider.received]
    assert len(written) == 1, "the one connection carried more than one call"
    workers.kill(first, signal.SIGKILL)

    workers.start(concurrency=2, extra_env=HANGING)  # on the sandbox
    unwritten = [i for i in ids if i not in written]
    wait_states(kirim, unwritten, {State.SENT, State.DELIVERED}, timeout_s=30)
    record = kirim.store.get(written[0])
    assert record is not None
    assert (record.state, record.get("calling")) == (State.SENDING, "1")
    counts = sandbox.counts()
    assert sorted(counts.get((to, t), 0) for to, t in texts.items()) == [0, 1, 1]


def test_without_a_journal_a_batch_marks_each_call_just_before_its_write(
        kirim, workers, silent_provider, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    first = workers.start(concurrency=1, extra_env={
        **HANGING, "KIRIM_NUSASMS_URL": silent_provider.url, "KIRIM_NUSASMS_POOL_SIZE": "1",
        "KIRIM_WORKER_JOURNAL_DIR": str(blocker / "journal")})
    ids = [r.id for r in kirim.send_many([{"channel": "sms", "to": f"62813000002{i}",
                                           "text": f"unjournalled {i}"} for i in range(3)])]
    wait_for(lambda: b"unjournalled" in silent_provider.received, 30, "the first call")
    time.sleep(0.5)  # what else the batch would mark, it has marked by now
    workers.kill(first, signal.SIGKILL)
    calling = sorted((r.get("calling") or "0") if (r := kirim.store.get(i)) else "-"
                     for i in ids)
    # The written call is marked; the two waiting for the connection are not (the lease
    # sweep requeues them), where one step would have marked all three for `unknown`.
    assert calling == ["0", "0", "1"]


def test_the_wire_client_flips_the_slot_before_its_first_byte_leaves(sandbox, tmp_path):
    journal = CallJournal(tmp_path, "t0000000000b")
    at_first_byte: list[int] = []

    class Watched(WireClient):
        def _connect(self, key):  # type: ignore[no-untyped-def]
            conn = super()._connect(key)
            send = conn.send

            def watched(data):  # type: ignore[no-untyped-def]
                assert journal.path is not None
                at_first_byte.append(journal.path.read_bytes()[0])
                return send(data)

            conn.send = watched  # type: ignore[method-assign]
            return conn

    client = Watched(1.0, 2.0, 2)
    journal_writes(client, journal)
    journal.intend("m1", "c1")
    reply = client.post(sandbox.url + "/api/command", {"user": "demo", "password": "demo",
                                                       "cmd": "CREDITS", "output": "json"})
    assert reply.status_code == 200
    assert at_first_byte and at_first_byte[0] == WRITING
    journal.close()
    client.close()


def test_every_provider_client_of_a_worker_tells_the_journal(kirim_env):
    from worker.app import create_app
    from worker.services import build_services

    settings = settings_from_env({**kirim_env, "KIRIM_NUSASMS_API_KEY": "k" * 32})
    svc = build_services(settings, create_app(settings))
    try:
        assert svc.journal is not None
        assert svc.send_http.on_write == svc.journal.writing  # type: ignore[union-attr]
        assert svc.journal.writing in svc.http.event_hooks["request"]  # API v1.0 (WhatsApp)
        assert svc.wa_client is not None
    finally:
        svc.close()
