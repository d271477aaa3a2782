"""A local kirim stack as child processes (what `make run` starts): Redis, the sandbox,
an OTP worker, a general worker, a maintenance worker with beat, Flower and the ingest API.

Ports: the preferred one when free, else any free one; all printed. Data under `.run/`.
The process plumbing is producer/cli/processes.py, shared with the benchmarks and tests.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from producer.cli.processes import (
    Process,
    RedisServer,
    celery,
    pick_port,
    python_module,
    spawn,
    start_sandbox,
    stop,
    wait_tcp,
)

DEMO_API_KEY = "kirim-demo-key"  # the demo's only API key (hashed in KIRIM_API_KEYS)

RUN_DIR = Path(".run")

# Process name: its `celery worker` options. Each serves /metrics on a port of its own.
WORKERS = {
    "worker-otp": ["-P", "threads", "-c", "8", "-Q", "otp", "-n", "otp@%h"],
    "worker-general": ["-P", "threads", "-c", "32", "-Q", "otp,sms,wa", "-n", "general@%h"],
    "worker-maintenance": ["-P", "threads", "-c", "4", "-Q", "reports,maintenance",
                           "-n", "maint@%h"],
}


@dataclass
class LocalStack:
    """Starts and stops the processes; `env` is what every child (and the demo) uses."""

    flower_user: str = "admin"
    flower_password: str = "kirim-demo"
    procs: dict[str, Process] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    redis: RedisServer | None = None

    def start(self) -> None:
        """Start everything and wait until each part answers."""
        RUN_DIR.mkdir(exist_ok=True)
        self.ports = {"redis": pick_port(6399), "sandbox": pick_port(8099),
                      "flower": pick_port(5555), "api": pick_port(8080)}
        for offset, worker in enumerate(WORKERS):
            self.ports[worker] = pick_port(9808 + offset)
        self.env = {**os.environ, **self._kirim_env()}
        self._start_redis()
        self.procs["sandbox"] = start_sandbox(self.ports["sandbox"], RUN_DIR / "sandbox.log")
        for worker, options in WORKERS.items():
            self._spawn(worker, celery("worker", *options, "-l", "INFO"))
        self._spawn("beat", celery("beat", "-l", "INFO",
                                   "--schedule", str(RUN_DIR / "beat-schedule")))
        self._spawn("flower", celery("flower", f"--port={self.ports['flower']}",
                                     "--address=127.0.0.1",
                                     f"--basic-auth={self.flower_user}:{self.flower_password}"))
        self._spawn("api", python_module("producer.cli", "api", "--port", str(self.ports["api"])))
        for name in ("flower", "api"):
            wait_tcp(self.ports[name], name, 30, hint=f"; see {RUN_DIR}/{name}.log")

    def _kirim_env(self) -> dict[str, str]:
        return {
            "KIRIM_REDIS_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            "KIRIM_NUSASMS_URL": f"http://127.0.0.1:{self.ports['sandbox']}",
            "KIRIM_NUSASMS_USER": "demo", "KIRIM_NUSASMS_PASSWORD": "demo",
            "KIRIM_RETRY_BASE_DELAY_S": "0.5", "KIRIM_RETRY_MAX_DELAY_S": "5",
            "KIRIM_NUSASMS_READ_TIMEOUT_S": "5", "KIRIM_SEND_LEASE_S": "20",
            # The demo shows its tasks in Flower (off by default: a publish per event).
            "KIRIM_WORKER_TASK_EVENTS": "true",
            "KIRIM_API_KEYS": f"demo:{hashlib.sha256(DEMO_API_KEY.encode()).hexdigest()}",
            # The demo batch goes in at once: the demo key's rate allows it.
            "KIRIM_API_KEY_POLICIES": '{"demo": {"rate_per_s": 1000, "burst": 10000}}',
            # Keys the text hashes; one per run is enough, as each run starts an empty Redis.
            "KIRIM_HASH_KEY": os.environ.get("KIRIM_HASH_KEY") or secrets.token_urlsafe(32),
        }

    def _start_redis(self) -> None:
        # The demo starts from an empty Redis each run (its counters would defer a rerun's
        # batch); AOF stays on, as in production.
        data = RUN_DIR / "redis"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        self.redis = RedisServer(data.resolve(), appendonly=True, port=self.ports["redis"],
                                 fsync_always=False, log=RUN_DIR / "redis.log").start()

    def _spawn(self, name: str, args: list[str]) -> None:
        metrics_port = self.ports.get(name, 0) if name in WORKERS else 0
        self.procs[name] = spawn(args, env={**self.env, "KIRIM_METRICS_PORT": str(metrics_port)},
                                 log=RUN_DIR / f"{name}.log")

    def flower_ok(self) -> bool:
        """True when Flower answers with basic auth."""
        try:
            reply = httpx.get(f"http://127.0.0.1:{self.ports['flower']}/api/workers",
                              auth=(self.flower_user, self.flower_password), timeout=5)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), the last started first, then SIGKILL the stragglers;
        Redis last, so the workers and beat shut down with their broker still there."""
        stop(reversed(list(self.procs.values())))
        if self.redis is not None:
            self.redis.stop()
