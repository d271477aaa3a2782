"""Root fixtures: a real redis-server and a real sandbox, each on a free port.

Nothing here skips: a machine without redis-server fails the tests that need it, with the
command that installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

# celery.contrib.pytest is loaded in pyproject's addopts; re-export its worker fixture here.
from celery.contrib.pytest import celery_worker  # noqa: F401

from tests.procs import RedisServer, free_port, python_module, spawn, wait_http

# Any accidental enqueue without a test's own settings goes nowhere, loudly.
os.environ.setdefault("KIRIM_REDIS_URL", "redis://127.0.0.1:1/0")

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis, emptied before each test."""
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis(redis_url: str) -> Iterator[redis_lib.Redis]:
    """A client on an empty Redis (decode_responses=True)."""
    client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A NusaSMS sandbox process on a free port; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    proc = spawn(python_module("sandbox", "--host", "127.0.0.1", "--port", str(port)), log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_sandbox/health", "sandbox")
    except RuntimeError:
        proc.kill()
        raise RuntimeError(f"sandbox failed to start; its log:\n{log.read_text()}") from None
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def sandbox(sandbox_server: str):  # type: ignore[no-untyped-def]
    """Control of the session's sandbox, reset to its defaults before each test."""
    from sandbox.control import SandboxControl

    control = SandboxControl(sandbox_server)
    control.reset()
    yield control
    control.close()
