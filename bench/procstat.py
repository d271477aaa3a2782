"""What a process tree costs: CPU seconds and RSS from /proc; Redis calls from INFO."""

from __future__ import annotations

import os
from pathlib import Path

from redis import Redis

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
PAGE_B = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def group_pids(pgid: int) -> list[int]:
    """Live processes of a process group (a worker and its pool children)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def cpu_s(pgid: int) -> float:
    """utime+stime of every live process in the group, in seconds."""
    total = 0
    for pid in group_pids(pgid):
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total * TICK_S


def pid_cpu_s(pid: int) -> float:
    """utime+stime of one process (all its threads), in seconds."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) * TICK_S if fields else 0.0


def rss_mib(pid: int) -> float:
    """Resident set size of one process, MiB."""
    fields = _stat(pid)
    return int(fields[21]) * PAGE_B / 2**20 if fields else 0.0


def group_rss_mib(pgid: int) -> list[float]:
    """RSS of each process in the group, MiB."""
    return [round(rss_mib(pid), 1) for pid in sorted(group_pids(pgid))]


def redis_calls(redis: Redis) -> int:
    """Total commands Redis has executed (INFO commandstats, summed)."""
    return sum(int(v["calls"]) for v in redis.info("commandstats").values())


def redis_calls_by_cmd(redis: Redis) -> dict[str, int]:
    """Commands executed so far, per command."""
    return {k.removeprefix("cmdstat_"): int(v["calls"])
            for k, v in redis.info("commandstats").items()}


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of a process, keyed 'tid:name'."""
    out = {}
    for entry in os.scandir(f"/proc/{pid}/task"):
        try:
            raw = Path(f"/proc/{pid}/task/{entry.name}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        out[f"{entry.name}:{name}"] = (int(fields[11]) + int(fields[12])) * TICK_S
    return out
