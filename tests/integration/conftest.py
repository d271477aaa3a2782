"""Fixtures for tests that run real kirim processes against Redis and the sandbox.

The same name means the same thing in every file: `kirim` a producer client, `workers` the
worker pool, `api` a running ingest API process (`api_factory` starts more), `receiver` a
local HTTP receiver (`receiver_factory` starts more), `sandbox_http` an HTTP client on the
sandbox, `aof_redis` a redis-server of the test's own that can be restarted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from producer.client import KirimClient
from producer.core.settings import Settings
from tests.support.api_server import ApiServer, api_env_for, api_keys_setting
from tests.support.processes import RedisServer
from tests.support.receiver import Receiver, serving_receiver
from tests.support.settings import settings_from_env
from tests.support.workers import TEST_ENV, Workers


@pytest.fixture
def kirim_env(redis_url: str, sandbox) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Environment of a kirim process pointed at the test Redis and sandbox."""
    return {**TEST_ENV, "KIRIM_REDIS_URL": redis_url, "KIRIM_NUSASMS_URL": sandbox.url}


@pytest.fixture
def settings(kirim_env: dict[str, str]) -> Settings:
    """The same configuration the workers get, as a Settings object."""
    return settings_from_env(kirim_env)


@pytest.fixture
def kirim(settings: Settings) -> Iterator[KirimClient]:
    """A producer client on the test Redis."""
    with KirimClient(settings, source="test") as client:
        yield client


@pytest.fixture
def workers(kirim_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    """Start worker processes with `workers.start(...)`; all stopped at teardown."""
    pool = Workers(kirim_env, tmp_path)
    yield pool
    pool.stop_all()


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
    """The session's API process, with Redis flushed and the sandbox reset for this test."""
    assert kirim_env["KIRIM_REDIS_URL"] == api_session.env["KIRIM_REDIS_URL"]
    return api_session


@pytest.fixture
def api_env(kirim_env: dict[str, str]) -> dict[str, str]:
    """kirim_env plus the test API keys: the base for `api_factory`."""
    return {**kirim_env, "KIRIM_API_KEYS": api_keys_setting()}


@pytest.fixture
def api_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ApiServer]]:
    """Start API processes with their own settings: `api_factory(env)`; all stopped."""
    started: list[ApiServer] = []

    def make(env: dict[str, str]) -> ApiServer:
        server = ApiServer(env, tmp_path).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP receiver for one test (callbacks, webhooks, the sandbox's pushes)."""
    with serving_receiver() as rec:
        yield rec


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    """Start receivers with `receiver_factory(status=…, hang_s=…)`; all stopped at teardown."""
    with contextlib.ExitStack() as stack:
        yield lambda **options: stack.enter_context(serving_receiver(**options))


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own with AOF (appendfsync always), as in production;
    `.stop()` then `.start()` is a Redis restart on the same port with its data."""
    server = RedisServer(tmp_path / "aof", appendonly=True)
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox_http(sandbox: Any) -> Iterator[httpx.Client]:
    """An HTTP client on the (freshly reset) sandbox, for its NusaSMS routes."""
    with httpx.Client(base_url=sandbox.url, timeout=5) as client:
        yield client
