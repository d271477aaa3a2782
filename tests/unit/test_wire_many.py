"""WireClient.post_many against real sockets: requests overlap, replies come back in order,
each failure stays with its own request, the wave's read deadline, the pool bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from worker.nusasms.wire import WireClient, WireResponse


class Server(ThreadingHTTPServer):
    """Answers each POST with its path and body; `/drop` closes without a reply, `/hang` holds
    the reply until the test ends. Counts accepts and connections open at once."""

    daemon_threads = True
    request_queue_size = 64  # eight connects at once must not overflow the accept queue

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.accepts = self.open = self.max_open = 0
        self.barrier: threading.Barrier | None = None  # every request waits for the others
        self.delay_s = 0.0
        self.release = threading.Event()  # ends the hangs

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a reply to a client that gave up: expected here


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.accepts += 1
            self.server.open += 1
            self.server.max_open = max(self.server.max_open, self.server.open)

    def finish(self) -> None:
        with self.server.lock:
            self.server.open -= 1
        super().finish()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/drop":
            self.close_connection = True
            return
        if self.path == "/hang":
            self.server.release.wait(10)
        if self.server.barrier is not None:
            self.server.barrier.wait()
        time.sleep(self.server.delay_s)
        payload = f"{self.path} {body.decode()}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def _text(outcome: object) -> str:
    assert isinstance(outcome, WireResponse), outcome
    assert outcome.status_code == 200
    return outcome.text


def test_requests_overlap_and_replies_keep_their_order(server: Server) -> None:
    server.barrier = threading.Barrier(8, timeout=2.0)  # broken unless all 8 arrive together
    server.delay_s = 0.3
    requests = [(f"{server.url}/r{i}", {"n": str(i)}) for i in range(8)]
    with WireClient(1.0, 2.0, 8) as http:
        started = time.perf_counter()
        outcomes = http.post_many(requests)
        wall_s = time.perf_counter() - started
    assert [_text(o) for o in outcomes] == [f"/r{i} n={i}" for i in range(8)]
    assert not server.barrier.broken and server.accepts == 8
    assert wall_s < 0.3 * 2
    read_at = [o.read_at for o in outcomes if isinstance(o, WireResponse)]
    assert read_at == sorted(read_at)


def test_each_failure_stays_with_its_request(server: Server) -> None:
    url = server.url
    requests = [(f"{url}/a", {"n": "1"}), ("ftp://127.0.0.1/x", {}),
                ("http://127.0.0.1:99999/x", {}), (f"{url}/drop", {}), (f"{url}/hang", {}),
                (f"{url}/b", {"n": "2"}), (f"{url}/c", {"n": "3"})]
    with WireClient(1.0, 0.3, 8) as http:
        outcomes = http.post_many(requests)
        assert [type(o) for o in outcomes] == [
            WireResponse, httpx.UnsupportedProtocol, httpx.InvalidURL,
            httpx.RemoteProtocolError, httpx.ReadTimeout, WireResponse, WireResponse]
        assert [_text(outcomes[i]) for i in (0, 5, 6)] == ["/a n=1", "/b n=2", "/c n=3"]
        # The three good connections went back to the pool and serve the next wave.
        accepts = server.accepts
        again = http.post_many([(f"{url}/d{i}", {}) for i in range(3)])
        assert [_text(o) for o in again] == [f"/d{i} " for i in range(3)]
        assert server.accepts == accepts
        # Each failure is the very one post() raises for the same request.
        for (url_, form), outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, WireResponse):
                continue
            with pytest.raises(type(outcome)) as caught:
                http.post(url_, data=form)
            assert str(caught.value) == str(outcome)


def test_every_read_ends_within_the_timeout_of_the_wave(server: Server) -> None:
    with WireClient(1.0, 0.3, 4) as http:
        started = time.perf_counter()
        outcomes = http.post_many([(f"{server.url}/hang", {})] * 4)
        wall_s = time.perf_counter() - started
        assert all(type(o) is httpx.ReadTimeout for o in outcomes)
        assert str(outcomes[0]) == "no reply within 0.3 s"
        assert 0.3 <= wall_s < 0.3 + 0.25  # not 4 x 0.3 s


def test_pooled_connections_get_the_full_read_timeout_back(server: Server) -> None:
    server.delay_s = 0.2  # the second read of the wave has ~0.1 s left when it starts
    with WireClient(1.0, 0.3, 4) as http:
        assert [_text(o) for o in http.post_many([(server.url, {})] * 2)] == ["/ "] * 2
        idle = [entry.conn.sock for entries in http._idle.values() for entry in entries]
        assert len(idle) == 2 and all(sock.gettimeout() == 0.3 for sock in idle)
        assert _text(http.post(server.url, data={})) == "/ "


def test_a_batch_larger_than_the_pool_goes_in_waves(server: Server) -> None:
    server.delay_s = 0.1
    with WireClient(1.0, 2.0, 2) as http:
        outcomes = http.post_many([(f"{server.url}/{i}", {}) for i in range(5)])
    assert [_text(o) for o in outcomes] == [f"/{i} " for i in range(5)]
    assert server.max_open <= 2 and server.accepts == 2


def test_threads_sharing_a_small_pool_all_finish(server: Server) -> None:
    """No thread waits for a slot while holding one: no deadlock, the bound holds."""
    server.delay_s = 0.05
    results: dict[int, list[str]] = {}
    with WireClient(2.0, 2.0, 2) as http:
        def batch(t: int) -> None:
            outcomes = http.post_many([(f"{server.url}/{t}-{i}", {}) for i in range(4)])
            results[t] = [_text(o) for o in outcomes]

        threads = [threading.Thread(target=batch, args=(t,)) for t in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert results == {t: [f"/{t}-{i} " for i in range(4)] for t in range(3)}
    assert server.max_open <= 2


def test_no_free_slot_is_a_pool_timeout_for_every_request(server: Server) -> None:
    server.delay_s = 0.5
    with WireClient(0.1, 2.0, 1) as http:
        busy = threading.Thread(target=http.post, args=(server.url, {}))
        busy.start()
        time.sleep(0.1)
        outcomes = http.post_many([(server.url, {}), ("ftp://x/", {}), (server.url, {})])
        busy.join()
    assert [type(o) for o in outcomes] == [httpx.PoolTimeout, httpx.UnsupportedProtocol,
                                           httpx.PoolTimeout]


def test_nothing_to_send() -> None:
    with WireClient(1.0, 1.0, 1) as http:
        assert http.post_many([]) == []


def test_no_request_but_the_first_is_written_after_the_deadline(server: Server) -> None:
    """Past `not_after` the very first request still goes (as a single call would); every
    other one, in its wave or a later one, is never written and says PoolTimeout (not sent:
    retried)."""
    server.delay_s = 0.1
    with WireClient(1.0, 2.0, 2) as http:
        outcomes = http.post_many([(f"{server.url}/{i}", {}) for i in range(5)],
                                  not_after=time.monotonic() - 1.0)
    assert _text(outcomes[0]) == "/0 "
    assert [type(o) for o in outcomes[1:]] == [httpx.PoolTimeout] * 4
    assert server.accepts == 1


def test_a_later_wave_does_not_start_after_the_deadline(server: Server) -> None:
    server.delay_s = 0.3
    with WireClient(1.0, 2.0, 2) as http:
        outcomes = http.post_many([(f"{server.url}/{i}", {}) for i in range(5)],
                                  not_after=time.monotonic() + 0.1)
    assert [_text(o) for o in outcomes[:2]] == ["/0 ", "/1 "]
    assert [type(o) for o in outcomes[2:]] == [httpx.PoolTimeout] * 3
    assert server.accepts == 2


def test_a_request_never_shows_its_form_in_a_repr() -> None:
    from worker.nusasms.wire import _Request

    request = _Request(("http", "h", 80), "h", "/", b"user=u&password=s3cret")
    assert "s3cret" not in repr(request)


def test_warm_opens_idle_connections_that_post_many_then_uses(server: Server) -> None:
    def accepted(n: int) -> bool:  # the server's threads count a connection a moment later
        deadline = time.monotonic() + 2.0
        while server.accepts < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        return server.accepts == n

    with WireClient(1.0, 2.0, 4) as http:
        http.warm(server.url, 6)  # at most the pool's 4
        assert accepted(4)
        http.warm(server.url, 3)  # enough idle already: nothing more
        assert accepted(4)
        outcomes = http.post_many([(f"{server.url}/{i}", {}) for i in range(4)])
    assert [_text(o) for o in outcomes] == [f"/{i} " for i in range(4)]
    assert server.accepts == 4  # written on the warmed connections
