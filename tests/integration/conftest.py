"""Fixtures for tests that run real worker processes against Redis and the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.client import KirimClient
from producer.core.settings import Settings
from tests.kirim_stack import TEST_ENV, Workers


@pytest.fixture
def kirim_env(redis_url: str, sandbox) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Environment of a kirim process pointed at the test Redis and sandbox."""
    return {**TEST_ENV, "KIRIM_REDIS_URL": redis_url, "KIRIM_NUSASMS_URL": sandbox.url}


@pytest.fixture
def settings(kirim_env: dict[str, str]) -> Settings:
    """The same configuration the workers get, as a Settings object."""
    return Settings(**{k.removeprefix("KIRIM_").lower(): v  # type: ignore[arg-type]
                       for k, v in kirim_env.items()})


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
