"""Start real servers (redis-server, the sandbox, celery workers) as child processes for tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_redis_server() -> str:
    """Path of redis-server, or a failure that says how to install it."""
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)), None
    )
    if not found:
        raise RuntimeError(
            "redis-server not found: the tests need a real Redis 7. Install it with"
            " `sudo apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis`,"
            " or run `make test`, which installs it where it can."
        )
    return found


class RedisServer:
    """A throwaway redis-server on a free port, data in a temp dir."""

    def __init__(self, workdir: Path, appendonly: bool = False, password: str | None = None):
        self.port = free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.workdir), "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
            "--loglevel", "warning",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_tcp(self.port, what="redis-server")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def wait_tcp(port: int, what: str, timeout_s: float = 15.0) -> None:
    """Wait until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s}s")


def wait_http(url: str, what: str, timeout_s: float = 20.0) -> None:
    """Wait until GET url answers 200."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout_s}s (last: {last!r})")


def spawn(args: Sequence[str], env: dict[str, str] | None = None,
          log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a child process from the repo root with the test environment."""
    full_env = {**os.environ, **(env or {})}
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        list(args), cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def python_module(module: str, *args: str) -> list[str]:
    """Command line running `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]
