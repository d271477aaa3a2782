"""Real kirim worker and beat processes for tests (`celery -A worker.app worker|beat`)."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
from pathlib import Path

from producer.cli.processes import celery
from tests.support.processes import Process, spawn, stop

ALL_QUEUES = "otp,sms,wa,reports,maintenance"

TEST_HASH_KEY = "test-hash-key-0123456789abcdefghijklmnop"
# Standard Webhooks secrets of the sources tests send callbacks from (whsec_ + base64).
CALLBACK_SECRETS = {
    name: "whsec_" + base64.b64encode(hashlib.sha256(f"kirim test {name}".encode()).digest()
                                      ).decode()
    for name in ("shop", "billing", "test", "python", "api")}

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
    # Tenancy: a fixed hash key; callbacks may reach the tests' receivers on 127.0.0.1 over
    # http, and every test source signs its callbacks with its own secret. Tests of the
    # policies themselves (test_tenancy.py, test_callback_ssrf.py) override these.
    "KIRIM_HASH_KEY": TEST_HASH_KEY,
    "KIRIM_CALLBACK_ALLOW_PRIVATE": "true",
    # The session's API serves every test, all from 127.0.0.1: neither its keys' own rate nor
    # the failed-login block is what those tests measure (test_tenancy.py sets its own).
    "KIRIM_API_AUTH_FAILURES_PER_MIN": "1000000",
    "KIRIM_API_KEY_POLICIES": '{"*": {"callback_http": true, "groups": ["*"],'
                              ' "rate_per_s": 100000, "burst": 100000}}',
    "KIRIM_CALLBACK_SECRETS": ",".join(f"{name}:{secret}"
                                       for name, secret in CALLBACK_SECRETS.items()),
}

# The credits poll every 0.3 s with alert levels a test can cross with the sandbox's knobs.
FAST_CREDITS_POLL = {"KIRIM_CREDITS_POLL_INTERVAL_S": "0.3", "KIRIM_CREDITS_WARN_BELOW": "5000",
                     "KIRIM_CREDITS_CRITICAL_BELOW": "100", "KIRIM_CREDITS_EXPIRY_WARN_DAYS": "7"}


class Workers:
    """Starts worker (and beat) processes; stops every one of them at teardown."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        # The test's workers share a call journal directory (worker/journal.py) of their own.
        self.env = {"KIRIM_WORKER_JOURNAL_DIR": str(logdir / "journal"), **env}
        self.logdir = logdir
        self.procs: list[Process] = []

    def start(self, queues: str = ALL_QUEUES, concurrency: int = 8, name: str = "w",
              extra_env: dict[str, str] | None = None) -> Process:
        """One worker process consuming `queues`."""
        args = celery("worker", "-P", "threads", "-c", str(concurrency), "-Q", queues,
                      "-n", f"{name}{len(self.procs)}@%h", "-l", "INFO",
                      "--without-mingle", "--without-gossip")
        proc = spawn(args, env={**self.env, **(extra_env or {})},
                     log=self.logdir / f"{name}{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def beat(self) -> Process:
        """A beat process (RedBeat)."""
        proc = spawn(celery("beat", "-l", "INFO"), env=self.env,
                     log=self.logdir / f"beat{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def kill(self, proc: Process, sig: int = signal.SIGKILL) -> None:
        """Signal a worker's whole process group and reap it."""
        os.killpg(proc.pid, sig)
        proc.wait(20)

    def stop_all(self) -> None:
        """Warm shutdown, then SIGKILL what is left."""
        stop(self.procs)

    def logs(self) -> str:
        """Every worker log, for failure messages."""
        return "\n".join(p.read_text(errors="replace")[-4000:]
                         for p in sorted(self.logdir.glob("*.log")))
