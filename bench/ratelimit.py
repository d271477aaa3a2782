"""6. Rate-limit accuracy under 8 worker processes, from the sandbox's request arrival times.

8 processes × 4 threads share one GCRA limit (50/s, burst 5) with no provider latency, so
every thread is always asking; the most requests in any 1-second window must stay within
limit + burst, and the sustained rate should be close to the limit.
"""

from __future__ import annotations

import bisect
from typing import Any

from bench.report import figure, save_json, save_png
from bench.runs import run_kirim
from bench.stack import Stack

LIMIT_PER_S, BURST, PROCS, THREADS = 50, 5, 8, 4


def run(stack: Stack, info: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Drain N messages through the limit; windows and sustained rate from arrival times."""
    n = 250 if quick else 600
    env = {"KIRIM_RATE_LIMIT_PER_S": str(LIMIT_PER_S), "KIRIM_RATE_LIMIT_BURST": str(BURST)}
    run_row = run_kirim(stack, n, 0, PROCS, THREADS, extra_env=env, timeout_s=120)
    times = sorted(r["t"] for r in stack.sandbox.requests()
                   if r["path"].endswith("/sendsms/plain"))
    max_window = max(bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times))
    # Sustained: the middle 80% of the run, where every thread is waiting on the limiter.
    lo, hi = int(len(times) * 0.1), int(len(times) * 0.9) - 1
    sustained = (hi - lo) / (times[hi] - times[lo])
    per_second = _per_second(times)
    data = {"info": info, "quick": quick, "limit_per_s": LIMIT_PER_S, "burst": BURST,
            "procs": PROCS, "threads": THREADS, "requests": len(times),
            "max_in_any_1s_window": max_window, "bound": LIMIT_PER_S + BURST,
            "sustained_per_s": round(sustained, 2),
            "sustained_fraction": round(sustained / LIMIT_PER_S, 4),
            "per_second_counts": per_second, "run": run_row,
            "target": {"want": f"max 1 s window <= {LIMIT_PER_S + BURST}; sustained >= 0.95",
                       "met": max_window <= LIMIT_PER_S + BURST
                       and sustained / LIMIT_PER_S >= 0.95}}
    save_json("ratelimit", data)
    plot(data, times)
    return data


def _per_second(times: list[float]) -> list[int]:
    start = times[0]
    counts = [0] * (int(times[-1] - start) + 1)
    for t in times:
        counts[int(t - start)] += 1
    return counts


def plot(data: dict[str, Any], times: list[float]) -> None:
    """Requests in a sliding 1 s window over the run, against the limit and the bound."""
    fig, ax = figure(f"Rate-limit accuracy: {data['procs']} processes × {data['threads']} "
                     f"threads, limit {data['limit_per_s']}/s burst {data['burst']}",
                     data["info"])
    xs = [t - times[0] for t in times]
    window = [bisect.bisect_right(times, t) - bisect.bisect_left(times, t - 1.0) for t in times]
    ax.plot(xs, window, color="#1f77b4", lw=1, label="requests in the last 1 s")
    ax.axhline(data["limit_per_s"], color="#999999", ls="--", label="limit")
    ax.axhline(data["bound"], color="#d62728", ls=":", label="limit + burst")
    ax.set_xlabel("seconds since the first request (sandbox arrival times)")
    ax.set_ylabel("requests / 1 s window")
    ax.set_ylim(0, data["bound"] * 1.3)
    ax.legend(fontsize=8, title=f"max {data['max_in_any_1s_window']}, sustained "
              f"{data['sustained_per_s']}/s ({100 * data['sustained_fraction']:.1f}%)",
              title_fontsize=8)
    save_png("ratelimit", fig)
