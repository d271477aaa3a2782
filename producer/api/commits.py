"""Group commit: concurrent requests share one Redis round trip.

Routes validate on the event loop (pure CPU: `Enqueuer.prepare`) and hand the prepared
messages to this process's one committer thread, which writes everything waiting in one
pipelined round trip (`Enqueuer.commit`, each message still its own atomic accept.lua) and
wakes the waiting requests with one loop callback per round. At low load a request is written
alone and at once (no timer, so no added latency); under load the rounds grow by themselves,
so Redis round trips and thread hops per message fall as the load rises. The event loop never
blocks on Redis, and no request occupies a thread-pool thread: one process's CPU work stays on
one thread instead of several fighting over the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Sequence

import structlog

from producer.core.durability import NotReplicated
from producer.core.enqueue import Accepted, Enqueuer, not_replicated, write_failed
from producer.core.errors import KirimError, StoreUnavailable
from producer.core.records import Admit

log = structlog.get_logger(__name__)

CommitResult = Accepted | KirimError
_Waiting = tuple[list[Admit], asyncio.Future[list[CommitResult]], asyncio.AbstractEventLoop]


class GroupCommit:
    """One committer thread per process; `await commit_many(items)` from any request."""

    def __init__(self, enqueuer: Enqueuer, round_items: int = 2000) -> None:
        self.enqueuer = enqueuer
        self.round_items = round_items  # a round stops taking requests past this many messages
        self._pending: deque[_Waiting] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # `_closed` and appends: nothing slips in after close
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="kirim-commit", daemon=True)
        self._thread.start()

    async def commit(self, item: Admit) -> CommitResult:
        """Write one prepared message: its result, or StoreUnavailable raised."""
        return (await self.commit_many([item]))[0]

    async def commit_many(self, items: list[Admit]) -> list[CommitResult]:
        """Write prepared messages (in one round): their results, or StoreUnavailable raised."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[CommitResult]] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the API is shutting down")
            self._pending.append((items, future, loop))
        self._wake.set()
        return await future

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is waiting, then stop the thread."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()  # before draining: an append after this wakes the next round
            with self._lock:
                closed = self._closed  # read before the drain: later appends are refused
            self._drain()
            if closed:
                return

    def _drain(self) -> None:
        while self._pending:
            round_ = [self._pending.popleft()]
            size = len(round_[0][0])
            while self._pending and size + len(self._pending[0][0]) <= self.round_items:
                round_.append(self._pending.popleft())
                size += len(round_[-1][0])
            self._write(round_)

    def _write(self, round_: list[_Waiting]) -> None:
        try:
            outcomes: Sequence[CommitResult] | None = self.enqueuer.commit(
                [item for items, _, _ in round_ for item in items])
            error: BaseException | None = None
        except BaseException as exc:  # StoreUnavailable, or a bug: every waiter gets it
            outcomes, error = None, exc
            if not isinstance(exc, KirimError):
                log.exception("group_commit_failed", requests=len(round_))
        by_loop: dict[asyncio.AbstractEventLoop, list[_Settle]] = {}
        start = 0
        for items, future, loop in round_:
            result: list[CommitResult] | BaseException
            if outcomes is None:  # each request its own error, naming its own messages
                ids = [i.job.id for i in items]
                result = (not_replicated(error, ids) if isinstance(error, NotReplicated)
                          else write_failed(error.__cause__ or error, ids)
                          if isinstance(error, StoreUnavailable)
                          else RuntimeError(f"commit failed: {error!r}"))
            else:
                result = list(outcomes[start:start + len(items)])
            start += len(items)
            by_loop.setdefault(loop, []).append((future, result))
        for loop, settles in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, settles)


_Settle = tuple[asyncio.Future[list[CommitResult]], list[CommitResult] | BaseException]


def _settle(settles: list[_Settle]) -> None:
    """On the event loop: hand each waiting request its results (or its error)."""
    for future, result in settles:
        if future.done():  # the request was cancelled (client gone); the write stands
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
