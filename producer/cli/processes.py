"""Child processes on loopback: ports, starting, waiting, stopping, and redis-server and the
sandbox as processes. `make run` (stack.py), the benchmarks (bench/stack.py) and the tests
(tests/support/) all start their processes with these.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx

Process = subprocess.Popen[bytes]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pick_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else a free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def wait_tcp(port: int, what: str, timeout_s: float = 15.0, hint: str = "") -> None:
    """Wait until something listens on 127.0.0.1:port, or fail naming `what` (and `hint`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s}s{hint}")


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


def python_module(module: str, *args: str) -> list[str]:
    """Command line running `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def celery(*args: str) -> list[str]:
    """Command line of `celery -A worker.app args` (a worker, beat or Flower)."""
    return python_module("celery", "-A", "worker.app", *args)


def spawn(args: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None,
          cwd: Path | None = None) -> Process:
    """Start a child with os.environ plus `env`, its output appended to `log`.

    Each child leads a process group of its own, so `stop` reaches what it forks, and a
    Ctrl-C meant for the parent does not reach it first.
    """
    with open(log, "ab") if log else open(os.devnull, "wb") as out:  # the child keeps a copy
        return subprocess.Popen(list(args), cwd=cwd, env={**os.environ, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(procs: Iterable[Process], timeout_s: float = 15.0) -> None:
    """SIGTERM each process group (a warm shutdown), in the order given; SIGKILL those still
    running after `timeout_s`."""
    chosen = list(procs)
    for proc in chosen:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in chosen:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def find_redis_server() -> str:
    """Path of redis-server, or a failure that says how to install it."""
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)), None
    )
    if not found:
        raise RuntimeError(
            "redis-server not found: kirim needs a real Redis 7. Install it with"
            " `sudo apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis`,"
            " or run `make run` / `make test`, which install it where they can."
        )
    return found


class RedisServer:
    """A redis-server on 127.0.0.1, data in `workdir`; on a free port unless `port` is given.

    Stopped and started again it keeps its port and (with AOF) its data: a Redis restart.
    `fsync_always` syncs the AOF on every write, so a SIGKILL loses nothing acknowledged.
    """

    def __init__(self, workdir: Path, appendonly: bool = False, password: str | None = None,
                 *, port: int | None = None, fsync_always: bool = True,
                 log: Path | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.password = password
        self.fsync_always = fsync_always
        self.log = log
        self.proc: Process | None = None

    @property
    def url(self) -> str:
        """redis:// URL of this server (with its password, if any)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start and wait until it listens."""
        args = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--save", "", "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no", "--loglevel", "warning"]
        if self.fsync_always:
            args += ["--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = spawn(args, log=self.log)
        wait_tcp(self.port, "redis-server", hint=f"; see {self.log}" if self.log else "")
        return self

    def stop(self) -> None:
        """SIGTERM (Redis writes its AOF out and exits) and wait."""
        if self.proc is not None:
            stop([self.proc], timeout_s=10)


def start_sandbox(port: int, log: Path, *options: str, cwd: Path | None = None) -> Process:
    """`python -m sandbox` on 127.0.0.1:port with command-line `options`; returns once its
    health check answers, or kills it and fails with its log."""
    proc = spawn(python_module("sandbox", "--host", "127.0.0.1", "--port", str(port), *options),
                 log=log, cwd=cwd)
    try:
        wait_http(f"http://127.0.0.1:{port}/_sandbox/health", "sandbox")
    except RuntimeError:
        stop([proc], timeout_s=1)
        raise RuntimeError(f"sandbox failed to start; its log:\n{log.read_text()}") from None
    return proc
