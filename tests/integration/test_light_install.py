"""The light producer install (issue 19): a service that only enqueues runs `pip install kirim`
and gets the client, not the worker, the API or Flower.

A fresh venv gets the bare package (no extras) through the pins, as a user would install it;
then a process in that venv imports `KirimClient` and enqueues one SMS to the test Redis. The
install goes through the same package index as every other install here (pip's own config),
from a copy of the source, so the build leaves nothing in the work tree.

It takes 40-70 s on 2 cores (more while other tests load them), nearly all of it pip:
resolving, fetching from the index, building the wheel, installing 32 distributions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib

from producer.core.keys import Keys
from tests.support.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# Distributions a client-only install must not bring (they belong to an extra).
HEAVY = {"flower", "tornado", "fastapi", "starlette", "uvicorn", "uvloop", "httptools",
         "watchfiles", "websockets", "python-multipart", "celery-redbeat", "prometheus-client",
         "typer", "rich", "pygments", "humanize", "hiredis", "swagger-ui-bundle",
         "phonenumbers"}
# What it does bring: kirim's runtime requirements and their own (Celery's included).
EXPECTED = {"kirim", "celery", "kombu", "redis", "httpx", "pydantic", "pydantic-settings",
            "structlog", "phonenumberslite"}
# Before issue 19 it was 57 (kirim included; 32 after).
MAX_DISTRIBUTIONS = 36
# Modules the enqueue must not import (each one is an extra's, or not installed at all).
NOT_IMPORTED = {"flower", "tornado", "fastapi", "starlette", "uvicorn", "prometheus_client",
                "typer", "rich", "worker", "sandbox", "producer.api", "producer.cli"}

ENQUEUE = r"""
import json, sys
from producer import KirimClient

client = KirimClient.from_env()
message_id = client.send_sms("0812-3456-7890", "Pesanan #1001 sudah dikirim.")
record = client.status(message_id)
client.close()
imported = sorted(name for name in sys.modules
                  if name.split(".")[0] not in sys.stdlib_module_names)
print(json.dumps({"id": message_id, "state": record.state, "to": record.job.to,
                  "imported": imported, "file": sys.modules["producer"].__file__}))
"""


def _source_copy(dest: Path) -> Path:
    """What an sdist holds: the project metadata and its packages, without caches."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for package in ("producer", "worker", "sandbox"):
        shutil.copytree(ROOT / package, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _clean_env(**extra: str) -> dict[str, str]:
    """os.environ (pip's index config included) without this venv's or test run's traces."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("KIRIM_")
           and not k.startswith("PYTEST_")}
    return {**env, **extra}


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_a_bare_install_enqueues_with_the_client_alone(tmp_path: Path, redis_url: str) -> None:
    source = _source_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    python = str(venv / "bin" / "python")
    env = _clean_env()
    started = time.monotonic()
    # No ensurepip (10-15 s): this environment's pip installs into the new venv (--python).
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env, 60)
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q",
          "--disable-pip-version-check", "-c", str(ROOT / "deploy/constraints.txt"),
          str(source)], tmp_path, env, 240)
    installed_s = time.monotonic() - started

    listing = _run([python, "-c", "import importlib.metadata as m, json; print(json.dumps("
                    "sorted({d.metadata['Name'] for d in m.distributions()})))"],
                   tmp_path, env, 60)
    names = {n.lower().replace("_", "-") for n in json.loads(listing)}
    ours = names - {"pip", "setuptools", "wheel"}
    print(f"\nlight install: {len(ours)} distributions in {installed_s:.0f} s: {sorted(ours)}")
    assert ours >= EXPECTED, f"missing {EXPECTED - ours}"
    assert not ours & HEAVY, f"a client-only install pulls in {sorted(ours & HEAVY)}"
    assert len(ours) <= MAX_DISTRIBUTIONS, f"{len(ours)} distributions: {sorted(ours)}"

    # From tmp_path (no `producer` folder to shadow the installed one, no .env to read).
    out = _run([python, "-c", ENQUEUE], tmp_path,
               _clean_env(KIRIM_REDIS_URL=redis_url,
                          KIRIM_HASH_KEY="light-install-hash-key-0123456789abcdef"), 60)
    reply = json.loads(out.strip().splitlines()[-1])
    assert reply["file"].startswith(str(venv)), f"imported {reply['file']}, not the install"
    imported = set(reply["imported"])
    assert not {m for m in imported for bad in NOT_IMPORTED
                if m == bad or m.startswith(bad + ".")}, sorted(imported)
    assert reply["to"] == "6281234567890"

    # The console script is installed too: without the cli extra it says what to install.
    script = venv / "bin" / "kirim"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60,
                          env=_clean_env(), cwd=tmp_path)
    assert done.returncode == 69 and "pip install 'kirim[cli]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    redis = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    try:
        record = redis.hgetall(Keys().message(reply["id"]))
        assert record, f"no record for {reply['id']} in Redis"
        assert json.loads(record["job"])["to"] == "6281234567890", record
        assert record["state"] == reply["state"], record
        assert redis.llen("sms") == 1, "the task is not on the sms queue"
    finally:
        redis.close()
