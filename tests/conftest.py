"""Root fixtures: a real redis-server and a real sandbox, each on a free port.

Nothing here skips: a machine without redis-server fails the tests that need it, with the
command that installs it. Shared helpers are plain modules in tests/support/.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
import redis as redis_lib

# Before the first import of tests.support: their asserts get pytest's rewriting too.
pytest.register_assert_rewrite("tests.support")

# celery.contrib.pytest is loaded in pyproject's addopts; re-export its worker fixture here.
from celery.contrib.pytest import celery_worker  # noqa: E402, F401

from tests.support.processes import RedisServer, sandbox_process  # noqa: E402

# Any accidental enqueue without a test's own settings goes nowhere, loudly.
os.environ.setdefault("KIRIM_REDIS_URL", "redis://127.0.0.1:1/0")
# Settings built in a test process (unit tests, in-process clients) hash texts with this key.
os.environ.setdefault("KIRIM_HASH_KEY", "test-hash-key-0123456789abcdefghijklmnop")
# Call journals (worker/journal.py) of this run's processes, not the host's shared memory.
if "KIRIM_WORKER_JOURNAL_DIR" not in os.environ:
    os.environ["KIRIM_WORKER_JOURNAL_DIR"] = tempfile.mkdtemp(prefix="kirim-journal-")
    atexit.register(shutil.rmtree, os.environ["KIRIM_WORKER_JOURNAL_DIR"], True)


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
    with sandbox_process(tmp_path_factory.mktemp("sandbox") / "sandbox.log") as url:
        yield url


@pytest.fixture
def sandbox(sandbox_server: str):  # type: ignore[no-untyped-def]
    """Control of the session's sandbox, reset to its defaults before each test."""
    from sandbox.control import SandboxControl

    control = SandboxControl(sandbox_server)
    control.reset()
    yield control
    control.close()
