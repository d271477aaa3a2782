"""Flower as a real process for tests, and headless Chromium to look at it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from producer.cli.processes import celery
from tests.support.processes import Process, free_port, spawn, stop, wait_tcp

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # screenshots (git-ignored)

USER, PASSWORD = "admin", "flower-test-pw"


class Flower:
    """`celery -A worker.app flower --basic-auth=…` on a free loopback port."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logdir / "flower.log"
        self.proc: Process | None = None
        self.http = httpx.Client(base_url=self.url, auth=(USER, PASSWORD), timeout=10)

    def start(self) -> Flower:
        """Start and wait until it listens."""
        self.proc = spawn(celery("flower", f"--port={self.port}", "--address=127.0.0.1",
                                 f"--basic-auth={USER}:{PASSWORD}"), env=self.env, log=self.log)
        wait_tcp(self.port, "flower", timeout_s=30)
        return self

    def get(self, path: str, **params: Any) -> Any:
        """GET an authenticated Flower API path; the JSON reply."""
        reply = self.http.get(path, params=params)
        reply.raise_for_status()
        return reply.json()

    def stop(self) -> None:
        """SIGTERM its process group."""
        self.http.close()
        if self.proc is not None:
            stop([self.proc], timeout_s=10)


def chromium() -> str:
    """The Chromium binary; its absence fails the test (.ci/run installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    pytest.fail("chromium not installed (`apt-get install -y chromium`; .ci/run installs it)")


def headless(url: str, *extra: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once on `url` with `extra` flags (--dump-dom, --screenshot=…)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1400,900",
                "--virtual-time-budget=8000", *extra, url]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
