"""A small asyncio HTTP/1.1 server: keep-alive, Content-Length and chunked bodies.

Hand-written rather than uvicorn because the sandbox must misbehave in ways a framework
hides (abort a connection after processing a request, hold a reply, answer garbage) and
must not be the bottleneck of benchmarks. Requests on one connection are handled in order.
A handler returns a `Reply`, or a coroutine that yields one; a Reply may ask to wait
`delay_s` first and to `abort` the connection instead of answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024
REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 422: "Unprocessable Entity",
    405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}


@dataclass(slots=True)
class Request:
    """One parsed request; header names are lower case."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    keep_alive: bool = True


@dataclass(slots=True)
class Reply:
    """What to answer, after how long, or whether to drop the connection instead."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay_s: float = 0.0
    abort: bool = False


Handler = Callable[[Request], "Reply | Awaitable[Reply]"]


class BadRequest(Exception):
    """The bytes on the wire are not a request we can read; answer and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def parse_head(head: bytes) -> Request:
    """Request line and headers (without the blank line) → a Request without body."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError as exc:
        raise BadRequest(400, "malformed request line") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    path, _, query = target.partition("?")
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return Request(method.upper(), path, query, headers, keep_alive=keep_alive)


def take_chunked(buf: bytearray) -> bytes | None:
    """Decode a whole chunked body from the front of buf (and remove it), or None if partial."""
    body, pos = bytearray(), 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        except ValueError as exc:
            raise BadRequest(400, "malformed chunk size") from exc
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # no trailers expected: the blank line follows
            if end < 0:
                return None
            del buf[: end + 4]
            return bytes(body)
        if len(buf) < eol + 2 + size + 2:
            return None
        body += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
        if len(body) > MAX_BODY:
            raise BadRequest(413, "body too large")


def render(reply: Reply, keep_alive: bool) -> bytes:
    """Status line, headers and body of a reply."""
    reason = REASONS.get(reply.status, "Status")
    head = [f"HTTP/1.1 {reply.status} {reason}", f"Content-Type: {reply.content_type}",
            f"Content-Length: {len(reply.body)}", "Server: nusasms-sandbox"]
    head += [f"{name}: {value}" for name, value in reply.headers]
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body


class HttpProtocol(asyncio.Protocol):
    """One client connection: parse, hand to the handler, answer in order."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.buffer = bytearray()
        self.pending: Request | None = None  # head read, body not complete yet
        self.busy = False
        self.closed = False
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.TimerHandle | asyncio.Task[Reply] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None:
            self.waiter.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        """Handle every complete request in the buffer, stopping at a delayed one."""
        while not self.busy and not self.closed:
            try:
                request = self.next_request()
            except BadRequest as exc:
                self.send(Reply(exc.status, str(exc).encode(), "text/plain"), keep_alive=False)
                return
            if request is None:
                return
            self.dispatch(request)

    def next_request(self) -> Request | None:
        """The next complete request in the buffer, or None until more bytes arrive."""
        if self.pending is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise BadRequest(431, "request head too large")
                return None
            self.pending = parse_head(bytes(self.buffer[:end]))
            del self.buffer[: end + 4]
            if self.pending.headers.get("expect", "").lower() == "100-continue":
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.take_body(self.pending)
        if body is None:
            return None
        request, self.pending = self.pending, None
        request.body = body
        return request

    def take_body(self, request: Request) -> bytes | None:
        """The request's body from the buffer, or None if it has not all arrived."""
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            return take_chunked(self.buffer)
        try:
            length = int(request.headers.get("content-length", "0"))
        except ValueError as exc:
            raise BadRequest(400, "malformed Content-Length") from exc
        if length > MAX_BODY or length < 0:
            raise BadRequest(413, "body too large")
        if len(self.buffer) < length:
            return None
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return body

    def dispatch(self, request: Request) -> None:
        """Run the handler; answer now, later, or when its coroutine finishes."""
        try:
            result = self.handler(request)
        except Exception as exc:  # a sandbox bug: show it to the client as a 500
            result = Reply(500, f"sandbox error: {exc!r}".encode(), "text/plain")
        if isinstance(result, Reply):
            self.finish(request, result)
            return
        self.busy = True
        task = asyncio.ensure_future(result)
        self.waiter = task
        task.add_done_callback(lambda done: self.on_task_done(request, done))

    def on_task_done(self, request: Request, task: asyncio.Future[Reply]) -> None:
        """Answer with the coroutine's reply (or a 500 if it failed)."""
        self.waiter = None
        if task.cancelled():
            return
        error = task.exception()
        reply = task.result() if error is None else Reply(
            500, f"sandbox error: {error!r}".encode(), "text/plain")
        self.busy = False
        self.finish(request, reply)
        self.process()

    def finish(self, request: Request, reply: Reply) -> None:
        """Answer now, or hold the connection for reply.delay_s first."""
        if reply.delay_s <= 0:
            self.answer(request, reply)
            return
        self.busy = True
        loop = asyncio.get_running_loop()
        self.waiter = loop.call_later(reply.delay_s, self.after_delay, request, reply)

    def after_delay(self, request: Request, reply: Reply) -> None:
        self.waiter = None
        self.busy = False
        self.answer(request, reply)
        self.process()

    def answer(self, request: Request, reply: Reply) -> None:
        """Write the reply or abort the connection, as the reply asks."""
        if self.closed or self.transport is None:
            return
        if reply.abort:
            self.closed = True
            self.transport.abort()
            return
        self.send(reply, request.keep_alive)

    def send(self, reply: Reply, keep_alive: bool) -> None:
        self.write(render(reply, keep_alive))
        if not keep_alive and self.transport is not None:
            self.closed = True
            self.transport.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def start(handler: Handler, host: str, port: int) -> asyncio.Server:
    """Listen on host:port; the caller keeps the returned server alive."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpProtocol(handler), host, port,
                                    reuse_address=True, backlog=2048)
