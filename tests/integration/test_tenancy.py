"""Tenancy over real HTTP: each key sees only its own, scopes, and per-key limits.

A real uvicorn API process with four keys (shop, billing: send+read; ops: admin; audit:
read only), a real worker and the sandbox. Every route that reads or acts on a message is
tried by its owner, another tenant and the admin key.
"""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from producer.core.contract import State
from tests.support.api_server import (
    KEY,
    KEY_NAME,
    OTHER_KEY,
    OTHER_NAME,
    ApiServer,
    api_env_for,
)
from tests.support.waiting import wait_states
from tests.support.workers import CALLBACK_SECRETS

pytestmark = pytest.mark.timeout(90)

OPS_KEY, AUDIT_KEY, MINI_KEY = "ops-admin-key", "audit-read-only-key", "mini-rate-key"


def _entry(name: str, key: str, scopes: str = "") -> str:
    return f"{name}:{hashlib.sha256(key.encode()).hexdigest()}" + (f":{scopes}" if scopes else "")


def tenancy_env(api_env: dict[str, str], **policies: dict[str, object]) -> dict[str, str]:
    keys = ",".join([_entry(KEY_NAME, KEY), _entry(OTHER_NAME, OTHER_KEY),
                     _entry("ops", OPS_KEY, "admin"), _entry("audit", AUDIT_KEY, "read"),
                     _entry("mini", MINI_KEY)])
    return {**api_env, "KIRIM_API_KEYS": keys, "KIRIM_CALLBACK_ALLOW_PRIVATE": "false",
            "KIRIM_API_KEY_POLICIES": json.dumps(policies),
            "KIRIM_API_AUTH_FAILURES_PER_MIN": "4"}


def client(server, key: str) -> httpx.Client:  # type: ignore[no-untyped-def]
    return httpx.Client(base_url=server.url, timeout=10.0,
                        headers={"Authorization": f"Bearer {key}"})


POLICIES: dict[str, dict[str, object]] = {
    "mini": {"rate_per_s": 0.5, "burst": 3},
    "billing": {"countries": ["ID", "MY"], "groups": ["vip"],
                "callback_hosts": ["hooks.billing.example", "*.billing.example"]}}


@pytest.fixture(scope="module")
def tenancy_api(redis_server, sandbox_server, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One API process for the module (Redis is flushed per test by `redis_url`)."""
    server = ApiServer(tenancy_env(api_env_for(redis_server.url, sandbox_server), **POLICIES),
                       tmp_path_factory.mktemp("tenancy-api")).start()
    yield server
    server.stop()


def _clients(server):  # type: ignore[no-untyped-def]
    return {name: client(server, key) for name, key in (
        ("shop", KEY), ("billing", OTHER_KEY), ("ops", OPS_KEY), ("audit", AUDIT_KEY),
        ("mini", MINI_KEY))}


@pytest.fixture
def tenants(tenancy_api, redis_url):  # type: ignore[no-untyped-def]
    clients = _clients(tenancy_api)
    yield tenancy_api, clients
    for c in clients.values():
        c.close()


@pytest.fixture
def own_tenants(api_factory, api_env):  # type: ignore[no-untyped-def]
    """An API of the test's own: what it does to the process (a blocked address) stays there."""
    server = api_factory(tenancy_env(api_env, **POLICIES))
    clients = _clients(server)
    yield server, clients
    for c in clients.values():
        c.close()


def test_a_key_reads_and_replays_only_its_own(tenants, kirim, workers):
    _, c = tenants
    workers.start()
    mine = c["shop"].post("/v1/messages", json={
        "channel": "sms", "to": "6281190013000", "text": "shop's, dies -13"}).json()["id"]
    theirs = c["billing"].post("/v1/messages", json={
        "channel": "sms", "to": "6281190013000", "text": "billing's, dies -13"}).json()["id"]
    wait_states(kirim, [mine, theirs], {State.DEAD})
    absent = c["shop"].get("/v1/messages/ffffffffffff0000000000")
    other = c["shop"].get(f"/v1/messages/{theirs}")
    assert other.status_code == absent.status_code == 404
    assert other.json()["error"]["code"] == absent.json()["error"]["code"]
    assert c["shop"].get(f"/v1/messages/{mine}").json()["source"] == "shop"
    assert c["ops"].get(f"/v1/messages/{theirs}").json()["source"] == "billing"
    assert c["audit"].get(f"/v1/messages/{mine}").status_code == 404  # read: its own only

    def listed(name: str) -> set[str]:
        reply = c[name].get("/v1/dead-letters")
        assert reply.status_code == 200, reply.text
        return {item["message_id"] for item in reply.json()["items"]}

    assert listed("shop") == {mine} and listed("billing") == {theirs}
    assert listed("ops") == {mine, theirs} and listed("audit") == set()
    stolen = c["shop"].post(f"/v1/dead-letters/{theirs}/replay")
    assert stolen.status_code == 404, stolen.text
    assert kirim.store.states([theirs]) == ["dead"]  # nothing was replayed
    assert c["audit"].post(f"/v1/dead-letters/{mine}/replay").status_code == 403
    assert c["shop"].post(f"/v1/dead-letters/{mine}/replay").status_code == 200
    assert c["ops"].post(f"/v1/dead-letters/{theirs}/replay").status_code == 200
    wait_states(kirim, [mine, theirs], {State.DEAD})


def test_scopes_decide_what_a_key_may_do(tenants):
    server, c = tenants
    sms = {"channel": "sms", "to": "6281234567001", "text": "scoped"}
    refused = c["audit"].post("/v1/messages", json=sms)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert "send" in refused.json()["error"]["message"]
    assert c["audit"].post("/v1/messages/batch", json={"messages": [sms]}).status_code == 403
    assert c["ops"].post("/v1/messages", json=sms).status_code == 202  # admin: every scope
    assert c["audit"].get("/v1/dead-letters").status_code == 200
    dropin = httpx.get(f"{server.url}/api/v3/sendsms/plain", params={
        "user": "audit", "password": AUDIT_KEY, "GSM": "6281234567001", "SMSText": "x",
        "output": "json"})
    assert dropin.json()["results"][0]["status"] == "-5"


def test_each_key_has_its_own_rate(tenants, kirim):
    server, c = tenants
    sms = {"channel": "sms", "to": "6281234567001", "text": "rated"}
    codes = [c["mini"].post("/v1/messages", json={**sms, "text": f"rated {i}"}).status_code
             for i in range(3)]
    assert codes == [202, 202, 202]
    over = c["mini"].post("/v1/messages", json={**sms, "text": "one too many"})
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 2
    big = c["mini"].post("/v1/messages/batch", json={"messages": [sms] * 4})
    assert big.status_code == 422 and "at most 3 at once" in big.json()["error"]["message"]
    assert "Retry-After" not in big.headers
    assert c["shop"].post("/v1/messages", json=sms).status_code == 202  # others unaffected
    dropin = httpx.get(f"{server.url}/api/v3/sendsms/plain", params={
        "user": "mini", "password": MINI_KEY, "GSM": "6281234567001", "SMSText": "x",
        "output": "json"})
    assert dropin.json()["results"][0]["status"] == "-26"
    records = [k for k in kirim.redis.keys("kirim:msg:*") if not k.endswith(b":timeline")]
    assert len(records) == 4  # 3 + shop's: no refused one


def test_destinations_and_groups_follow_the_key_policy(tenants):
    server, c = tenants
    malaysia = {"channel": "sms", "to": "+60 12-345 6789", "text": "Salam"}
    refused = c["shop"].post("/v1/messages", json=malaysia)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "to"
    assert "MY" in refused.json()["error"]["message"]
    assert "KIRIM_API_KEY_POLICIES" in refused.json()["error"]["message"]
    assert c["billing"].post("/v1/messages", json=malaysia).status_code == 202
    assert c["shop"].post("/v1/messages", json={
        "channel": "sms", "to": "081234567890", "text": "home"}).status_code == 202
    batch = c["shop"].post("/v1/messages/batch", json={"messages": [
        malaysia, {"channel": "sms", "to": "081234567890", "text": "home again"}]}).json()
    assert [r["ok"] for r in batch["results"]] == [False, True]
    dropin = httpx.get(f"{server.url}/api/v3/sendsms/plain", params={
        "user": KEY_NAME, "password": KEY, "GSM": "60123456789", "SMSText": "x",
        "output": "json"})
    assert dropin.json()["results"][0]["status"] == "-3"
    group = {"channel": "sms", "group": "vip", "text": "to the group"}
    no_group = c["shop"].post("/v1/messages", json=group)
    assert no_group.status_code == 422 and no_group.json()["error"]["field"] == "group"
    assert c["billing"].post("/v1/messages", json=group).status_code == 202
    other = c["billing"].post("/v1/messages", json={**group, "group": "everyone"})
    assert other.status_code == 422


@pytest.mark.parametrize(("key", "url", "why"), [
    ("shop", "http://hooks.example.com/kirim", "https://"),
    ("shop", "https://127.0.0.1:6379/", "loopback"),
    ("shop", "https://169.254.169.254/latest/meta-data/", "link-local"),
    ("shop", "https://[::ffff:10.0.0.1]/", "private"),
    ("shop", "https://localhost:8080/admin", "local host name"),
    ("shop", "https://2130706433/", "legacy"),
    ("billing", "https://hooks.elsewhere.example/kirim", "allowlist"),
])
def test_callback_urls_that_could_reach_inside_are_refused(tenants, key, url, why):
    _, c = tenants
    reply = c[key].post("/v1/messages", json={
        "channel": "sms", "to": "081234567890", "text": "cb", "callback_url": url})
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "callback_url"
    assert why in reply.json()["error"]["message"]


def test_callback_needs_a_secret_and_an_allowed_public_host(tenants, api_factory, api_env):
    _, c = tenants
    ok = c["billing"].post("/v1/messages", json={
        "channel": "sms", "to": "081234567890", "text": "cb",
        "callback_url": "https://eu.billing.example/kirim"})
    assert ok.status_code == 202, ok.text
    env = tenancy_env(api_env)
    env["KIRIM_CALLBACK_SECRETS"] = f"billing:{CALLBACK_SECRETS['billing']}"
    lean = api_factory(env)
    with client(lean, KEY) as shop:
        unsigned = shop.post("/v1/messages", json={
            "channel": "sms", "to": "081234567890", "text": "cb",
            "callback_url": "https://hooks.shop.example/kirim"})
    assert unsigned.status_code == 422 and unsigned.json()["error"]["field"] == "callback_url"
    assert "KIRIM_CALLBACK_SECRETS" in unsigned.json()["error"]["message"]


def test_repeated_failed_authentication_is_slowed_down(own_tenants):
    server, c = own_tenants
    with client(server, "wrong-key") as wrong:
        codes = [wrong.get("/v1/dead-letters").status_code for _ in range(4)]
        blocked = wrong.get("/v1/dead-letters")
    assert codes == [401] * 4
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["error"]["code"] == "too_many_auth_failures"
    # The address is blocked, whatever it presents: guessing on does not tell a hit.
    assert c["shop"].get("/v1/dead-letters").status_code == 429
    dropin = httpx.get(f"{server.url}/api/v3/sendsms/plain", params={
        "user": KEY_NAME, "password": KEY, "GSM": "6281234567001", "SMSText": "x",
        "output": "json"})
    assert dropin.json()["results"][0]["status"] == "-26"  # transient: retry later
