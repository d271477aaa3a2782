"""API v1.0 on the provider side: the key check at worker start, and balances per product
(`/balance`) through the credits poll into Redis, `kirim credits`, GET /v1/credits, the
`kirim_credits_balance{product}` gauges and the WA credit circuit — real Redis, the sandbox,
real worker processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.core import CollectorRegistry
from typer.testing import CliRunner

from producer.cli import app as cli_app
from producer.core.account import AccountCircuits
from producer.core.keys import Keys
from producer.core.routing import Circuit
from tests.support.processes import python_module, spawn, stop
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for
from tests.support.workers import Workers

pytestmark = pytest.mark.timeout(120)
PREFIX = "/nusasms_api/1.0"
KEY = "demo-api-key"


@pytest.fixture
def v1_env(kirim_env: dict[str, str], sandbox: Any) -> dict[str, str]:
    return {**kirim_env, "KIRIM_NUSASMS_API_KEY": KEY,
            "KIRIM_NUSASMS_V1_URL": sandbox.url + PREFIX}


def _in_process(env: dict[str, str]) -> tuple[Any, Any]:
    from worker.app import create_app
    from worker.services import build_services

    settings = settings_from_env(env)
    app = create_app(settings)
    return app, build_services(settings, app)


def _cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner().invoke(cli_app, list(args), catch_exceptions=False)


def test_services_choose_the_wa_api_from_the_key(v1_env: dict[str, str],
                                                 kirim_env: dict[str, str]) -> None:
    _, with_key = _in_process(v1_env)
    _, legacy = _in_process({**v1_env, "KIRIM_WA_API": "v3"})
    _, without = _in_process(kirim_env)
    try:
        assert with_key.wa_client is not None and with_key.balance_client is not None
        assert KEY not in repr(with_key.wa_client)
        assert legacy.wa_client is None and legacy.balance_client is not None
        assert without.wa_client is None and without.balance_client is None
    finally:
        for svc in (with_key, legacy, without):
            svc.close()


def test_one_balance_call_stores_both_wallets_and_every_reader_shows_them(
        v1_env: dict[str, str], redis: Any, sandbox: Any, api: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.credits import CreditsMonitor
    from worker.metrics import CreditsCollector

    sandbox.set_credits(4321, "2031-01-31", product="sms")
    sandbox.set_credits(77, "2030-06-30", product="wa")
    app, svc = _in_process(v1_env)
    try:
        assert CreditsMonitor(app, svc).poll() == "ok"
    finally:
        svc.close()
    assert redis.hgetall("kirim:credits")["value"] == "4321"
    wa = redis.hgetall("kirim:credits:wa")
    assert (wa["value"], wa["expires"], wa["api"]) == ("77", "2030-06-30", "v1")
    polls = [r for r in sandbox.requests() if r["path"].startswith(PREFIX)]
    assert [r["path"] for r in polls] == [PREFIX + "/balance"]
    assert not [r for r in sandbox.requests() if r["path"] == "/api/command"]

    out = _cli(v1_env, monkeypatch, "credits")
    assert out.exit_code == 0, out.output
    assert "wa" in out.output and "balance  77" in out.output and "API v1.0" in out.output
    as_json = json.loads(_cli(v1_env, monkeypatch, "credits", "--json").output)
    assert (as_json["wa"]["balance"], as_json["wa"]["api"], as_json["sms"]["balance"]) == (
        "77", "v1", "4321")

    body = api.client.get("/v1/credits").json()
    assert (body["value"], body["product"], body["api"]) == (4321, "sms", "v1")
    assert (body["wa"]["value"], body["wa"]["expires"]) == (77, "2030-06-30")

    registry = CollectorRegistry()
    registry.register(CreditsCollector(redis, Keys()))
    assert registry.get_sample_value("kirim_credits_balance", {"product": "wa"}) == 77
    assert registry.get_sample_value("kirim_credits_balance", {"product": "sms"}) == 4321


def test_a_failed_balance_poll_keeps_both_readings(v1_env: dict[str, str], redis: Any,
                                                   sandbox: Any) -> None:
    from worker.credits import CreditsMonitor

    app, svc = _in_process(v1_env)
    try:
        assert CreditsMonitor(app, svc).poll() == "ok"
        before = (redis.hgetall("kirim:credits"), redis.hgetall("kirim:credits:wa"))
        sandbox.configure(rate_5xx=1.0)
        assert CreditsMonitor(app, svc).poll() == "failed"
        assert (redis.hgetall("kirim:credits"), redis.hgetall("kirim:credits:wa")) == before
    finally:
        svc.close()


def test_a_v1_wa_credit_pause_resumes_once_wa_has_credit(v1_env: dict[str, str], redis: Any,
                                                         sandbox: Any) -> None:
    from worker.credits import CreditsMonitor

    app, svc = _in_process(v1_env)
    circuits = AccountCircuits(redis, svc.keys)
    try:
        # What the send path opens on a v1.0 "Insufficient balance" reply (400).
        circuits.pause(Circuit.WA, "NOT_ENOUGH_CREDITS", 400)
        sandbox.set_credits(0, product="wa")
        assert CreditsMonitor(app, svc).poll() == "ok"
        assert circuits.state(Circuit.WA).paused, "resumed with an empty WA wallet"
        sandbox.set_credits(50, product="wa")
        assert CreditsMonitor(app, svc).poll() == "resumed"
        assert not circuits.state(Circuit.WA).paused
        # A wrong key is not a credit pause: the poll never closes it.
        circuits.pause(Circuit.WA, "UNAUTHORIZED", 401)
        CreditsMonitor(app, svc).poll()
        assert circuits.state(Circuit.WA).paused
    finally:
        svc.close()


def _worker_exit(env: dict[str, str], tmp_path: Path) -> tuple[int | None, str]:
    log = tmp_path / "worker.log"
    proc = spawn(python_module("celery", "-A", "worker.app", "worker", "-P", "threads",
                               "-Q", "wa"), env=env, log=log)
    try:
        code = proc.wait(60)
    finally:
        stop([proc], timeout_s=5)
    return code, log.read_text(errors="replace")


def test_a_wrong_api_key_stops_the_worker_before_any_send(v1_env: dict[str, str],
                                                          tmp_path: Path, sandbox: Any) -> None:
    code, log = _worker_exit({**v1_env, "KIRIM_NUSASMS_API_KEY": "wrong-key-123"}, tmp_path)
    assert code not in (0, None), log[-2000:]
    assert "refused KIRIM_NUSASMS_API_KEY" in log and "401" in log, log[-2000:]
    assert "wrong-key-123" not in log
    assert [r["path"] for r in sandbox.requests()] == [PREFIX + "/auth/api_key"]


def test_wa_api_v1_without_a_key_stops_the_worker_saying_what_to_set(
        kirim_env: dict[str, str], tmp_path: Path) -> None:
    code, log = _worker_exit({**kirim_env, "KIRIM_WA_API": "v1"}, tmp_path)
    assert code not in (0, None), log[-2000:]
    assert "KIRIM_NUSASMS_API_KEY is not set" in log, log[-2000:]


def test_a_right_key_is_checked_once_and_the_worker_runs(v1_env: dict[str, str],
                                                         tmp_path: Path, sandbox: Any) -> None:
    pool = Workers(v1_env, tmp_path)
    pool.start(queues="wa")
    try:
        wait_for(lambda: "wa_key_checked" in pool.logs(), 30, "the key check at start")
        wait_for(lambda: "ready" in pool.logs(), 30, "the worker to be ready")
        assert [r["path"] for r in sandbox.requests()] == [PREFIX + "/auth/api_key"]
        assert KEY not in pool.logs()
    finally:
        pool.stop_all()
