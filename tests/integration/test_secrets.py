"""No secret is ever written down: worker and API logs, every Redis key and value, Flower.

A whole stack with distinctive secrets (a passworded Redis, a NusaSMS password, an API key, a
callback token) sends through the API, its drop-in and the Python client; then everything
it wrote is searched for them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from producer.client import KirimClient
from tests.support.flower import Flower
from tests.support.processes import RedisServer
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import TEST_ENV, Workers

NUSASMS_USER = "kirim-secret-user"
NUSASMS_PASSWORD = "Nusa-Pw-7f3c9e2d41"
REDIS_PASSWORD = "Redis-Pw-a81b77c0d2"
API_KEY = "Api-Key-5d90c3e1f6"
CALLBACK_TOKEN = "Cb-Token-0e4f6a9b88"
SECRETS = (NUSASMS_PASSWORD, REDIS_PASSWORD, API_KEY, CALLBACK_TOKEN)


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
           "KIRIM_CALLBACK_TOKEN": CALLBACK_TOKEN,
           "KIRIM_API_KEYS": f"shop:{hashlib.sha256(API_KEY.encode()).hexdigest()}"}
    workers = Workers(env, tmp_path)
    flower = Flower(env, tmp_path).start()
    try:
        workers.start(name="secretw")
        api = api_factory(env)
        ids = _send_everywhere(api)
        with KirimClient(settings_from_env(env), source="test") as kirim:
            wait_states(kirim, ids, {"sent", "dead"})
        wait_for(lambda: len(flower.get("/api/tasks", taskname="kirim.send")) >= len(ids),
                 30, "Flower to see the tasks", interval_s=0.5)
        flower_view = json.dumps(flower.get("/api/tasks")) + flower.http.get(
            f"/task/{next(iter(flower.get('/api/tasks')))}").text
        stored = dump_redis(Redis.from_url(secret_redis.url))
    finally:
        flower.stop()
        workers.stop_all()
    # Worker, API and Flower logs, whole, after shutdown (the shutdown lines count too).
    logs = "\n".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("*.log")))
    assert "provider_reply" in logs and len(stored) > 1000 and "kirim.send" in flower_view
    for where, text in (("logs", logs), ("redis", stored), ("flower", flower_view)):
        for secret in SECRETS:
            assert secret not in text, f"{secret} found in {where}"
    assert "6281234567001" not in flower_view, "raw recipient in Flower"


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
    ids.append(result["messageid"])
    dead = api.anon.post("/v1/messages", headers=auth, json={
        "channel": "sms", "to": "6281190013000", "text": "dead letter"})
    ids.append(dead.json()["id"])
    return ids
