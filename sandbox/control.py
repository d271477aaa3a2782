"""A typed client of the sandbox's control API, for tests, the demo and benchmarks.

    control = SandboxControl("http://127.0.0.1:8099")
    control.reset()
    control.configure(rate_5xx=0.1, dr_delay_s=0.2)
    ...
    assert control.stats()["duplicates"] == 0
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any, TypedDict, cast

import httpx


class SentMessage(TypedDict):
    """An accepted message as GET /_sandbox/messages shows it."""

    messageid: str
    channel: str
    gsm: str
    text: str
    otp: bool
    unicode: bool
    encoding: str
    parts: int
    accepted_at: float
    dr_letter: str
    dr_status: str
    sender: str | None
    group: str | None


class RequestEntry(TypedDict):
    """One provider request from GET /_sandbox/requests."""

    t: float
    method: str
    path: str
    gsm: str | None
    cmd: str | None
    status: str | None
    fault: str | None


class Stats(TypedDict):
    """GET /_sandbox/stats."""

    requests: int
    accepted: int
    by_status: dict[str, int]
    by_channel: dict[str, int]
    faults: dict[str, int]
    commands: dict[str, int]
    pushes: dict[str, int]
    duplicates: int
    duplicate_sends: int
    messages: int
    credits: int  # the SMS pool
    expired_date: str
    wa_credits: int
    wa_expired_date: str
    clock_offset_s: float


class SandboxControl:
    """Drives one sandbox over HTTP; every method is one control call."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=f"{self.url}/_sandbox", timeout=timeout_s,
                                 trust_env=False)  # always a local sandbox: no proxy

    def _get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params={k: v for k, v in params.items() if v is not None})
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.post(path, json=body or {})
        if response.status_code == 400:
            raise ValueError(f"sandbox refused {path}: {response.json().get('error')}")
        response.raise_for_status()
        return response.json()

    def health(self) -> bool:
        """True if the sandbox answers."""
        return bool(self._get("/health").get("ok"))

    def reset(self) -> None:
        """All state and knobs back to the sandbox's start configuration."""
        self._post("/reset")

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs (see sandbox.config.Config); returns all of them."""
        return cast(dict[str, Any], self._post("/config", knobs))

    def config(self) -> dict[str, Any]:
        """The current knobs."""
        return cast(dict[str, Any], self._get("/config"))

    def messages(self, gsm: str | None = None, channel: str | None = None,
                 limit: int | None = None) -> list[SentMessage]:
        """Accepted messages, oldest first, optionally filtered."""
        return cast(list[SentMessage],
                    self._get("/messages", gsm=gsm, channel=channel, limit=limit)["messages"])

    def requests(self, limit: int | None = None) -> list[RequestEntry]:
        """Provider requests, oldest first (the log keeps the last 200,000)."""
        return cast(list[RequestEntry], self._get("/requests", limit=limit)["requests"])

    def stats(self) -> Stats:
        """Counters: requests, accepted, by_status, faults, duplicates, both pools…"""
        return cast(Stats, self._get("/stats"))

    def counts(self, channel: str | None = None) -> dict[tuple[str, str], int]:
        """How many times each (gsm, text) was accepted (summed over channels unless given)."""
        totals: dict[tuple[str, str], int] = {}
        for row in self._get("/counts")["counts"]:
            if channel in (None, row["channel"]):
                key = (row["gsm"], row["text"])
                totals[key] = totals.get(key, 0) + row["count"]
        return totals

    def set_credits(self, value: int, expired_date: str | date | None = None, *,
                    product: str = "sms") -> dict[str, Any]:
        """Set one product's balance ("sms" or "wa"), optionally its expiry (YYYY-MM-DD)."""
        body: dict[str, Any] = {"value": value, "product": product}
        if expired_date is not None:
            body["expired_date"] = str(expired_date)
        return cast(dict[str, Any], self._post("/credits", body))

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox clock forward; returns the sandbox's new time (epoch seconds)."""
        return float(self._post("/clock", {"advance_s": seconds})["now"])

    def inbound(self, originator: str, msg: str, gateway_number: str = "6281100000000",
                receive_date: str | None = None) -> dict[str, Any]:
        """Make an inbound SMS and push it to inbox_url now; returns the push's result."""
        body = {"originator": originator, "msg": msg, "gateway_number": gateway_number,
                "receive_date": receive_date}
        return cast(dict[str, Any], self._post("/inbound", body))

    def pushes(self) -> list[dict[str, Any]]:
        """Callbacks the sandbox made (delivery reports and inbound), with their results."""
        return cast(list[dict[str, Any]], self._get("/pushes")["pushes"])

    def wait_for(self, count: int, timeout_s: float = 10.0, **filters: Any) -> list[SentMessage]:
        """Poll until at least `count` accepted messages match; AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.messages(**filters)
            if len(found) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(found) >= count, f"{len(found)} of {count} messages arrived in {timeout_s}s"
        return found

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()

    def __enter__(self) -> SandboxControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
