"""Real kirim worker processes for integration tests (celery -A worker.app worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from producer.client import KirimClient
from tests.procs import python_module, spawn

# Fast but realistic knobs for tests: short timeouts and backoff, visibility timeout short
# enough that a SIGKILLed worker's tasks come back within the test.
TEST_ENV = {
    "KIRIM_NUSASMS_USER": "demo",
    "KIRIM_NUSASMS_PASSWORD": "demo",
    "KIRIM_NUSASMS_READ_TIMEOUT_S": "2",
    "KIRIM_NUSASMS_CONNECT_TIMEOUT_S": "1",
    "KIRIM_RETRY_BASE_DELAY_S": "0.2",
    "KIRIM_RETRY_MAX_DELAY_S": "1.5",
    "KIRIM_RETRY_MAX_ATTEMPTS": "4",
    "KIRIM_VISIBILITY_TIMEOUT_S": "12",
    "KIRIM_SEND_LEASE_S": "6",
    "KIRIM_RATE_LIMIT_PER_S": "2000",
    "KIRIM_RATE_LIMIT_BURST": "200",
    "KIRIM_OUTBOX_GRACE_S": "2",
    "KIRIM_METRICS_PORT": "0",  # a test that wants /metrics gives its worker a free port
}


class Workers:
    """Starts worker (and beat) processes; stops every one of them at teardown."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, queues: str = "otp,sms,wa,reports,maintenance", concurrency: int = 8,
              name: str = "w", extra_env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        """One worker process consuming `queues`."""
        args = python_module("celery", "-A", "worker.app", "worker", "-P", "threads",
                             "-c", str(concurrency), "-Q", queues,
                             "-n", f"{name}{len(self.procs)}@%h", "-l", "INFO",
                             "--without-mingle", "--without-gossip")
        proc = spawn(args, env={**self.env, **(extra_env or {})},
                     log=self.logdir / f"{name}{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def beat(self) -> subprocess.Popen[bytes]:
        """A beat process (RedBeat)."""
        proc = spawn(python_module("celery", "-A", "worker.app", "beat", "-l", "INFO"),
                     env=self.env, log=self.logdir / f"beat{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal a worker's whole process group and reap it."""
        os.killpg(proc.pid, sig)
        proc.wait(20)

    def stop_all(self) -> None:
        """Warm shutdown, then SIGKILL what is left."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def logs(self) -> str:
        """Every worker log, for failure messages."""
        return "\n".join(p.read_text(errors="replace")[-4000:]
                         for p in sorted(self.logdir.glob("*.log")))


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str,
             interval_s: float = 0.1) -> None:
    """Poll until `predicate()` is true, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def wait_states(kirim: KirimClient, ids: list[str], states: Iterable[str],
                timeout_s: float = 30.0) -> list[str | None]:
    """Wait until every message is in one of `states`; returns their states."""
    wanted = set(states)
    last: list[str | None] = []

    def settled() -> bool:
        nonlocal last
        last = kirim.store.states(ids)
        return all(s in wanted for s in last)

    try:
        wait_for(settled, timeout_s, f"{len(ids)} messages to reach {sorted(wanted)}")
    except AssertionError as exc:
        from collections import Counter

        raise AssertionError(f"{exc}; states now: {Counter(last)}") from None
    return last
