"""Secrets stay secret: not in provider URLs, Redis (records, kombu messages, streams),
dead letters, exceptions or worker/API logs, even when sends fail."""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import redis as redis_lib

from producer.core.contract import State
from tests.support.waiting import wait_for, wait_states
from worker.nusasms import NusaSMSClient, NusaSMSConfig, NusaSMSError, build_http_client

pytestmark = pytest.mark.timeout(120)

PROVIDER_PASSWORD = "Pw-Zq9!xK7#s3cr3t&sandbox"
API_KEY = "kirim-apikey-Hh7Tq2Lx9Vp4"
SECRETS = [PROVIDER_PASSWORD, quote_plus(PROVIDER_PASSWORD), quote(PROVIDER_PASSWORD, safe=""),
           API_KEY, hashlib.sha256(API_KEY.encode()).hexdigest()]


def _hits(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _redis_dump(url: str) -> Iterator[tuple[str, str]]:
    """Every key with every value it holds, as text: strings, hashes, lists, sets, zsets,
    streams."""
    client: Any = redis_lib.Redis.from_url(url, decode_responses=False)
    for raw in client.scan_iter(count=1000):
        key = raw.decode(errors="replace")
        kind = client.type(raw).decode()
        if kind == "string":
            values: list[Any] = [client.get(raw)]
        elif kind == "hash":
            values = [x for kv in client.hgetall(raw).items() for x in kv]
        elif kind == "list":
            values = client.lrange(raw, 0, -1)
        elif kind == "set":
            values = list(client.smembers(raw))
        elif kind == "zset":
            values = [m for m, _ in client.zrange(raw, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [x for _, fields in client.xrange(raw) for kv in fields.items() for x in kv]
        else:
            values = []
        yield key, " ".join(v.decode(errors="replace") if isinstance(v, bytes) else str(v)
                            for v in values if v is not None)
    client.close()


def test_secrets_never_leak_into_urls_redis_dead_letters_or_logs(
        kirim_env, kirim, workers, sandbox, api_factory, redis_url, tmp_path):
    sandbox.configure(user="kirimtest", password=PROVIDER_PASSWORD, rate_5xx=0.2, hang_s=3,
                      seed=7)
    env = {"KIRIM_NUSASMS_USER": "kirimtest", "KIRIM_NUSASMS_PASSWORD": PROVIDER_PASSWORD}
    workers.start(concurrency=4, extra_env=env)
    api = api_factory({**kirim_env, **env,
                       "KIRIM_API_KEYS": f"vault:{hashlib.sha256(API_KEY.encode()).hexdigest()}"})
    auth = {"Authorization": f"Bearer {API_KEY}"}
    targets = ["6281234567890", "6281190013000",  # sent; dead (-13)
               "6281193000000", "6281195200000",  # unknown (dropped reply); -26 twice, then sent
               "6281190088000"]                   # dead (-88)
    ids = [api.anon.post("/v1/messages", headers=auth, json={
        "channel": "sms", "to": to, "text": f"rahasia {i}"}).json()["id"]
        for i, to in enumerate(targets)]
    dropin = api.anon.get("/api/v3/sendsms/plain", params={
        "user": "vault", "password": API_KEY, "GSM": "6281234567891", "SMSText": "drop-in",
        "output": "json"}).json()
    ids.append(kirim.status(dropin["results"][0]["messageid"]).id)  # 18-digit alias → id
    wait_states(kirim, ids, {State.SENT, State.DEAD, State.UNKNOWN}, timeout_s=60)
    wait_for(lambda: kirim.redis.xlen(kirim.keys.dead_letters) >= 2, 10, "dead letters")

    entries = sandbox.requests()
    assert entries and all(e["method"] == "POST" for e in entries), \
        {(e["method"], e["path"]) for e in entries}
    assert all("?" not in e["path"] and not _hits(e["path"]) for e in entries)

    leaks = {key: _hits(value + key) for key, value in _redis_dump(redis_url)}
    assert kirim.keys.dead_letters in leaks and kirim.keys.message(ids[0]) in leaks
    assert not {k: v for k, v in leaks.items() if v}, "secrets found in Redis"
    logs = workers.logs() + "".join(p.read_text(errors="replace")
                                    for p in tmp_path.glob("api-*.log"))
    assert not _hits(logs), "a secret is in a worker or API log"


def test_provider_client_errors_never_carry_the_password(sandbox):
    """Every failure of the NusaSMS client, as an exception, its repr and its traceback."""
    sandbox.configure(user="kirimtest", password=PROVIDER_PASSWORD, hang_s=1.5)
    seen: list[httpx.Request] = []
    http = build_http_client(1.0, 1.0, 4)
    http.event_hooks["request"] = [seen.append]
    client = NusaSMSClient(NusaSMSConfig(sandbox.url, "kirimtest", PROVIDER_PASSWORD, None), http)
    texts: list[str] = [repr(client)]
    for fault in ("rate_5xx", "rate_timeout", "rate_malformed", "rate_429",
                  "rate_drop_after_accept"):
        sandbox.configure(**{fault: 1.0})
        for call in (lambda: client.send_sms("6281234567890", "x"),
                     lambda: client.send_wa("6281234567890", "y"),
                     lambda: client.credits(), lambda: client.delivery_report("123")):
            try:
                call()
            except NusaSMSError as exc:
                texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        sandbox.configure(**{fault: 0.0})
    bad = NusaSMSClient(NusaSMSConfig(sandbox.url, "kirimtest", PROVIDER_PASSWORD + "x", None),
                        http)
    try:
        bad.credits()  # -5: the provider refuses these credentials
    except NusaSMSError as exc:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    http.close()
    assert len(texts) > 10
    assert not _hits("\n".join(texts)), "a NusaSMS error carries the password"
    assert seen and all(r.method == "POST" and not r.url.query for r in seen), \
        {(r.method, str(r.url)) for r in seen}
