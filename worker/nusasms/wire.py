"""A lean keep-alive HTTP/1.1 client for the send path: form POSTs over `http.client`.

Why not httpx here: on this path a worker makes one provider call per message, and httpx's
request and response models cost about 1.3 ms of CPU per call on our 2-core bench machine,
`http.client` about 0.25 ms (bench/results: worker CPU per message). Everything else that
talks HTTP (the v1.0 WhatsApp API, callbacks, alerts, DR callbacks) stays on httpx.

It speaks the part of httpx's interface NusaSMSClient uses: `post(url, data=form,
follow_redirects=False)` returns a response with `status_code`, `text` and `headers`, and a
failure raises the httpx exception class that says how far the request got (ConnectError,
ConnectTimeout, WriteError, ReadTimeout, ReadError, RemoteProtocolError...), so
`transport.HTTPX_STAGES` classifies both clients the same way. Redirects are never followed.
`post_many` sends several forms at once from one thread (one connection each, every
request written before any reply is read) and returns each reply or exception in order.

Connections: a bounded LIFO pool per (scheme, host, port); an idle connection is dropped
after `keepalive_expiry_s`, and one that the server closed (readable while idle) is never
reused, which narrows the race where a reused connection dies under a send (the outcome of
such a send is unknown, exactly as with httpx). When an HTTP(S) proxy is configured in the
environment, build_send_client returns an httpx.Client instead: this client has no proxies.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from functools import partial
from types import TracebackType
from typing import cast
from urllib.parse import urlencode, urlsplit

import httpx

_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class WireResponse:
    """A reply read to its end: what NusaSMSClient and transport.py look at."""

    status_code: int
    content: bytes
    headers: Message
    read_at: float = 0.0  # time.perf_counter() when the reply had been read to its end
    call_started_at: float = 0.0  # perf_counter() before its connection and write (post_many)

    @property
    def text(self) -> str:
        charset = self.headers.get_content_charset() or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:  # an unknown charset name
            return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _Request:
    key: tuple[str, str, int]  # (scheme, host, port): the pool
    host: str  # the Host header
    target: str
    body: bytes = field(repr=False)  # the form: it carries the account's password


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


# What post_many gives per request: the reply, or the httpx error post() would have raised.
Outcome = WireResponse | httpx.HTTPError | httpx.InvalidURL


@dataclass
class _Idle:
    conn: http.client.HTTPConnection
    since: float


class WireClient:
    """Form POSTs with explicit connect and read timeouts and a bounded keep-alive pool."""

    def __init__(self, connect_timeout_s: float, read_timeout_s: float, pool_size: int, *,
                 keepalive_expiry_s: float = 2.0, user_agent: str = "",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if connect_timeout_s <= 0 or read_timeout_s <= 0 or pool_size < 1:
            raise ValueError("timeouts must be > 0 s and pool_size >= 1")
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.pool_size = pool_size
        self.keepalive_expiry_s = keepalive_expiry_s
        self._headers = {"Content-Type": _FORM, "Accept": "*/*",
                         **({"User-Agent": user_agent} if user_agent else {})}
        self._ssl = ssl_context  # made once, on the first https connection
        self._idle: dict[tuple[str, str, int], list[_Idle]] = {}
        self._lock = threading.Lock()
        # A pool of pool_size: a call waits for a free slot at most as long as a connect.
        self._slots = threading.BoundedSemaphore(pool_size)
        self._closed = False
        # Called in the writing thread just before any request's bytes leave (the worker's
        # call journal, worker/journal.py): nothing may be written without it.
        self.on_write: Callable[[], None] | None = None

    def post(self, url: str, data: Mapping[str, str], *, follow_redirects: bool = False
             ) -> WireResponse:
        """POST `data` as a form to `url` and read the whole reply (never a redirect)."""
        if follow_redirects:
            raise ValueError("WireClient never follows redirects")
        request = self._request(url, data)
        if not self._slots.acquire(timeout=self.connect_timeout_s):
            raise httpx.PoolTimeout("no free connection within the connect timeout")
        try:
            conn = self._send(request)
            return self._receive(request.key, conn)
        finally:
            self._slots.release()

    def warm(self, url: str, n: int) -> None:
        """Open idle connections to `url`'s host until `n` (at most pool_size) are idle, so a
        post_many right after writes its requests at once instead of connecting first (the
        send path marks messages *calling* between the two: the shorter the gap, the fewer
        a crash leaves `unknown` without a call). A connect that fails is left for the
        calls themselves to meet."""
        try:
            key = self._request(url, {}).key
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return
        with self._lock:
            idle = len(self._idle.get(key, []))
        for _ in range(min(n, self.pool_size) - idle):
            try:
                conn = self._connect(key)
            except httpx.HTTPError:
                return
            self._release(key, conn)

    def post_many(self, requests: Sequence[tuple[str, Mapping[str, str]]], *,
                  not_after: float | None = None,
                  before_write: Callable[[int], bool] | None = None) -> list[Outcome]:
        """POST each (url, form) as `post` would, all at once from this thread; per request, in
        order, the reply or the exception `post` would have raised. Raises for none of them.

        In waves of one connection per request (as many as there are free pool slots, at
        least one): every request of a wave is written, then every reply read, each within
        `read_timeout_s` of its own write. After `not_after` (a time.monotonic() reading) no
        request is written but the very first: the rest get PoolTimeout (never written).
        `before_write(i)`, if given, is asked with request i's connection in hand, just
        before its write: False leaves it unwritten (PoolTimeout)."""
        outcomes: list[Outcome | None] = [None] * len(requests)
        pending: list[tuple[int, _Request]] = []
        for i, (url, data) in enumerate(requests):
            try:
                pending.append((i, self._request(url, data)))
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                outcomes[i] = exc
        first = True
        while pending:
            if not first and _past(not_after):
                for i, _ in pending:
                    outcomes[i] = httpx.PoolTimeout(
                        "no free connection before the batch's deadline")
                break
            # One slot blocking, the rest only if free: a wave never waits holding slots.
            if not self._slots.acquire(timeout=self.connect_timeout_s):
                for i, _ in pending:
                    outcomes[i] = httpx.PoolTimeout(
                        "no free connection within the connect timeout")
                break
            slots = 1
            while slots < len(pending) and self._slots.acquire(blocking=False):
                slots += 1
            try:
                self._wave(pending[:slots], outcomes, None if first else not_after,
                           not_after, before_write)
            finally:
                for _ in range(slots):
                    self._slots.release()
            pending = pending[slots:]
            first = False
        return cast(list[Outcome], outcomes)  # every request has its outcome now

    def _wave(self, wave: list[tuple[int, _Request]], outcomes: list[Outcome | None],
              first_after: float | None, rest_after: float | None,
              before_write: Callable[[int], bool] | None = None) -> None:
        """Write every request of `wave`, then read every reply into `outcomes`; the first
        request is not written after `first_after`, the others not after `rest_after`
        (a connect can be slow: each of them is checked just before its own)."""
        sent: list[tuple[int, _Request, http.client.HTTPConnection, float, float]] = []
        read = 0
        try:
            for j, (i, request) in enumerate(wave):
                if _past(first_after if j == 0 else rest_after):
                    outcomes[i] = httpx.PoolTimeout("not written before the batch's deadline")
                    continue
                # The call's clock starts before its connection and write, as a single
                # call's does: a reply can never look faster than the provider's latency.
                started = time.perf_counter()
                try:
                    conn = self._send(request, None if before_write is None
                                      else partial(before_write, i))
                except httpx.HTTPError as exc:
                    outcomes[i] = exc
                else:
                    sent.append((i, request, conn, time.monotonic() + self.read_timeout_s,
                                 started))
            for i, request, conn, deadline, call_started_at in sent:
                try:
                    outcomes[i] = self._receive(request.key, conn, deadline, call_started_at)
                except httpx.HTTPError as exc:
                    outcomes[i] = exc
                read += 1
        finally:  # something other than an httpx error escaped: the unread are unusable
            for _, _, conn, _, _ in sent[read:]:
                conn.close()

    def _request(self, url: str, data: Mapping[str, str]) -> _Request:
        """The request for a POST of `data` to `url`, or the httpx error for a bad URL."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"cannot POST to {parts.scheme or '?'}:// URLs")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise httpx.InvalidURL(f"bad port in the provider URL: {exc}") from None
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return _Request((parts.scheme, parts.hostname, port), parts.netloc.rpartition("@")[2],
                        target, urlencode(data).encode())

    def _send(self, request: _Request, go: Callable[[], bool] | None = None
              ) -> http.client.HTTPConnection:
        """A connection with `request` written on it (closed again if the write fails);
        `go()`, if given, is asked once the connection is in hand: False writes nothing
        (PoolTimeout) and the connection goes back to the pool."""
        conn = self._reuse(request.key) or self._connect(request.key)
        if go is not None:
            try:
                going = go()
            except BaseException:
                self._release(request.key, conn)
                raise
            if not going:
                self._release(request.key, conn)
                raise httpx.PoolTimeout("not written: the caller withdrew it")
        try:
            try:
                conn.putrequest("POST", request.target, skip_host=True,
                                skip_accept_encoding=True)
                conn.putheader("Host", request.host)
                for name, value in self._headers.items():
                    conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(request.body)))
                if self.on_write is not None:
                    self.on_write()
                conn.endheaders(request.body)
            except (OSError, http.client.HTTPException) as exc:
                # Not every byte left: with Content-Length no server acts on a partial form.
                raise httpx.WriteError(f"{type(exc).__name__}: {exc}") from None
            except ValueError as exc:  # a header or target http.client refuses to write
                raise httpx.LocalProtocolError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _receive(self, key: tuple[str, str, int], conn: http.client.HTTPConnection,
                 deadline: float | None = None, call_started_at: float = 0.0) -> WireResponse:
        """Read the reply on `conn` (by `deadline`, time.monotonic(), if given), then pool
        the connection or close it."""
        try:
            if deadline is not None:
                conn.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                reply = conn.getresponse()
                content = reply.read()
            except TimeoutError as exc:
                raise httpx.ReadTimeout(f"no reply within {self.read_timeout_s} s") from exc
            except http.client.HTTPException as exc:  # closed, truncated, malformed
                raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from None
            except OSError as exc:
                raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        read_at = time.perf_counter()
        if reply.will_close or self._closed:
            conn.close()
        else:
            if deadline is not None:
                conn.sock.settimeout(self.read_timeout_s)
            self._release(key, conn)
        return WireResponse(reply.status, content, reply.headers, read_at, call_started_at)

    def _connect(self, key: tuple[str, str, int]) -> http.client.HTTPConnection:
        scheme, host, port = key
        conn: http.client.HTTPConnection
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, port, timeout=self.connect_timeout_s,
                                               context=self._ssl)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.connect_timeout_s)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise httpx.ConnectTimeout(f"no connection within {self.connect_timeout_s} s"
                                       ) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake
            conn.close()
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        # One timeout for the rest of the connection's life (settimeout per request costs
        # syscalls): the read's. A form of a few hundred bytes fits the socket's send buffer,
        # so a write does not wait unless the connection is already dead.
        conn.sock.settimeout(self.read_timeout_s)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _reuse(self, key: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        """The newest idle connection still fit to send on, if any."""
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                entry = idle.pop()
            if now - entry.since < self.keepalive_expiry_s and _idle_open(entry.conn):
                return entry.conn
            entry.conn.close()

    def _release(self, key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.pool_size:
                idle.append(_Idle(conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection (calls in flight close theirs when they end)."""
        with self._lock:
            self._closed = True
            idle = [e.conn for entries in self._idle.values() for e in entries]
            self._idle.clear()
        for conn in idle:
            conn.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _idle_open(conn: http.client.HTTPConnection) -> bool:
    """True if an idle connection is still fit to send on: nothing to read (a connection
    the server closed reads as EOF). poll(), not select(): any descriptor number works."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):  # closed under us: not fit
        return False


def needs_httpx(url: str) -> bool:
    """True if `url` needs what only httpx does here: a proxy from the environment
    (HTTP(S)_PROXY or ALL_PROXY, unless NO_PROXY), or credentials in the URL."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return True
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")
