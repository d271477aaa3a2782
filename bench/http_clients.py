"""8. The provider client's HTTP cost: httpx vs the send path's WireClient (worker/nusasms/
wire.py), the same form POSTs to the same sandbox, one thread, keep-alive, CPU per request.

Why the send path has its own client: this is the figure that chose it (docs/performance.md).
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Any

import httpx

from bench.report import save_json
from bench.stack import Stack
from worker.nusasms.client import SEND_SMS_PATH, USER_AGENT
from worker.nusasms.wire import WireClient

FORM = {"user": "demo", "password": "demo", "SMSText": "Pesanan sudah dikirim", "output": "json"}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _per_request_ms(post: Callable[[int], Any], n: int) -> float:
    for i in range(50):  # warm: connection made, code paths hot
        post(i)
    started = _cpu_s()
    for i in range(n):
        post(i)
    return round(1000 * (_cpu_s() - started) / n, 3)


def run(stack: Stack, info: dict[str, Any], quick: bool) -> dict[str, Any]:
    """CPU per POST of each client, side by side, at 0 ms provider latency."""
    n = 500 if quick else 3000
    stack.reset(0)
    url = stack.sandbox_url + SEND_SMS_PATH
    rows = {}
    with httpx.Client(headers={"User-Agent": USER_AGENT}) as client:
        rows["httpx"] = _per_request_ms(
            lambda i: client.post(url, data={**FORM, "GSM": f"62812{i:08d}"}).text, n)
    with WireClient(5.0, 5.0, 4, user_agent=USER_AGENT) as wire:
        rows["wire"] = _per_request_ms(
            lambda i: wire.post(url, data={**FORM, "GSM": f"62813{i:08d}"}).text, n)
    data = {"info": info, "quick": quick, "requests": n, "cpu_ms_per_request": rows,
            "httpx_over_wire": round(rows["httpx"] / rows["wire"], 2)}
    save_json("http_clients", data)
    print(f"  httpx {rows['httpx']} ms, wire {rows['wire']} ms per request")
    return data
