"""Group commit: concurrent single-message requests share one Redis round trip.

A POST /v1/messages is validated on the event loop (pure CPU: `Enqueuer.prepare`), then
handed to this process's one committer thread, which writes everything waiting in one
pipelined round trip (`Enqueuer.commit`, each message still its own atomic accept.lua) and
wakes the waiting requests with one loop callback per batch. At low load a request is written
alone and at once (no timer, so no added latency); under load the batches grow by themselves,
so Redis round trips and thread hops per message fall as the load rises. The event loop
never blocks on Redis, and there is no thread-pool hop per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Sequence

import structlog

from producer.enqueue import Accepted, Enqueuer
from producer.errors import KirimError
from producer.records import Admit

log = structlog.get_logger(__name__)

Outcome = Accepted | KirimError
_Waiting = tuple[Admit, asyncio.Future[Outcome], asyncio.AbstractEventLoop]


class GroupCommit:
    """One committer thread per process; `await commit(item)` from any request."""

    def __init__(self, enqueuer: Enqueuer, max_batch: int = 512) -> None:
        self.enqueuer = enqueuer
        self.max_batch = max_batch
        self._pending: deque[_Waiting] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="kirim-commit", daemon=True)
        self._thread.start()

    async def commit(self, item: Admit) -> Outcome:
        """Write one prepared message; its result, or StoreUnavailable raised."""
        if self._closed:
            raise RuntimeError("the API is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((item, future, loop))
        self._wake.set()
        return await future

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is waiting, then stop the thread."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()  # before draining: an append after this wakes the next round
            while self._pending:
                take = min(len(self._pending), self.max_batch)
                self._write([self._pending.popleft() for _ in range(take)])
            if self._closed:
                return

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            outcomes: Sequence[Outcome] | None = self.enqueuer.commit([w[0] for w in batch])
            error: BaseException | None = None
        except BaseException as exc:  # StoreUnavailable, or a bug: every waiter gets it
            outcomes, error = None, exc
            if not isinstance(exc, KirimError):
                log.exception("group_commit_failed", batch=len(batch))
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], int]]] = {}
        for index, (_, future, loop) in enumerate(batch):
            by_loop.setdefault(loop, []).append((future, index))
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, futures, outcomes, error)


def _settle(futures: list[tuple[asyncio.Future[Outcome], int]],
            outcomes: Sequence[Outcome] | None, error: BaseException | None) -> None:
    """On the event loop: hand each waiting request its result (or the shared error)."""
    for future, index in futures:
        if future.done():  # the request was cancelled (client gone); the write stands
            continue
        if outcomes is None:
            future.set_exception(error or RuntimeError("commit failed"))
        else:
            future.set_result(outcomes[index])
