"""Where a kirim worker's CPU goes: py-spy on one worker process while it drains a backlog.

Provider latency is 0 ms, so the worker is CPU-bound and every sample is work. One py-spy
writes the flame graph (results/profile.svg); a second one, in the same window, writes
collapsed stacks that are summarised here into inclusive shares per function and per area.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import procstat
from bench.load import kirim_client, kirim_enqueue
from bench.report import RESULTS, save_json
from bench.stack import Stack, wait_workers_ready

PROCS, THREADS = 2, 32
# Areas of the code, matched against each sampled stack (first match wins per area).
AREAS = {
    "celery events (task-received/started/succeeded)": ("celery/events/",),
    "kombu consume/ack (broker)": ("kombu/",),
    "httpx/httpcore provider call": ("httpx/", "httpcore/", "h11/"),
    "redis-py round trips": ("redis/",),
    "structlog / logging": ("structlog/", "logging/"),
    "pydantic validation": ("pydantic/", "pydantic_core"),
    "kirim records / Lua scripts": ("producer/core/records.py", "producer/core/lua"),
    "kirim guard": ("producer/core/guard.py",),
    "kirim rate limiter": ("worker/ratelimit.py",),
}


def run(stack: Stack, info: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Backlog, workers, 15 s (5 s quick) of sampling of the first worker."""
    duration = 4 if quick else 15
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    stack.reset(0)
    client = kirim_client(stack.redis_server.url, stack.sandbox_url)
    kirim_enqueue(client, 400 * (duration + (3 if quick else 6)))
    client.close()
    names = [f"p{i}" for i in range(PROCS)]
    workers = [stack.kirim_worker("otp,sms,wa", THREADS, name) for name in names]
    raw = RESULTS / "profile.collapsed.txt"
    try:
        wait_workers_ready(stack.redis, names)
        time.sleep(2.0)
        pid = str(workers[0].pid)
        common = ["--pid", pid, "--duration", str(duration), "--nonblocking", "--rate", "100"]
        threads0, sent0 = procstat.thread_cpu_s(workers[0].pid), stack.sandbox.stats()["accepted"]
        svg = subprocess.Popen([pyspy, "record", "-o", str(RESULTS / "profile.svg"), *common],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        subprocess.run([pyspy, "record", "-o", str(raw), "--format", "raw", *common],
                       check=True, capture_output=True, timeout=duration + 30)
        svg.wait(30)
        threads = _thread_split(threads0, procstat.thread_cpu_s(workers[0].pid), workers[0].pid,
                                duration, stack.sandbox.stats()["accepted"] - sent0)
    finally:
        stack.stop(workers)
    data = {"info": info, "quick": quick, "procs": PROCS, "threads": THREADS,
            "seconds": duration, "thread_cpu": threads, **summarise(raw)}
    save_json("profile", data)
    return data


def _thread_split(before: dict[str, float], after: dict[str, float], pid: int,
                  seconds: float, sent: int) -> dict[str, Any]:
    """CPU of the consumer (main) thread vs the pool threads over the sampled window."""
    main_key = next((k for k in after if k.startswith(f"{pid}:")), "")
    main = after.get(main_key, 0.0) - before.get(main_key, 0.0)
    rest = sum(v - before.get(k, 0.0) for k, v in after.items() if k != main_key)
    return {"main_thread_core_pct": round(100 * main / seconds, 1),
            "other_threads_core_pct": round(100 * rest / seconds, 1),
            "messages_sent_by_all_workers": sent}


def summarise(raw: Path) -> dict[str, Any]:
    """Inclusive shares per area and per function, and the top self-time frames."""
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        total += count
        for frame in set(frames):
            inclusive[_short(frame)] += count
        self_time[_short(frames[-1])] += count
        lines[_deepest_kirim(frames)] += count
        for area, needles in AREAS.items():
            if any(n in stack_text for n in needles):
                areas[area] += count

    def share(counter: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, round(100 * c / total, 1)) for name, c in counter.most_common(k)]

    return {"samples": total, "areas_pct": dict(share(areas, len(AREAS))),
            "inclusive_top_pct": share(inclusive, 40), "self_top_pct": share(self_time, 25),
            "deepest_kirim_line_pct": share(lines, 20)}


def _deepest_kirim(frames: list[str]) -> str:
    """The innermost kirim frame (with its line) of a sample, or the thread it ran in."""
    for frame in reversed(frames):
        where = frame.partition(" (")[2]
        if where.startswith(("worker/", "producer/")):
            return frame
    if any("asynloop" in f for f in frames):
        return "celery consumer loop (main thread: fetch, ack, events)"
    return "other threads (pool idle bookkeeping, timers)"


def _short(frame: str) -> str:
    """'func (path/to/site-packages/pkg/mod.py:12)' → 'func (pkg/mod.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"
