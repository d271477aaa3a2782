"""No secret is ever written down or shown: worker, beat and API logs, every Redis key and
value, Flower (tasks, the worker page's Config tab, /api/workers) and
`celery inspect conf`.

A whole stack with distinctive secrets (a passworded Redis, a NusaSMS password, an API key, a
callback token, a status-callback signing secret, the hash key) sends through the API, its
drop-in and the Python client; then everything it wrote or shows is searched for them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from producer.cli.processes import celery
from producer.client import KirimClient
from tests.support.flower import Flower
from tests.support.processes import ROOT, RedisServer
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import TEST_ENV, Workers

NUSASMS_USER = "kirim-secret-user"
NUSASMS_PASSWORD = "Nusa-Pw-7f3c9e2d41"
REDIS_PASSWORD = "Redis-Pw-a81b77c0d2"
API_KEY = "Api-Key-5d90c3e1f6"
CALLBACK_TOKEN = "Cb-Token-0e4f6a9b88-c71d3e5a29f04b6e"
SIGNING_SECRET = "whsec_a2lyaW0tc2VjcmV0cy10ZXN0OiBzaWduaW5nIGtleSAwZTRm"
HASH_KEY = "Hash-Key-3b9d7e1c55-f0a2c4e6b8d13579"
SECRETS = (NUSASMS_PASSWORD, REDIS_PASSWORD, API_KEY, CALLBACK_TOKEN,
           SIGNING_SECRET.removeprefix("whsec_"), HASH_KEY)


@pytest.fixture
def secret_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis that needs a password, as in production."""
    server = RedisServer(tmp_path, password=REDIS_PASSWORD).start()
    yield server
    server.stop()


def dump_redis(redis: Redis) -> str:
    """Every key and every value of every type, as one text."""
    readers: dict[str, Callable[[Any], Any]] = {
        "string": redis.get, "hash": redis.hgetall, "set": redis.smembers,
        "list": lambda k: redis.lrange(k, 0, -1), "stream": redis.xrange,
        "zset": lambda k: redis.zrange(k, 0, -1, withscores=True)}
    out = []
    for key in redis.scan_iter(count=1000):
        raw_kind: Any = redis.type(key)
        kind = raw_kind.decode() if isinstance(raw_kind, bytes) else str(raw_kind)
        assert kind in readers, f"cannot read a {kind} key: {key!r}"
        out.append(f"{key!r} {kind} {readers[kind](key)!r}")
    return "\n".join(out)


def test_no_secret_in_logs_redis_or_flower(
        secret_redis: RedisServer, sandbox: Any, tmp_path: Path,
        api_factory: Callable[[dict[str, str]], object]) -> None:
    sandbox.configure(user=NUSASMS_USER, password=NUSASMS_PASSWORD)
    env = {**TEST_ENV, "KIRIM_REDIS_URL": secret_redis.url, "KIRIM_NUSASMS_URL": sandbox.url,
           "KIRIM_NUSASMS_USER": NUSASMS_USER, "KIRIM_NUSASMS_PASSWORD": NUSASMS_PASSWORD,
           "KIRIM_CALLBACK_TOKEN": CALLBACK_TOKEN, "KIRIM_HASH_KEY": HASH_KEY,
           "KIRIM_CALLBACK_SECRETS": f"shop:{SIGNING_SECRET}",
           "KIRIM_API_KEYS": f"shop:{hashlib.sha256(API_KEY.encode()).hexdigest()}",
           "KIRIM_WORKER_TASK_EVENTS": "1"}  # Flower's task pages are searched too
    workers = Workers(env, tmp_path)
    flower = Flower(env, tmp_path).start()
    try:
        workers.start(name="secretw")
        workers.beat()  # RedBeat's own Redis connection, with the password kept out of conf
        api = api_factory(env)
        ids = _send_everywhere(api)
        with KirimClient(settings_from_env(env), source="test") as kirim:
            wait_states(kirim, ids, {"sent", "dead"})
        wait_for(lambda: len(flower.get("/api/tasks", taskname="kirim.send")) >= len(ids),
                 30, "Flower to see the tasks", interval_s=0.5)
        flower_view = json.dumps(flower.get("/api/tasks")) + flower.http.get(
            f"/task/{next(iter(flower.get('/api/tasks')))}").text
        config_view = _worker_config_views(flower, env)
        wait_for(lambda: "beat: Acquired lock" in _read_logs(tmp_path), 30,
                 "beat to take RedBeat's lock on the passworded Redis")
        stored = dump_redis(Redis.from_url(secret_redis.url))
    finally:
        flower.stop()
        workers.stop_all()
    # Worker, beat, API and Flower logs, whole, after shutdown (the shutdown lines count too).
    logs = _read_logs(tmp_path)
    assert "provider_reply" in logs and len(stored) > 1000 and "kirim.send" in flower_view
    assert "Scheduler: Sending due task" in logs, "beat did not schedule"
    for where, text in (("logs", logs), ("redis", stored), ("flower", flower_view),
                        *config_view.items()):
        for secret in SECRETS:
            assert secret not in text, f"{secret} found in {where}"
    assert "6281234567001" not in flower_view, "raw recipient in Flower"


def _read_logs(logdir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(logdir.glob("*.log")))


def _worker_config_views(flower: Flower, env: dict[str, str]) -> dict[str, str]:
    """The worker's configuration as `celery inspect conf` prints it and as Flower shows it:
    the worker page (its Config tab) and /api/workers; each checked to hold
    the configuration at all, so that a missing one cannot pass for a clean one."""
    workers: dict[str, Any] = {}

    def listed() -> bool:
        workers.update(flower.get("/api/workers", refresh=1))
        return any(n.startswith("secretw0@") and "conf" in w for n, w in workers.items())

    wait_for(listed, 30, "Flower to read the worker's configuration", interval_s=0.5)
    name = next(n for n in workers if n.startswith("secretw0@"))
    conf = workers[name]["conf"]
    assert conf["broker_url"].startswith("redis://:********@"), conf["broker_url"]
    assert "redbeat_redis_url" in conf, sorted(conf)
    page = flower.http.get(f"/worker/{name}")
    assert page.status_code == 200 and 'id="tab-config"' in page.text
    assert "redbeat_redis_url" in page.text and "broker_url" in page.text
    inspect = subprocess.run(
        celery("inspect", "conf", "--json", "--timeout=10", "-d", name), cwd=ROOT,
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
        check=False)
    assert inspect.returncode == 0, inspect.stdout + inspect.stderr
    assert "redbeat_redis_url" in inspect.stdout and "broker_url" in inspect.stdout
    return {"flower /api/workers": json.dumps(workers[name]),
            "flower worker page": page.text,
            "celery inspect conf": inspect.stdout + inspect.stderr}


def _send_everywhere(api: Any) -> list[str]:
    """Messages through the v1 API, the drop-in GET (key in the query) and a -13 dead letter."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    ids = []
    for i, channel in enumerate(("sms", "otp", "wa")):
        reply = api.anon.post("/v1/messages", headers=auth, json={
            "channel": channel, "to": f"628123456700{i + 1}", "text": f"Kode rahasia 4242{i}"})
        assert reply.status_code == 202, reply.text
        ids.append(reply.json()["id"])
    dropin = api.anon.get("/api/v3/sendsms/plain", params={
        "user": "shop", "password": API_KEY, "GSM": "6281234567009", "SMSText": "halo",
        "output": "json"})
    result = dropin.json()["results"][0]
    assert str(result["status"]) == "0", dropin.text
    ids.append(_kirim_id(api, result["messageid"]))
    dead = api.anon.post("/v1/messages", headers=auth, json={
        "channel": "sms", "to": "6281190013000", "text": "dead letter"})
    ids.append(dead.json()["id"])
    return ids


def _kirim_id(api, nusasms_id: str) -> str:  # type: ignore[no-untyped-def]
    """kirim's id of a drop-in message (the drop-in answers its 18-digit alias)."""
    reply = api.anon.get(f"/v1/messages/{nusasms_id}",
                         headers={"Authorization": f"Bearer {API_KEY}"})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])
