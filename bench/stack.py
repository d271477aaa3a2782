"""The processes a benchmark drives: Redis, the sandbox, kirim or naive workers, the API.

Everything runs on loopback as child processes, started as `make run` starts its own
(producer/cli/processes.py); `Stack` stops every one it started.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import Redis

from producer.cli.processes import (
    Process,
    RedisServer,
    celery,
    free_port,
    python_module,
    spawn,
    start_sandbox,
    stop,
    wait_http,
)
from sandbox.control import SandboxControl

ROOT = Path(__file__).resolve().parent.parent  # children run here: `bench` is not installed

API_KEY = "bench-key"
# Production-like settings; the rate limit is set far above any load unless a run says so.
KIRIM_ENV = {
    "KIRIM_NUSASMS_USER": "demo",
    "KIRIM_NUSASMS_PASSWORD": "demo",
    "KIRIM_RATE_LIMIT_PER_S": "100000",
    "KIRIM_RATE_LIMIT_BURST": "2000",
    "KIRIM_API_KEYS": f"bench:{hashlib.sha256(API_KEY.encode()).hexdigest()}",
    # The bench key's own rate is not what is measured: far above any load.
    "KIRIM_API_KEY_POLICIES": '{"bench": {"rate_per_s": 1000000, "burst": 1000000}}',
    "KIRIM_HASH_KEY": "bench-hash-key-0123456789abcdefghijklmnop",
}


class Stack:
    """Redis + sandbox for one benchmark; workers and the API are started per run."""

    def __init__(self, logdir: Path | None = None) -> None:
        self.logdir = logdir or Path(tempfile.mkdtemp(prefix="kirim-bench-"))
        self.redis_server = RedisServer(self.logdir)
        self.sandbox_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.procs: list[Process] = []
        self.sandbox_proc: Process | None = None

    def start(self) -> Stack:
        """Start Redis and the sandbox and wait for both."""
        self.redis_server.start()
        self.redis = Redis.from_url(self.redis_server.url)
        self.sandbox_proc = start_sandbox(self.sandbox_port, self.logdir / "sandbox.log",
                                          "--no-otp-marker-check", "--credits", "100000000",
                                          cwd=ROOT)
        self.sandbox = SandboxControl(self.sandbox_url, timeout_s=60)
        return self

    @property
    def env(self) -> dict[str, str]:
        """Environment of a kirim process on this stack."""
        return {**KIRIM_ENV, "KIRIM_REDIS_URL": self.redis_server.url,
                "KIRIM_NUSASMS_URL": self.sandbox_url}

    def reset(self, latency_ms: float, **knobs: Any) -> None:
        """Empty Redis and the sandbox; set the provider latency."""
        self.redis.flushall()
        self.sandbox.reset()
        self.sandbox.configure(latency_ms=latency_ms, otp_marker_check=False, **knobs)

    def kirim_worker(self, queues: str, threads: int, name: str,
                     extra_env: dict[str, str] | None = None) -> Process:
        """One `celery -A worker.app worker -P threads` process, as the README deploys it."""
        args = celery("worker", "-P", "threads", "-c", str(threads), "-Q", queues,
                      "-n", f"{name}@%h", "-l", "WARNING", "--without-mingle", "--without-gossip")
        return self._spawn(args, name, extra_env)

    def naive_worker(self, name: str = "naive") -> Process:
        """The naive baseline: `celery -A bench.naive_app worker`, every setting default."""
        args = python_module("celery", "-A", "bench.naive_app", "worker", "-n", f"{name}@%h",
                             "-l", "WARNING")
        return self._spawn(args, name, {"NAIVE_BROKER_URL": self.redis_server.url,
                                        "NAIVE_PROVIDER_URL": self.sandbox_url})

    def api(self, workers: int = 1) -> tuple[Process, str]:
        """The ingest API under uvicorn; returns the process and its URL."""
        port = free_port()
        proc = self._spawn(python_module(
            "uvicorn", "producer.api:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log", "--workers", str(workers)), "api", None)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/openapi.json", "kirim api")
        return proc, url

    def _spawn(self, args: list[str], name: str,
               extra_env: dict[str, str] | None) -> Process:
        proc = spawn(args, env={**self.env, **(extra_env or {})},
                     log=self.logdir / f"{name}.log", cwd=ROOT)
        self.procs.append(proc)
        return proc

    def stop(self, procs: list[Process] | None = None) -> None:
        """Stop the given worker/API processes (all when None): SIGTERM, then SIGKILL."""
        chosen = list(self.procs) if procs is None else procs
        stop(chosen, timeout_s=20)
        for proc in chosen:
            if proc in self.procs:
                self.procs.remove(proc)

    def close(self) -> None:
        """Stop everything this stack started."""
        self.stop()
        if self.sandbox_proc is not None:
            self.stop([self.sandbox_proc])
        self.redis_server.stop()


def wait_workers_ready(redis: Redis, names: list[str], timeout_s: float = 60.0) -> float:
    """Wait until each named worker's remote-control queue is bound (its consumer runs)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        bound = redis.smembers("_kombu.binding.celery.pidbox")
        members = {m.decode(errors="replace") for m in bound}
        if all(any(f"{n}@" in m for m in members) for n in names):
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"workers {names} not ready within {timeout_s}s")
