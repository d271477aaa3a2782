"""A local kirim stack as child processes (what `make run` starts): Redis, the sandbox,
an OTP worker, a general worker, a maintenance worker with beat, Flower and the ingest API.

Ports: the preferred one when free, else any free one; all printed. Data under `.run/`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

DEMO_API_KEY = "kirim-demo-key"  # the demo's only API key (hashed in KIRIM_API_KEYS)

RUN_DIR = Path(".run")


def pick_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else a free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def wait_port(port: int, what: str, timeout_s: float = 20.0) -> None:
    """Wait until something listens on 127.0.0.1:port, or fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on port {port}; see {RUN_DIR}/{what}.log")


@dataclass
class LocalStack:
    """Starts and stops the processes; `env` is what every child (and the demo) uses."""

    flower_user: str = "admin"
    flower_password: str = "kirim-demo"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        """Start everything and wait until each part answers."""
        RUN_DIR.mkdir(exist_ok=True)
        self.ports = {"redis": pick_port(6399), "sandbox": pick_port(8099),
                      "flower": pick_port(5555), "api": pick_port(8080)}
        for offset, worker in enumerate(("worker-otp", "worker-general", "worker-maintenance")):
            self.ports[worker] = pick_port(9808 + offset)  # /metrics: one port per process
        self.env = {**os.environ, **self._kirim_env()}
        self._start_redis()
        self._spawn("sandbox", [sys.executable, "-m", "sandbox", "--host", "127.0.0.1",
                                "--port", str(self.ports["sandbox"])])
        wait_port(self.ports["sandbox"], "sandbox")
        celery = [sys.executable, "-m", "celery", "-A", "worker.app"]
        self._spawn("worker-otp", [*celery, "worker", "-P", "threads", "-c", "8", "-Q", "otp",
                                   "-n", "otp@%h", "-l", "INFO"])
        self._spawn("worker-general", [*celery, "worker", "-P", "threads", "-c", "32",
                                       "-Q", "otp,sms,wa", "-n", "general@%h", "-l", "INFO"])
        self._spawn("worker-maintenance", [*celery, "worker", "-P", "threads", "-c", "4",
                                           "-Q", "reports,maintenance", "-n", "maint@%h",
                                           "-l", "INFO"])
        self._spawn("beat", [*celery, "beat", "-l", "INFO",
                             "--schedule", str(RUN_DIR / "beat-schedule")])
        self._spawn("flower", [*celery, "flower", f"--port={self.ports['flower']}",
                               "--address=127.0.0.1",
                               f"--basic-auth={self.flower_user}:{self.flower_password}"])
        self._spawn("api", [sys.executable, "-m", "producer.cli", "api",
                            "--port", str(self.ports["api"])])
        wait_port(self.ports["flower"], "flower", 30)
        wait_port(self.ports["api"], "api", 30)

    def _kirim_env(self) -> dict[str, str]:
        return {
            "KIRIM_REDIS_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            "KIRIM_NUSASMS_URL": f"http://127.0.0.1:{self.ports['sandbox']}",
            "KIRIM_NUSASMS_USER": "demo", "KIRIM_NUSASMS_PASSWORD": "demo",
            "KIRIM_RETRY_BASE_DELAY_S": "0.5", "KIRIM_RETRY_MAX_DELAY_S": "5",
            "KIRIM_NUSASMS_READ_TIMEOUT_S": "5", "KIRIM_SEND_LEASE_S": "20",
            "KIRIM_API_KEYS": f"demo:{hashlib.sha256(DEMO_API_KEY.encode()).hexdigest()}",
        }

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        # The demo starts from an empty Redis each run (its counters would defer a rerun's
        # batch); AOF stays on, as in production.
        data = RUN_DIR / "redis"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        self._spawn("redis", [binary, "--port", str(self.ports["redis"]), "--bind", "127.0.0.1",
                              "--dir", str(data.resolve()), "--appendonly", "yes",
                              "--save", ""])
        wait_port(self.ports["redis"], "redis")

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(RUN_DIR / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        metrics_port = self.ports[name] if name.startswith("worker-") else 0
        env = {**self.env, "KIRIM_METRICS_PORT": str(metrics_port)}
        self.procs[name] = subprocess.Popen(args, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def flower_ok(self) -> bool:
        """True when Flower answers with basic auth."""
        try:
            reply = httpx.get(f"http://127.0.0.1:{self.ports['flower']}/api/workers",
                              auth=(self.flower_user, self.flower_password), timeout=5)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    def stop(self) -> None:
        """Warm shutdown for everyone (SIGTERM), then SIGKILL the stragglers."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
