"""One measured run of each system: kirim, the naive Celery app, the ceiling loop.

Queued runs fill the queue first, then start the workers, so the rate is the workers' alone;
it is read from the sandbox's acceptance times (middle 80% = steady state).
"""

from __future__ import annotations

import resource
import time
from typing import Any

from bench import procstat
from bench.load import (
    accepted_rate,
    ceiling,
    kirim_client,
    kirim_enqueue,
    naive_enqueue,
    wait_accepted,
)
from bench.stack import Stack, wait_workers_ready


class TreeMeter:
    """CPU seconds of process groups and Redis calls between start() and stop()."""

    def __init__(self, stack: Stack, pgids: list[int]) -> None:
        self.stack, self.pgids = stack, pgids
        self.peak_rss: dict[int, float] = {}

    def start(self) -> None:
        """Take the 'before' snapshot."""
        self.cpu0 = sum(procstat.cpu_s(p) for p in self.pgids)
        self.sandbox_cpu0 = procstat.cpu_s(self.stack.sandbox_proc.pid)  # type: ignore[union-attr]
        self.redis_cpu0 = procstat.pid_cpu_s(self.stack.redis_server.proc.pid)  # type: ignore[union-attr]
        self.calls0 = procstat.redis_calls(self.stack.redis)
        self.by_cmd0 = procstat.redis_calls_by_cmd(self.stack.redis)

    def sample(self) -> None:
        """Record the peak RSS of every process in the groups."""
        for pgid in self.pgids:
            for pid in procstat.group_pids(pgid):
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0.0), procstat.rss_mib(pid))

    def stop(self, n: int) -> dict[str, Any]:
        """Per-message costs since start()."""
        cpu = sum(procstat.cpu_s(p) for p in self.pgids) - self.cpu0
        sandbox_cpu = procstat.cpu_s(self.stack.sandbox_proc.pid) - self.sandbox_cpu0  # type: ignore[union-attr]
        redis_cpu = procstat.pid_cpu_s(self.stack.redis_server.proc.pid) - self.redis_cpu0  # type: ignore[union-attr]
        calls = procstat.redis_calls(self.stack.redis) - self.calls0
        by_cmd = procstat.redis_calls_by_cmd(self.stack.redis)
        per_cmd = {k: round((v - self.by_cmd0.get(k, 0)) / n, 2) for k, v in by_cmd.items()
                   if v - self.by_cmd0.get(k, 0) > 0}
        return {"worker_cpu_ms_per_msg": round(1000 * cpu / n, 3),
                "sandbox_cpu_ms_per_msg": round(1000 * sandbox_cpu / n, 3),
                "redis_cpu_ms_per_msg": round(1000 * redis_cpu / n, 3),
                "redis_calls_per_msg": round((calls - 2) / n, 2),  # minus our own INFO calls
                "redis_calls_by_cmd": dict(sorted(per_cmd.items(), key=lambda kv: -kv[1])),
                "peak_rss_mib": sorted(round(v, 1) for v in self.peak_rss.values())}


def run_kirim(stack: Stack, n: int, latency_ms: float, procs: int, threads: int,
              extra_env: dict[str, str] | None = None, timeout_s: float = 300,
              on_ready: Any = None, batch_size: int | None = None) -> dict[str, Any]:
    """Fill the queue with n SMS (in tasks of `batch_size`, default the setting's), start
    `procs` workers × `threads`, time the drain."""
    stack.reset(latency_ms)
    client = kirim_client(stack.redis_server.url, stack.sandbox_url,
                          **({} if batch_size is None else {"send_batch_size": batch_size}))
    calls0 = procstat.redis_calls(stack.redis)
    enqueue_s = kirim_enqueue(client, n)
    producer_calls = procstat.redis_calls(stack.redis) - calls0 - 1
    client.close()
    names = [f"k{i}" for i in range(procs)]
    workers = [stack.kirim_worker("otp,sms,wa", threads, name, extra_env) for name in names]
    try:
        wait_workers_ready(stack.redis, names)
        meter = TreeMeter(stack, [w.pid for w in workers])
        meter.start()
        if on_ready is not None:
            on_ready(workers)
        wait_accepted(stack.sandbox, n, timeout_s, meter.sample)
        cost = meter.stop(n)
    finally:
        stack.stop(workers)
    return {"system": "kirim", "latency_ms": latency_ms, "procs": procs, "threads": threads,
            "concurrency": procs * threads, **accepted_rate(stack.sandbox).as_dict(),
            "enqueue_s": round(enqueue_s, 3), "producer_redis_calls_per_msg":
            round(producer_calls / n, 2), "duplicates": stack.sandbox.stats()["duplicates"],
            **cost, "load_after": time.strftime("%H:%M:%S") + " " + str(_load())}


def run_naive(stack: Stack, n: int, latency_ms: float, timeout_s: float = 300
              ) -> dict[str, Any]:
    """Fill the naive app's queue with n tasks, start its default worker, time the drain."""
    stack.reset(latency_ms)
    calls0 = procstat.redis_calls(stack.redis)
    enqueue_s = naive_enqueue(stack.redis_server.url, n)
    producer_calls = procstat.redis_calls(stack.redis) - calls0 - 1
    worker = stack.naive_worker()
    try:
        wait_workers_ready(stack.redis, ["naive"])
        meter = TreeMeter(stack, [worker.pid])
        meter.start()
        wait_accepted(stack.sandbox, n, timeout_s, meter.sample)
        cost = meter.stop(n)
    finally:
        stack.stop([worker])
    return {"system": "naive", "latency_ms": latency_ms, "procs": 1,
            "pool": "prefork (default: one child per CPU)",
            **accepted_rate(stack.sandbox).as_dict(), "enqueue_s": round(enqueue_s, 3),
            "producer_redis_calls_per_msg": round(producer_calls / n, 2),
            **cost, "load_after": str(_load())}


def run_ceiling(stack: Stack, n: int, latency_ms: float, concurrency: int) -> dict[str, Any]:
    """The plain asyncio httpx loop against the same sandbox."""
    stack.reset(latency_ms)
    cpu0 = _self_cpu_s()
    wall_s = ceiling(stack.sandbox_url, n, concurrency)
    cpu = _self_cpu_s() - cpu0
    return {"system": "ceiling", "latency_ms": latency_ms, "concurrency": concurrency,
            **accepted_rate(stack.sandbox).as_dict(), "wall_s": round(wall_s, 3),
            "client_cpu_ms_per_msg": round(1000 * cpu / n, 3), "load_after": str(_load())}


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load() -> tuple[float, ...]:
    import os

    return tuple(round(x, 2) for x in os.getloadavg())
