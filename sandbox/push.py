"""Callbacks the provider makes (spec §1.8): delivery reports by GET, inbound SMS by POST form.

A report is pushed once, when it becomes final on the sandbox clock, if `dr_callback_url`
is set at that moment; the provider's retry policy is unknown, so a failed push is not
retried [decision]. The URL's own query (a secret token) is kept and the report's fields are
appended. Every push is recorded in the state's push log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

import httpx

from sandbox.config import Config
from sandbox.state import Message, State, provider_time

TICK_S = 0.02
PUSH_TIMEOUT_S = 5.0
MAX_CONCURRENT_PUSHES = 64


def err_code(letter: str) -> str:
    """err_code of a report: "0" for delivered or pending, "1" for any other letter [decision]."""
    return "0" if letter in ("D", "P") else "1"


def report_fields(message: Message, now_s: float) -> dict[str, str]:
    """The fields of a delivery report, as the DR pull and the push both send them."""
    return {
        "ref_no": message.messageid,
        "status": message.dr_status(now_s),
        "sent_date": provider_time(message.accepted_at) + ".0",
        "err_code": err_code(message.dr_status(now_s)),
    }


def with_query(url: str, fields: dict[str, str]) -> str:
    """url with fields appended to whatever query it already has."""
    return f"{url}{'&' if '?' in url else '?'}{urlencode(fields)}"


class Pusher:
    """Sends due delivery reports and inbound messages over HTTP."""

    def __init__(self) -> None:
        self.client: httpx.AsyncClient | None = None
        self.loop_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.slots = asyncio.Semaphore(MAX_CONCURRENT_PUSHES)

    def start(self, get_state: Callable[[], State], get_config: Callable[[], Config]) -> None:
        """Start the background loop that pushes reports as they become due."""
        self.client = httpx.AsyncClient(timeout=PUSH_TIMEOUT_S, trust_env=False)
        self.loop_task = asyncio.create_task(self.run(get_state, get_config))

    async def run(self, get_state: Callable[[], State],
                  get_config: Callable[[], Config]) -> None:
        """Every tick, push the reports that became final."""
        while True:
            await asyncio.sleep(TICK_S)
            state, config = get_state(), get_config()
            now_s = state.clock.now()
            for message in state.due_reports(now_s):
                if config.dr_callback_url:
                    fields = report_fields(message, now_s)
                    self.spawn(self.push_report(state, config.dr_callback_url, fields))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a push in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cancel_all(self) -> None:
        """Forget pushes in flight (on reset)."""
        for task in list(self.tasks):
            task.cancel()

    async def push_report(self, state: State, url: str, fields: dict[str, str]) -> None:
        """GET the callback URL with the report's fields as query parameters."""
        async with self.slots:
            result = await self.send("GET", with_query(url, fields))
        state.stats.pushes["dr_ok" if result.get("status_code") == 200 else "dr_failed"] += 1
        state.push_log.append({"kind": "dr", **fields, **result})

    async def push_inbound(self, state: State, url: str, form: dict[str, str]) -> dict[str, Any]:
        """POST an inbound SMS as a form to the inbox URL; returns what happened."""
        result = await self.send("POST", url, data=form)
        ok = result.get("status_code") == 200
        state.stats.pushes["inbound_ok" if ok else "inbound_failed"] += 1
        state.push_log.append({"kind": "inbound", **form, **result})
        return result

    async def send(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """One HTTP call; the receiver's status code, or the error's name."""
        assert self.client is not None, "Pusher.start was not called"
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            return {"url": url, "status_code": None, "error": f"{type(exc).__name__}: {exc}"}
        return {"url": url, "status_code": response.status_code, "error": None}

    async def close(self) -> None:
        """Stop the loop and the client."""
        self.cancel_all()
        if self.loop_task is not None:
            self.loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.loop_task
        if self.client is not None:
            await self.client.aclose()
