"""Credits polling, balance alerts and automatic resume, against a real Redis, the sandbox,
real worker and beat processes, and the local receiver as the alert webhook."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from producer.client import KirimClient
from producer.core.account import AccountCircuits
from producer.core.contract import State
from producer.core.deadletters import DeadLetters
from producer.core.keys import Keys
from tests.support.processes import free_port
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import FAST_CREDITS_POLL, Workers

pytestmark = pytest.mark.timeout(150)


def _in_process(env: dict[str, str]) -> tuple[Any, Any]:
    """A Celery app and Services like a worker's, to call the poll directly."""
    from worker.app import create_app
    from worker.services import build_services

    settings = settings_from_env(env)
    app = create_app(settings)
    return app, build_services(settings, app)


def test_poll_stores_the_reading_and_a_failed_poll_keeps_it(kirim_env, redis, sandbox):
    from worker.credits import CreditsMonitor

    sandbox.set_credits(1234, "2031-01-31")
    app, svc = _in_process(kirim_env)
    assert CreditsMonitor(app, svc).poll() == "ok"
    stored = redis.hgetall("kirim:credits")
    assert stored["value"] == "1234" and stored["expires"] == "2031-01-31"
    _, broken = _in_process({**kirim_env, "KIRIM_NUSASMS_URL": "http://127.0.0.1:1"})
    assert CreditsMonitor(app, broken).poll() == "failed"
    assert redis.hgetall("kirim:credits") == stored
    svc.close()
    broken.close()


def test_alert_levels_change_once_under_concurrent_workers(redis):
    from worker.alerts import AlertLevels

    levels = AlertLevels(redis, Keys())
    results: list[str | None] = []
    barrier = threading.Barrier(8)

    def crossing() -> None:
        barrier.wait()
        results.append(levels.advance("balance", "critical"))

    threads = [threading.Thread(target=crossing) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results.count(None) == 7 and results.count("") == 1
    assert levels.current() == {"balance": "critical"}


def test_balance_and_expiry_alerts_fire_once_per_crossing(kirim_env, tmp_path, sandbox,
                                                          receiver):
    operator = "6281200000001"
    env = {**kirim_env, **FAST_CREDITS_POLL, "KIRIM_ALERT_WEBHOOK_URL": receiver.url,
           "KIRIM_ALERT_SMS_NUMBERS": operator}
    pool = Workers(env, tmp_path)
    pool.start()
    pool.beat()
    try:
        sandbox.set_credits(3000)
        wait_for(lambda: receiver.alert_levels("balance") == ["warn"], 20, "a warn alert")
        sandbox.set_credits(50)
        wait_for(lambda: receiver.alert_levels("balance") == ["warn", "critical"], 10, "critical")
        sandbox.set_credits(90000, date.today() + timedelta(days=3))
        wait_for(lambda: receiver.alert_levels("balance")[-1:] == ["ok"], 10, "a recovery alert")
        wait_for(lambda: receiver.alert_levels("expiry") == ["expiring"], 10, "an expiry alert")
        wait_for(lambda: len(sandbox.messages(gsm=operator)) == 4, 20, "4 alert SMS")
        ticks = len(receiver.hits)
        time.sleep(1.5)  # five more polls at the same levels: no new alert
    finally:
        pool.stop_all()
    assert len(receiver.hits) == ticks
    assert receiver.alert_levels("balance") == ["warn", "critical", "ok"]
    texts = [m["text"] for m in sandbox.messages(gsm=operator)]
    assert any("critical" in t for t in texts) and all(t.startswith("[kirim]") for t in texts)
    assert all(b["text"].startswith("[kirim] ") for b in receiver.json_ok())


def test_out_of_credit_mid_campaign_resumes_by_itself_after_top_up(kirim_env, tmp_path,
                                                                  sandbox, receiver):
    env = {**kirim_env, **FAST_CREDITS_POLL, "KIRIM_ALERT_WEBHOOK_URL": receiver.url}
    pool = Workers(env, tmp_path)
    pool.start()
    pool.beat()
    try:
        sandbox.set_credits(12)
        with KirimClient(settings_from_env(env), source="campaign") as kirim:
            ids = [kirim.send_sms(f"62812666{i:05d}", f"promo {i}") for i in range(30)]
            circuits = AccountCircuits(kirim.redis, kirim.keys)
            wait_for(lambda: circuits.state("sms").paused, 30, "the SMS lanes to pause on -2")
            states = wait_states(kirim, ids, {State.SENT, State.DEFERRED})
            assert Counter(states)[State.SENT] == 12, Counter(states)
            assert DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).count() == 0
            wait_for(lambda: "paused" in receiver.alert_levels("circuit:sms"), 10, "a paused alert")
            sandbox.set_credits(1000)
            wait_states(kirim, ids, {State.SENT}, timeout_s=60)
            assert not circuits.state("sms").paused
        wait_for(lambda: receiver.alert_levels("circuit:sms") == ["paused", "resumed"], 10,
                 "a resumed alert")
    finally:
        pool.stop_all()
    assert len(sandbox.messages()) == 30, "every message sent exactly once"
    resumed = [b for b in receiver.json_ok() if b.get("level") == "resumed"]
    assert "automatically" in resumed[0]["text"]


def test_credits_metrics_absent_until_a_reading_and_beat_polls_at_start(kirim_env, tmp_path,
                                                                          sandbox, redis):
    """No kirim_credits_* series before the first reading (not a balance of 0), on any
    worker; beat sends the first poll when it starts, not one 300 s interval later."""
    env = {**kirim_env, "KIRIM_CREDITS_POLL_INTERVAL_S": "300"}
    port, idle_port = free_port(), free_port()
    pool = Workers(env, tmp_path)
    pool.start(extra_env={"KIRIM_METRICS_PORT": str(port)})
    pool.start(queues="otp", extra_env={"KIRIM_METRICS_PORT": str(idle_port)})  # never polls

    def credits_series(at: int) -> dict[tuple[str, str], float]:
        try:
            text = httpx.get(f"http://127.0.0.1:{at}/metrics", timeout=5).text
        except httpx.TransportError:
            return {}
        return {(s.name, s.labels.get("product", "")): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples
                if s.name.startswith("kirim_credits_")} | {("up", ""): 1.0}

    try:
        sandbox.set_credits(4321, "2031-01-31")
        wait_for(lambda: bool(credits_series(port) and credits_series(idle_port)), 30,
                 "both workers' /metrics")
        assert credits_series(port) == {("up", ""): 1.0}, "a credits series before a reading"
        assert credits_series(idle_port) == {("up", ""): 1.0}
        started = time.monotonic()
        pool.beat()
        wait_for(lambda: redis.hget("kirim:credits", "value") == "4321", 30,
                 "the first CREDITS reading, sent as beat starts")
        assert time.monotonic() - started < 30
        for at in (port, idle_port):
            got = credits_series(at)
            assert got[("kirim_credits_balance", "sms")] == 4321, got
            assert got[("kirim_credits_read_timestamp_seconds", "sms")] > time.time() - 60
            expiry = got[("kirim_credits_expiry_timestamp_seconds", "sms")]
            assert date.fromtimestamp(expiry - 1) == date(2031, 1, 31)
            assert not [k for k in got if k[1] == "wa"], "no WhatsApp reading: no series"
        # A reading without an expiry date (as store_reading writes it): no expiry series.
        redis.hset("kirim:credits", mapping={"value": "99", "expires": "",
                                             "read_at": repr(time.time())})
        got = credits_series(idle_port)
        assert got[("kirim_credits_balance", "sms")] == 99
        assert ("kirim_credits_expiry_timestamp_seconds", "sms") not in got
    finally:
        pool.stop_all()
