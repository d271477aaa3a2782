"""The ingest API as a real uvicorn process for tests, and fixtures that start it.

A test module loads them with `pytest_plugins = ("tests.api_server",)` (and imports nothing
from here, so pytest can rewrite this module's asserts).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.kirim_stack import TEST_ENV
from tests.procs import RedisServer, free_port, python_module, spawn, wait_http

KEY_NAME = "shop"
KEY = "s3cret-shop-key"
OTHER_NAME = "billing"
OTHER_KEY = "s3cret-billing-key"


def api_keys_setting() -> str:
    """KIRIM_API_KEYS for the two test keys (hashes only)."""
    return ",".join(f"{name}:{hashlib.sha256(key.encode()).hexdigest()}"
                    for name, key in ((KEY_NAME, KEY), (OTHER_NAME, OTHER_KEY)))


class ApiServer:
    """`uvicorn producer.api:app` on a free port; `.client` is authenticated as `shop`."""

    key_name, key, other_key = KEY_NAME, KEY, OTHER_KEY

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = {**env}
        self.log = logdir / f"api-{free_port()}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=10.0,
                                   headers={"Authorization": f"Bearer {KEY}"})
        self.anon = httpx.Client(base_url=self.url, timeout=10.0)

    def start(self) -> ApiServer:
        """Start and wait until the app answers."""
        self.proc = spawn(python_module("uvicorn", "producer.api:app", "--host", "127.0.0.1",
                                        "--port", str(self.port), "--log-level", "warning"),
                          env=self.env, log=self.log)
        try:
            wait_http(f"{self.url}/openapi.json", "kirim api")
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"api failed to start; its log:\n{self.logs()}") from None
        return self

    def stop(self) -> None:
        """Stop the process group; close the clients."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.client.close()
        self.anon.close()

    def logs(self) -> str:
        """The server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def api_env_for(redis_url: str, sandbox_url: str, **extra: str) -> dict[str, str]:
    """The kirim_env of conftest plus API keys and any extra settings."""
    return {**TEST_ENV, "KIRIM_REDIS_URL": redis_url, "KIRIM_NUSASMS_URL": sandbox_url,
            "KIRIM_API_KEYS": api_keys_setting(), **extra}


@pytest.fixture(scope="session")
def api_session(redis_server: RedisServer, sandbox_server: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One API process for the session, on the session's Redis and sandbox."""
    server = ApiServer(api_env_for(redis_server.url, sandbox_server),
                       tmp_path_factory.mktemp("api")).start()
    yield server
    server.stop()


@pytest.fixture
def api(api_session: ApiServer, kirim_env: dict[str, str]) -> ApiServer:
    """The session's API, with Redis flushed and the sandbox reset for this test."""
    assert kirim_env["KIRIM_REDIS_URL"] == api_session.env["KIRIM_REDIS_URL"]
    return api_session


@pytest.fixture
def api_env(kirim_env: dict[str, str]) -> dict[str, str]:
    """kirim_env plus the test API keys: the base for `api_factory`."""
    return {**kirim_env, "KIRIM_API_KEYS": api_keys_setting()}


@pytest.fixture
def api_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ApiServer]]:
    """Start extra API processes with their own settings: `api_factory(env)`; all stopped."""
    started: list[ApiServer] = []

    def make(env: dict[str, str]) -> ApiServer:
        server = ApiServer(env, tmp_path).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
