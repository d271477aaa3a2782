"""3. Cost per message: worker CPU, Redis commands, RSS — kirim next to the naive app.

CPU is utime+stime of each worker's whole process group (/proc/<pid>/stat) from when its
consumer is ready until the last message is accepted; Redis commands are the INFO
commandstats delta over the same span divided by N (the producer's share is measured
separately, during the enqueue). RSS is read at rest (ready, idle; then warm after one
message) and at its peak under load.
"""

from __future__ import annotations

import time
from typing import Any

from bench import procstat
from bench.load import kirim_client, kirim_enqueue, naive_enqueue, wait_accepted
from bench.report import bar_labels, figure, save_json, save_png
from bench.runs import run_kirim, run_naive
from bench.stack import Stack, wait_workers_ready

LATENCY_MS = 50
PROCS, THREADS = 2, 32


def run(stack: Stack, info: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Rest RSS of each system, then one loaded run of each at 50 ms."""
    n = 400 if quick else 3000
    data = {"info": info, "quick": quick, "latency_ms": LATENCY_MS,
            "kirim_rest": _rest(stack, "kirim", quick),
            "naive_rest": _rest(stack, "naive", quick),
            "kirim": run_kirim(stack, n, LATENCY_MS, PROCS, THREADS),
            "naive": run_naive(stack, 100 if quick else 300, LATENCY_MS)}
    save_json("cost", data)
    plot(data)
    return data


def _rest(stack: Stack, system: str, quick: bool) -> dict[str, Any]:
    """RSS of one idle worker group, then after its first message (services built)."""
    stack.reset(0)
    if system == "kirim":
        proc = stack.kirim_worker("otp,sms,wa", THREADS, "rest")
    else:
        proc = stack.naive_worker("rest")
    try:
        wait_workers_ready(stack.redis, ["rest"])
        settle_s, idle_s = (1.0, 2.0) if quick else (3.0, 5.0)
        time.sleep(settle_s)
        idle = procstat.group_rss_mib(proc.pid)
        cpu0 = procstat.cpu_s(proc.pid)
        time.sleep(idle_s)
        idle_cpu_pct = 100 * (procstat.cpu_s(proc.pid) - cpu0) / idle_s
        if system == "kirim":
            client = kirim_client(stack.redis_server.url, stack.sandbox_url)
            kirim_enqueue(client, 1)
            client.close()
        else:
            naive_enqueue(stack.redis_server.url, 1)
        wait_accepted(stack.sandbox, 1, 30)
        time.sleep(0.5)
        warm = procstat.group_rss_mib(proc.pid)
    finally:
        stack.stop([proc])
    return {"idle_rss_mib": idle, "warm_rss_mib": warm, "idle_cpu_pct": round(idle_cpu_pct, 2)}


def plot(data: dict[str, Any]) -> None:
    """CPU ms and Redis calls per message, side by side."""
    fig, ax = figure(f"Cost per message at {data['latency_ms']} ms provider latency",
                     data["info"])
    k, nv = data["kirim"], data["naive"]
    labels = ["worker CPU ms/msg", "Redis commands/msg\n(worker side, incl. in Lua)",
              "Redis commands/msg\n(producer side, incl. in Lua)"]
    kv = [k["worker_cpu_ms_per_msg"], k["redis_calls_per_msg"], k["producer_redis_calls_per_msg"]]
    nvv = [nv["worker_cpu_ms_per_msg"], nv["redis_calls_per_msg"],
           nv.get("producer_redis_calls_per_msg")]
    x = range(len(labels))
    bar_labels(ax, ax.bar([i - 0.2 for i in x], kv, 0.4, label="kirim", color="#1f77b4"),
               "{:.1f}")
    bar_labels(ax, ax.bar([i + 0.2 for i in x], [v or 0 for v in nvv], 0.4, label="naive",
                          color="#d62728"), "{:.1f}")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylim(0, max(v or 0 for v in kv + nvv) * 1.35)
    ax.legend(fontsize=8, loc="upper right", title_fontsize=7,
              title=f"RSS idle kirim {data['kirim_rest']['idle_rss_mib']} MiB, "
              f"naive {data['naive_rest']['idle_rss_mib']} MiB; peak kirim "
              f"{k['peak_rss_mib']} MiB")
    save_png("cost", fig)
