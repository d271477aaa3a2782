"""Messages, the ways of putting them into a queue, and the clock that says how fast they left.

All three systems send the same form POSTs: SMS to unique recipients (so neither kirim's
guard nor the sandbox's -77/-78 rules ever refuse one) with a short GSM-7 text.
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx

from producer.client import KirimClient
from producer.core.settings import load_settings
from sandbox.control import SandboxControl

SEND_PATH = "/api/v3/sendsms/plain"


def gsm(i: int, lane: int = 0) -> str:
    """A unique, plausible Indonesian number for message i (lane keeps sets apart)."""
    return f"62812{lane}{i:07d}"


def text(i: int) -> str:
    """A short GSM-7 text."""
    return f"Pesanan {i} sudah dikirim. Terima kasih."


def kirim_client(redis_url: str, sandbox_url: str, **settings: Any) -> KirimClient:
    """A producer client on the bench stack (`settings`: more Settings fields)."""
    from bench.stack import KIRIM_ENV  # the workers' hash key: one key for the whole stack

    return KirimClient(load_settings(redis_url=redis_url, nusasms_url=sandbox_url,
                                     hash_key=KIRIM_ENV["KIRIM_HASH_KEY"], **settings),
                       source="bench")


def kirim_enqueue(client: KirimClient, n: int, lane: int = 0, batch: int = 1000) -> float:
    """Enqueue n SMS with send_many in batches; returns the seconds it took."""
    started = time.perf_counter()
    for lo in range(0, n, batch):
        items = [{"channel": "sms", "to": gsm(i, lane), "text": text(i)}
                 for i in range(lo, min(n, lo + batch))]
        refused = [r for r in client.send_many(items) if isinstance(r, Exception)]
        if refused:
            raise RuntimeError(f"kirim refused {len(refused)} messages: {refused[0]!r}")
    return time.perf_counter() - started


def naive_enqueue(redis_url: str, n: int) -> float:
    """Enqueue n naive tasks the way a typical team does: `.delay()` per message."""
    from bench.naive_app import app, send_sms

    app.conf.broker_url = redis_url
    started = time.perf_counter()
    for i in range(n):
        send_sms.delay(gsm(i), text(i))
    return time.perf_counter() - started


async def _ceiling(url: str, n: int, concurrency: int) -> None:
    # One single-connection AsyncClient per sender. One shared client with a 64-connection
    # pool spends milliseconds of CPU per request in httpcore's pool bookkeeping here
    # (100-250/s at 0 ms instead of 800+), which would make the "ceiling" its own bottleneck.
    # One default TLS context shared by all senders (the URL is plain http on loopback):
    # building 64 of them would cost start-up time, not request time.
    tls = ssl.create_default_context()
    todo = iter(range(n))

    async def sender() -> None:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=30.0,
                                     trust_env=False, verify=tls) as client:
            for i in todo:
                reply = await client.post(url, data={
                    "user": "demo", "password": "demo", "output": "json",
                    "GSM": gsm(i), "SMSText": text(i)})
                reply.raise_for_status()
    await asyncio.gather(*(sender() for _ in range(concurrency)))


def ceiling(sandbox_url: str, n: int, concurrency: int) -> float:
    """The ceiling: a plain asyncio httpx loop, no queue; returns wall seconds."""
    started = time.perf_counter()
    asyncio.run(_ceiling(sandbox_url + SEND_PATH, n, concurrency))
    return time.perf_counter() - started


def wait_accepted(sandbox: SandboxControl, n: int, timeout_s: float,
                  sample: Any = None) -> float:
    """Poll the sandbox until n sends were accepted; returns seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if sandbox.stats()["accepted"] >= n:
            return time.monotonic() - started
        if sample is not None:
            sample()
        time.sleep(0.25)
    got = sandbox.stats()["accepted"]
    raise TimeoutError(f"only {got} of {n} messages accepted within {timeout_s}s")


@dataclass
class Rate:
    """How fast messages left, from the provider's own arrival times."""

    n: int
    span_s: float
    msgs_per_s: float          # (n-1) / (last - first)
    steady_msgs_per_s: float   # middle 80%: ramp-up and tail trimmed

    def as_dict(self) -> dict[str, float]:
        """JSON form."""
        return {"n": self.n, "span_s": round(self.span_s, 3),
                "msgs_per_s": round(self.msgs_per_s, 1),
                "steady_msgs_per_s": round(self.steady_msgs_per_s, 1)}


def rate_from(times: list[float]) -> Rate:
    """Rate of a set of acceptance times."""
    t = sorted(times)
    n = len(t)
    span = t[-1] - t[0]
    lo, hi = int(n * 0.1), int(n * 0.9) - 1
    steady = (hi - lo) / (t[hi] - t[lo]) if t[hi] > t[lo] else float("nan")
    return Rate(n, span, (n - 1) / span if span > 0 else float("nan"), steady)


def accepted_rate(sandbox: SandboxControl) -> Rate:
    """Rate of every message the sandbox accepted since its reset."""
    return rate_from([m["accepted_at"] for m in sandbox.messages()])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100), linear between closest ranks."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if q < 100 \
        else max(values)
