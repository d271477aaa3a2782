"""Which machine and which run a figure comes from: nproc, CPU model, load, date, commit."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def git_commit() -> str:
    """Short commit of the working tree, with '+dirty' when it has changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def load_avg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def run_info() -> dict[str, Any]:
    """Machine and run identity, stored in every result file."""
    return {"nproc": os.cpu_count(), "cpu_model": cpu_model(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "git_commit": git_commit(),
            "mem_total_gib": round(_mem_total_kib() / 1024 / 1024, 1),
            "load_before": load_avg()}


def _mem_total_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def caption(info: dict[str, Any]) -> str:
    """One line naming machine and run, printed under every figure."""
    la = info.get("load_before", (0, 0, 0))
    return (f"{info['nproc']} CPU × {info['cpu_model']}, {info['mem_total_gib']} GiB · "
            f"{info['date']} · commit {info['git_commit']} · load before {la[0]:.2f}")
