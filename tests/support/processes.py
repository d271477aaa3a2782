"""Processes for tests: the primitives `make run` and the benchmarks use too
(producer/cli/processes.py), with children started from the repo root."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from producer.cli import processes
from producer.cli.processes import (
    Process,
    RedisServer,
    free_port,
    python_module,
    stop,
    wait_http,
    wait_tcp,
)

__all__ = ["ROOT", "Process", "RedisServer", "free_port", "python_module", "sandbox_process",
           "spawn", "start_sandbox", "stop", "wait_http", "wait_tcp"]

ROOT = Path(__file__).resolve().parents[2]


def spawn(args: Sequence[str], env: dict[str, str] | None = None,
          log: Path | None = None) -> Process:
    """Start a child from the repo root with os.environ plus `env` (see processes.spawn)."""
    return processes.spawn(args, env=env, log=log, cwd=ROOT)


def start_sandbox(port: int, log: Path, *options: str) -> Process:
    """A sandbox process on `port`, answering when this returns (see processes.start_sandbox)."""
    return processes.start_sandbox(port, log, *options, cwd=ROOT)


@contextlib.contextmanager
def sandbox_process(log: Path, *options: str) -> Iterator[str]:
    """A sandbox process on a free port with command-line `options`; yields its URL."""
    port = free_port()
    proc = start_sandbox(port, log, *options)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop([proc], timeout_s=10)
