"""4. Enqueue rate: single-message HTTP, 1000-message batch HTTP, Python send_many.

No worker runs: this is the producer side alone (validate, then one accept.lua per message:
guard check, record, outbox entry and the task on its queue). The HTTP load comes from a raw
keep-alive client (bench/httpload.py) so the client's own cost stays small; it still shares
the 2 cores with the API and Redis. "2p" is two API processes with the connections spread
over them, as a load balancer spreads them over replicas: `uvicorn --workers 2` shares one
listening socket, and in a run this short one process often accepts every connection.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench import procstat
from bench.httpload import drive
from bench.load import gsm, kirim_client, text
from bench.report import bar_labels, figure, save_json, save_png
from bench.stack import API_KEY, Stack

SINGLE_CONNECTIONS = 16
BATCH, BATCH_CONNECTIONS = 1000, 8
TARGETS = {"single_http": 2000, "batch_http": 10000}


def run(stack: Stack, info: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Each path for a few seconds, with one and with two API processes."""
    seconds = 2.0 if quick else 5.0
    rows = {}
    for processes in (1,) if quick else (1, 2):
        rows[f"single_http_{processes}p"] = _http(stack, processes, seconds, batch=False)
        rows[f"batch_http_{processes}p"] = _http(stack, processes, seconds, batch=True)
    rows["send_many"] = _send_many(stack, seconds)
    best = {k: max(v["msgs_per_s"] for name, v in rows.items() if name.startswith(k))
            for k in TARGETS}
    data = {"info": info, "quick": quick, "rows": rows, "targets": {
        k: {"want": f">= {v}/s", "got": best[k], "met": best[k] >= v} for k, v in TARGETS.items()}}
    save_json("enqueue", data)
    plot(data)
    return data


def _single_body(k: int) -> bytes:
    return json.dumps({"channel": "sms", "to": gsm(k, 1), "text": text(k)}).encode()


def _batch_body(k: int) -> bytes:
    return json.dumps({"messages": [{"channel": "sms", "to": gsm(k * BATCH + i, 2),
                                     "text": text(i)} for i in range(BATCH)]}).encode()


def _http(stack: Stack, processes: int, seconds: float, batch: bool) -> dict[str, Any]:
    stack.reset(0)
    apis = [stack.api(1) for _ in range(processes)]
    try:
        ports = [int(url.rsplit(":", 1)[1]) for _, url in apis]
        calls0 = procstat.redis_calls(stack.redis)
        cpu0 = [procstat.cpu_s(proc.pid) for proc, _ in apis]
        if batch:
            out = drive(ports, "/v1/messages/batch", API_KEY, _batch_body, BATCH_CONNECTIONS,
                        seconds)
        else:
            out = drive(ports, "/v1/messages", API_KEY, _single_body, SINGLE_CONNECTIONS,
                        seconds)
        api_cpu = sum(procstat.cpu_s(proc.pid) - c0 for (proc, _), c0 in zip(apis, cpu0,
                                                                            strict=True))
        calls = procstat.redis_calls(stack.redis) - calls0
    finally:
        stack.stop([proc for proc, _ in apis])
    ok = out["statuses"].get(200 if batch else 202, 0)
    msgs = ok * (BATCH if batch else 1)
    return {**out, "api_processes": processes, "messages": msgs,
            "msgs_per_s": round(msgs / out["seconds"]),
            "api_cpu_ms_per_msg": round(1000 * api_cpu / max(msgs, 1), 3),
            "redis_calls_per_msg": round(calls / max(msgs, 1), 2)}


def _send_many(stack: Stack, seconds: float) -> dict[str, Any]:
    stack.reset(0)
    client = kirim_client(stack.redis_server.url, stack.sandbox_url)
    calls0, n, started = procstat.redis_calls(stack.redis), 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        items = [{"channel": "sms", "to": gsm(n + i, 3), "text": text(i)} for i in range(BATCH)]
        n += sum(not isinstance(r, Exception) for r in client.send_many(items))
    elapsed = time.perf_counter() - started
    calls = procstat.redis_calls(stack.redis) - calls0
    client.close()
    return {"messages": n, "seconds": round(elapsed, 3), "batch": BATCH,
            "msgs_per_s": round(n / elapsed), "redis_calls_per_msg": round(calls / n, 2)}


def plot(data: dict[str, Any]) -> None:
    """Messages/s per path, with the targets."""
    fig, ax = figure("Enqueue rate (messages accepted / s; no workers running)", data["info"])
    names = list(data["rows"])
    bar_labels(ax, ax.bar(names, [data["rows"][k]["msgs_per_s"] for k in names],
                          color="#1f77b4"))
    for key, colour in (("single_http", "#d62728"), ("batch_http", "#2ca02c")):
        ax.axhline(TARGETS[key], color=colour, ls=":", label=f"target {key} {TARGETS[key]}/s")
    ax.set_ylabel("messages / s")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8, loc="center left",
              title=f"single: {SINGLE_CONNECTIONS} connections; batch: "
              f"{BATCH} per request, {BATCH_CONNECTIONS} connections; Np = N API processes",
              title_fontsize=7)
    save_png("enqueue", fig)
