"""8. Celery's knobs, measured: prefetch, task events, and acks shared by a batch task.

kirim as shipped (prefetch multiplier 1, task events off, `kirim.send_batch` tasks of 8)
next to one change at a time, side by side in one run at 0 and 50 ms provider latency
(2 worker processes × 32 threads, N messages each): `KIRIM_WORKER_PREFETCH_MULTIPLIER=4`;
`KIRIM_WORKER_TASK_EVENTS=true` (Flower's live task view); tasks of one message
(`KIRIM_SEND_BATCH_SIZE=1`: one Celery delivery, unacked-index write and ack per message,
where a batch shares them). The issue asked for these to be measured, not guessed.
"""

from __future__ import annotations

from typing import Any

from bench.report import save_json
from bench.runs import run_kirim
from bench.stack import Stack

PROCS, THREADS = 2, 32
LATENCIES_MS = (0, 50)
VARIANTS: dict[str, dict[str, Any]] = {
    "as shipped": {},
    "prefetch 4": {"extra_env": {"KIRIM_WORKER_PREFETCH_MULTIPLIER": "4"}},
    "task events on": {"extra_env": {"KIRIM_WORKER_TASK_EVENTS": "true"}},
    "one message per task": {"batch_size": 1},
}
KEEP = ("steady_msgs_per_s", "worker_cpu_ms_per_msg", "redis_calls_per_msg",
        "redis_cpu_ms_per_msg")


def run(stack: Stack, info: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Every variant at every latency; each row relative to "as shipped" in the same run."""
    n = 400 if quick else 3000
    rows = []
    for latency in LATENCIES_MS:
        base: dict[str, Any] | None = None
        for name, how in VARIANTS.items():
            got = run_kirim(stack, n, latency, PROCS, THREADS, **how)
            row = {"variant": name, "latency_ms": latency, **{k: got[k] for k in KEEP}}
            base = base or row
            row["cpu_vs_shipped"] = round(row["worker_cpu_ms_per_msg"]
                                          / base["worker_cpu_ms_per_msg"], 2)
            row["rate_vs_shipped"] = round(row["steady_msgs_per_s"]
                                           / base["steady_msgs_per_s"], 2)
            rows.append(row)
            print(f"  {latency:>3} ms {name}: {row['steady_msgs_per_s']:.0f}/s, worker CPU "
                  f"{row['worker_cpu_ms_per_msg']} ms, {row['redis_calls_per_msg']} Redis cmds")
    data = {"info": info, "quick": quick, "messages": n, "procs": PROCS, "threads": THREADS,
            "rows": rows}
    save_json("knobs", data)
    return data
