"""The ingest API as a real uvicorn process for tests, and the test API keys.

The fixtures that start it (`api`, `api_env`, `api_factory`) are in tests/integration/conftest.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from tests.support.processes import Process, free_port, python_module, spawn, stop, wait_http
from tests.support.workers import TEST_ENV

KEY_NAME = "shop"
KEY = "s3cret-shop-key"
OTHER_NAME = "billing"
OTHER_KEY = "s3cret-billing-key"


def api_keys_setting() -> str:
    """KIRIM_API_KEYS for the two test keys (hashes only)."""
    return ",".join(f"{name}:{hashlib.sha256(key.encode()).hexdigest()}"
                    for name, key in ((KEY_NAME, KEY), (OTHER_NAME, OTHER_KEY)))


def api_env_for(redis_url: str, sandbox_url: str, **extra: str) -> dict[str, str]:
    """The kirim_env of the integration tests plus API keys and any extra settings."""
    return {**TEST_ENV, "KIRIM_REDIS_URL": redis_url, "KIRIM_NUSASMS_URL": sandbox_url,
            "KIRIM_API_KEYS": api_keys_setting(), **extra}


class ApiServer:
    """`uvicorn producer.api:app` on a free port; `.client` is authenticated as `shop`."""

    key_name, key, other_key = KEY_NAME, KEY, OTHER_KEY

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = {**env}
        self.log = logdir / f"api-{free_port()}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Process | None = None
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
        if self.proc is not None:
            stop([self.proc], timeout_s=10)
        self.client.close()
        self.anon.close()

    def logs(self) -> str:
        """The server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
