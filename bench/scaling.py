"""5. Scaling: 1, 2 and 4 kirim worker processes (4 threads each) at 50 ms latency.

Each process keeps up to 4 sends in flight, so latency bounds a run at 4·P / 0.05 s
messages/s (80, 160, 320); the rate limit (set here to 200/s, burst 20) bounds every run at
200/s; the two cores bound it at whatever the CPU cost per message allows. Few threads per
process make the latency bound visible below the CPU bound; the plot shows all three.
"""

from __future__ import annotations

import os
from typing import Any

from bench.report import bar_labels, figure, save_json, save_png
from bench.runs import run_kirim
from bench.stack import Stack

LATENCY_MS, THREADS = 50, 4
RATE_LIMIT_PER_S = 200
PROCS = (1, 2, 4)


def run(stack: Stack, info: dict[str, Any], quick: bool) -> dict[str, Any]:
    """One drain per process count, under the same rate limit."""
    n = 200 if quick else 1500
    env = {"KIRIM_RATE_LIMIT_PER_S": str(RATE_LIMIT_PER_S), "KIRIM_RATE_LIMIT_BURST": "20"}
    rows = []
    for procs in PROCS:
        row = run_kirim(stack, n, LATENCY_MS, procs, THREADS, extra_env=env)
        row["latency_bound_msgs_per_s"] = procs * THREADS / (LATENCY_MS / 1000)
        # What the cores allow if they did nothing else: worker + Redis + sandbox CPU.
        cpu_ms = (row["worker_cpu_ms_per_msg"] + row["redis_cpu_ms_per_msg"]
                  + row["sandbox_cpu_ms_per_msg"])
        row["cpu_bound_msgs_per_s"] = round(1000 * (os.cpu_count() or 1) / cpu_ms)
        rows.append(row)
        print(f"  {procs} procs: {row['steady_msgs_per_s']:.0f}/s "
              f"(CPU {row['worker_cpu_ms_per_msg']:.2f} ms/msg)")
    data = {"info": info, "quick": quick, "latency_ms": LATENCY_MS, "threads": THREADS,
            "rate_limit_per_s": RATE_LIMIT_PER_S, "rows": rows}
    save_json("scaling", data)
    plot(data)
    return data


def plot(data: dict[str, Any]) -> None:
    """Measured rate per process count against the latency bound and the rate limit."""
    fig, ax = figure(f"Scaling at {data['latency_ms']} ms provider latency "
                     f"({data['threads']} threads per process)", data["info"])
    procs = [r["procs"] for r in data["rows"]]
    labels = [str(p) for p in procs]
    bar_labels(ax, ax.bar(labels, [r["steady_msgs_per_s"] for r in data["rows"]],
                          color="#1f77b4", label="measured (steady)"))
    ax.plot(labels, [r["latency_bound_msgs_per_s"] for r in data["rows"]], "o--",
            color="#999999", label="latency bound: threads in flight / latency")
    ax.axhline(data["rate_limit_per_s"], color="#d62728", ls=":",
               label=f"rate limit {data['rate_limit_per_s']}/s")
    ax.plot(labels, [r["cpu_bound_msgs_per_s"] for r in data["rows"]], "s:", color="#2ca02c",
            label="CPU bound: cores / (worker+Redis+sandbox CPU per msg)")
    cpu = [r["worker_cpu_ms_per_msg"] for r in data["rows"]]
    ax.set_xlabel("worker processes (CPU ms/msg: " + ", ".join(f"{c:.1f}" for c in cpu) + ")")
    ax.set_ylabel("messages / s")
    ax.set_ylim(0, max(max(r["latency_bound_msgs_per_s"], r["cpu_bound_msgs_per_s"])
                       for r in data["rows"]) * 1.45)
    ax.legend(fontsize=8, loc="upper left")
    save_png("scaling", fig)
