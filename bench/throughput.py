"""1. Throughput: kirim vs the ceiling (plain asyncio httpx loop) vs the naive Celery app.

Same sandbox, same form POSTs, same run; provider latency 0, 50 and 200 ms. kirim runs
2 worker processes × 32 threads (one process per core) with kirim's defaults: each thread
sends a batch of 8 at once, so a process has as many calls in flight as its connection pool
holds (KIRIM_NUSASMS_POOL_SIZE, 64): 128 in all. The ceiling keeps as many requests in flight
(IN_FLIGHT). At 50 and 200 ms a second pair runs at 64 in flight (kirim with pools of 32), the
concurrency of the runs before batches. The naive app runs Celery's defaults (prefork, one
child per CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.report import bar_labels, figure, save_json, save_png
from bench.runs import run_ceiling, run_kirim, run_naive
from bench.stack import Stack
from producer.core.settings import Settings

PROCS, THREADS = 2, 32
LATENCIES_MS = (0, 50, 200)
_BATCH = Settings.model_fields["send_batch_size"].default
_POOL = Settings.model_fields["nusasms_pool_size"].default
# kirim's calls in flight with its defaults: a thread's batch goes at once, up to the pool.
IN_FLIGHT = PROCS * min(THREADS * _BATCH, _POOL)
HALF_POOL = {"KIRIM_NUSASMS_POOL_SIZE": str(_POOL // 2)}  # 64 in flight in all
# Messages per run: the naive app is ~30× slower at 200 ms, so it gets fewer (its rate is
# a steady state well before that); every run lasts a few seconds.
FULL = {"kirim": {0: 3000, 50: 3000, 200: 3000}, "naive": {0: 1000, 50: 300, 200: 100}}
QUICK = {"kirim": {0: 400, 50: 400, 200: 400}, "naive": {0: 200, 50: 40, 200: 20}}


def run(stack: Stack, info: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Every system at every latency; ratios against the ceiling and the naive app."""
    sizes = QUICK if quick else FULL
    rows = []
    for latency in LATENCIES_MS:
        n = sizes["kirim"][latency]
        ceil = run_ceiling(stack, n, latency, IN_FLIGHT)
        kirim = run_kirim(stack, n, latency, PROCS, THREADS)
        naive = run_naive(stack, sizes["naive"][latency], latency)
        row_extra: dict[str, Any] = {}
        if latency == 0:  # the many-connection httpx pool is itself CPU-bound at 0 ms
            row_extra["ceiling_8_connections"] = run_ceiling(stack, n, latency, 8)
        else:  # the concurrency of the runs before batches, both sides
            c64 = run_ceiling(stack, n, latency, IN_FLIGHT // 2)
            k64 = run_kirim(stack, n, latency, PROCS, THREADS, extra_env=HALF_POOL)
            row_extra["at_half"] = {"in_flight": IN_FLIGHT // 2, "ceiling": c64, "kirim": k64,
                                    "kirim_over_ceiling": round(k64["steady_msgs_per_s"]
                                                                / c64["steady_msgs_per_s"], 3)}
        rows.append({"latency_ms": latency, "ceiling": ceil, "kirim": kirim, "naive": naive,
                     **row_extra,
                     "kirim_over_ceiling": round(kirim["steady_msgs_per_s"]
                                                 / ceil["steady_msgs_per_s"], 3),
                     "kirim_over_naive": round(kirim["steady_msgs_per_s"]
                                               / naive["steady_msgs_per_s"], 2)})
        print(f"  {latency:>3} ms: ceiling {ceil['steady_msgs_per_s']:.0f}/s, kirim "
              f"{kirim['steady_msgs_per_s']:.0f}/s, naive {naive['steady_msgs_per_s']:.0f}/s")
    data = {"info": info, "quick": quick, "kirim_procs": PROCS, "kirim_threads": THREADS,
            "in_flight": IN_FLIGHT, "rows": rows, "targets": targets(rows)}
    save_json("throughput", data)
    plot(data)
    return data


def targets(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Issue 8's and issue 15's targets, from one run's rows."""
    by = {r["latency_ms"]: r for r in rows}
    out: dict[str, dict[str, Any]] = {}

    def want(name: str, got: float, op: str, bound: float) -> None:
        met = got >= bound if op == ">=" else got <= bound
        out[name] = {"want": f"{op} {bound:g}", "got": got, "met": met}

    if 0 in by:
        want("kirim_over_naive_at_0ms", by[0]["kirim_over_naive"], ">=", 1.5)
    if 50 in by:
        want("kirim_over_ceiling_at_50ms", by[50]["kirim_over_ceiling"], ">=", 0.8)
    if 200 in by:
        want("kirim_over_ceiling_at_200ms", by[200]["kirim_over_ceiling"], ">=", 0.8)
        want("kirim_over_naive_at_200ms", by[200]["kirim_over_naive"], ">=", 10)
    for latency, r in sorted(by.items()):
        k = r["kirim"]
        want(f"worker_cpu_ms_per_msg_at_{latency}ms", k["worker_cpu_ms_per_msg"], "<=", 1.5)
        want(f"redis_commands_per_msg_at_{latency}ms", k["redis_calls_per_msg"], "<=", 20)
        want(f"redis_cpu_ms_per_msg_at_{latency}ms", k["redis_cpu_ms_per_msg"], "<=", 0.15)
    return out


def plot(data: dict[str, Any]) -> None:
    """Grouped bars: msgs/s per system per latency, ratios in the labels."""
    fig, ax = figure("Throughput through the sandbox (steady msgs/s, higher is better)",
                     data["info"], width=10)
    fig.subplots_adjust(right=0.78)
    x = np.arange(len(data["rows"]))
    for k, (system, colour) in enumerate((("ceiling", "#999999"), ("kirim", "#1f77b4"),
                                          ("naive", "#d62728"))):
        values = [row[system]["steady_msgs_per_s"] for row in data["rows"]]
        bar_labels(ax, ax.bar(x + (k - 1) * 0.27, values, 0.27, label=system, color=colour))
    ax.set_xticks(x, [f"{r['latency_ms']} ms\nkirim/ceiling {r['kirim_over_ceiling']:.2f}, "
                      f"kirim/naive {r['kirim_over_naive']:.1f}×" for r in data["rows"]],
                  fontsize=8)
    ax.set_xlabel("provider latency (sandbox latency_ms)")
    ax.set_ylabel("messages / s")
    ax.set_yscale("log")
    ax.legend(title=f"kirim: {data['kirim_procs']} procs ×\n{data['kirim_threads']} threads;"
                    f"\n{data.get('in_flight', 64)} in flight;\nceiling: as many;"
                    "\nnaive: Celery defaults", title_fontsize=7,
              fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_png("throughput", fig)
