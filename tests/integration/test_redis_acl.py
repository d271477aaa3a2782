"""One Redis ACL user per role (deploy/redis/users.acl.example) is enough for each role.

A redis-server loads the example ACL file (passwords filled in); the API, two workers and
beat each connect as their own user. Messages go in through the API (single, batch, OTP,
scheduled, with a status callback), are sent and reach `delivered` through beat's DR polls;
Redis' ACL LOG must stay empty: no command, key or channel a role needs is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis as redis_lib

from producer.cli.processes import find_redis_server
from tests.support.api_server import api_keys_setting
from tests.support.processes import ROOT, free_port, spawn, stop, wait_tcp
from tests.support.waiting import wait_for
from tests.support.workers import TEST_ENV, Workers

pytestmark = [pytest.mark.timeout(120)]

ROLES = ("API", "WORKER", "BEAT", "ADMIN")


def test_each_role_works_with_its_own_acl_user(sandbox, api_factory, tmp_path: Path):
    rules = (ROOT / "deploy/redis/users.acl.example").read_text()
    passwords = {role: f"{role.lower()}-password-0123456789" for role in ROLES}
    for role, password in passwords.items():
        assert f">CHANGE-ME-{role}" in rules
        rules = rules.replace(f"CHANGE-ME-{role}", password)
    (tmp_path / "users.acl").write_text(rules)
    port = free_port()
    server = spawn([find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save",
                    "", "--aclfile", str(tmp_path / "users.acl")], log=tmp_path / "redis.log")
    wait_tcp(port, "redis-server with the example ACL file")

    def url(role: str) -> str:
        return f"redis://kirim-{role.lower()}:{passwords[role]}@127.0.0.1:{port}/0"

    admin = redis_lib.Redis.from_url(url("ADMIN"), decode_responses=True)
    with pytest.raises(redis_lib.AuthenticationError):  # the default user is off
        redis_lib.Redis(port=port).ping()
    env = {**TEST_ENV, "KIRIM_NUSASMS_URL": sandbox.url, "KIRIM_DR_FIRST_POLL_S": "0.5",
           "KIRIM_DR_POLL_INTERVAL_S": "1", "KIRIM_CREDITS_POLL_INTERVAL_S": "1"}
    workers = Workers({**env, "KIRIM_REDIS_URL": url("WORKER")}, tmp_path)
    beat = Workers({**env, "KIRIM_REDIS_URL": url("BEAT")}, tmp_path)
    try:
        api = api_factory({**env, "KIRIM_REDIS_URL": url("API"),
                           "KIRIM_API_KEYS": api_keys_setting()})
        workers.start(concurrency=4)
        workers.start(concurrency=4)
        beat.beat()
        ids = []
        for i in range(3):
            reply = api.client.post("/v1/messages", json={
                "channel": "sms", "to": f"62813000000{i}", "text": f"acl {i}",
                "callback_url": "http://127.0.0.1:9/callback"})
            assert reply.status_code == 202, reply.text
            ids.append(reply.json()["id"])
        reply = api.client.post("/v1/messages/batch", json={"messages": [
            {"channel": "otp", "to": f"62813000010{i}", "text": f"code {i}"} for i in range(3)]})
        assert reply.status_code == 200, reply.text
        ids += [r["id"] for r in reply.json()["results"]]
        reply = api.client.post("/v1/messages", json={
            "channel": "sms", "to": "6281300002000", "text": "acl later",
            "send_at": time.time() + 1})
        assert reply.status_code == 202, reply.text
        ids.append(reply.json()["id"])
        assert api.anon.get("/healthz").status_code == 200
        assert api.client.get("/v1/dead-letters").status_code == 200

        def states() -> list[str]:
            return [api.client.get(f"/v1/messages/{mid}").json()["state"] for mid in ids]

        wait_for(lambda: set(states()) == {"delivered"}, 60,
                 "every message delivered (beat's DR polls)", interval_s=0.5)
        denied = [(e["username"], e["reason"], e["object"]) for e in admin.acl_log(100)]
        assert denied == [], f"the example ACLs miss what these roles need: {denied}"
    except AssertionError:
        print(workers.logs(), beat.logs())
        raise
    finally:
        workers.stop_all()
        beat.stop_all()
        admin.close()
        stop([server])
