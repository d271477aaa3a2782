"""Circuits per product and cause: one empty wallet, one refused sender, a missing OTP route
or a bug of ours stops only what it concerns, alerts, and resumes as it should. Real worker
and beat processes, the sandbox over HTTP with its per-product wallets, a local webhook."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from producer.client import KirimClient
from producer.core.account import AccountCircuits, resume_account
from producer.core.contract import State
from producer.core.deadletters import DeadLetters
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import FAST_CREDITS_POLL, Workers

pytestmark = pytest.mark.timeout(150)

SENT = {State.SENT}


def _paused(kirim: KirimClient) -> list[str]:
    return [s.name for s in AccountCircuits(kirim.redis, kirim.keys).paused()]


def test_empty_whatsapp_wallet_stops_only_whatsapp_while_otps_flow(kirim_env, tmp_path,
                                                                   sandbox, receiver):
    env = {**kirim_env, **FAST_CREDITS_POLL, "KIRIM_ALERT_WEBHOOK_URL": receiver.url}
    pool = Workers(env, tmp_path)
    pool.start()
    pool.beat()
    sandbox.set_credits(0, product="wa")
    try:
        with KirimClient(settings_from_env(env), source="app") as kirim:
            wa = [kirim.send_wa(f"62812777{i:05d}", f"pesanan {i}") for i in range(5)]
            otp = [kirim.send_otp(f"62812888{i:05d}", f"Kode OTP {100000 + i}")
                   for i in range(5)]
            sms = [kirim.send_sms(f"62812999{i:05d}", f"info {i}") for i in range(5)]
            wait_states(kirim, otp + sms, SENT)
            wait_states(kirim, wa, {State.DEFERRED})
            assert _paused(kirim) == ["wa"]
            wait_for(lambda: receiver.alert_levels("circuit:wa") == ["paused"], 10, "a WA alert")
            more_otp = [kirim.send_otp("6281288800099", "Kode OTP 424242")]
            wait_states(kirim, more_otp, SENT)  # still flowing while WA is paused
            sandbox.set_credits(100, product="wa")  # top up: the poll reads WA, resumes it
            wait_states(kirim, wa, SENT, timeout_s=30)
            assert _paused(kirim) == []
            assert kirim.redis.hget(kirim.keys.credits_for("wa"), "value") == b"100"
        wait_for(lambda: receiver.alert_levels("circuit:wa") == ["paused", "resumed"], 10,
                 "a WA resumed alert")
    finally:
        pool.stop_all()
    assert "circuit:sms" not in {b.get("kind") for b in receiver.json_ok()}
    assert all(n == 1 for n in sandbox.counts().values()), "each message sent exactly once"
    assert len(sandbox.messages()) == 16


def test_refused_sender_pauses_the_lanes_that_send_it(kirim, workers, sandbox):
    sandbox.configure(allowed_senders=["KIRIM"])
    workers.start(extra_env={"KIRIM_NUSASMS_SENDER": "NOTOURS"})
    sms = kirim.send_sms("6281234567890", "with a sender the account may not use")
    otp = kirim.send_otp("6281234567891", "Kode OTP 123456")
    wa = kirim.send_wa("6281234567892", "WhatsApp takes no sender")
    wait_states(kirim, [wa], SENT)
    wait_states(kirim, [sms, otp], {State.DEFERRED})
    assert _paused(kirim) == ["sender"]
    state = AccountCircuits(kirim.redis, kirim.keys).state("sender")
    assert state.code == "-34" and state.held == 2
    assert DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).count() == 0
    assert Counter(sandbox.stats()["by_status"])["-34"] <= 2  # no longer one per message


def test_missing_otp_route_pauses_the_otp_lane_only(kirim, workers, sandbox):
    sandbox.configure(otp_route=False)
    workers.start()
    otps = [kirim.send_otp(f"6281234567{i:03d}", f"Kode OTP {200000 + i}") for i in range(3)]
    sms = kirim.send_sms("6281234560000", "an ordinary SMS")
    wait_states(kirim, [sms], SENT)
    wait_states(kirim, otps, {State.DEFERRED, State.EXPIRED})
    assert _paused(kirim) == ["otp"]
    sandbox.configure(otp_route=True)  # the operator gets the OTP route enabled
    assert resume_account(AccountCircuits(kirim.redis, kirim.keys), kirim.requeuer,
                          "otp") >= 1
    wait_states(kirim, otps, {State.SENT, State.EXPIRED})
    assert _paused(kirim) == []


def test_malformed_request_pauses_everything_and_alerts(kirim_env, tmp_path, sandbox,
                                                        receiver):
    env = {**kirim_env, **FAST_CREDITS_POLL, "KIRIM_ALERT_WEBHOOK_URL": receiver.url}
    pool = Workers(env, tmp_path)
    pool.start()
    pool.beat()
    try:
        with KirimClient(settings_from_env(env), source="app") as kirim:
            bug = kirim.send_sms("6281190022000", "answered -22: kirim built a bad request")
            wait_for(lambda: _paused(kirim) == ["account"], 20, "the account circuit")
            later = [kirim.send_wa("6281234567890", "wa"), kirim.send_otp("6281234567891",
                                                                        "Kode OTP 555666")]
            wait_states(kirim, [bug, *later], {State.DEFERRED})
            wait_for(lambda: receiver.alert_levels("circuit:account") == ["paused"], 10,
                     "an account alert")
            assert DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).count() == 0
    finally:
        pool.stop_all()
    paused = [b for b in receiver.json_ok() if b.get("kind") == "circuit:account"]
    assert paused[0]["code"] == "-22" and "kirim account resume" in paused[0]["text"]


def test_provider_spam_answer_blocks_the_text_and_holds_its_queued_copies(kirim, workers,
                                                                          sandbox):
    workers.start()
    first = kirim.send_sms("6281190077000", "promo hari ini")
    wait_states(kirim, [first], {State.DEFERRED})
    copies = [kirim.send_sms("6281190077000", "promo hari ini") for _ in range(3)]
    wait_states(kirim, copies, {State.DEFERRED})
    time.sleep(1.0)  # time for a wrong send to show up
    assert sandbox.stats()["by_status"].get("-77") == 1  # only the first reached the provider
    assert float(kirim.status(first).get("release_at") or 0) > time.time() + 3600
    assert DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).count() == 0


def test_dead_letter_spike_and_unknown_messages_raise_alerts(kirim_env, tmp_path, sandbox,
                                                             receiver):
    env = {**kirim_env, **FAST_CREDITS_POLL, "KIRIM_ALERT_WEBHOOK_URL": receiver.url,
           "KIRIM_ALERT_DEAD_LETTERS_PER_MIN": "3"}
    pool = Workers(env, tmp_path)
    pool.start()
    pool.beat()
    try:
        with KirimClient(settings_from_env(env), source="app") as kirim:
            dead = [kirim.send_sms("6281190013000", f"bad number {i}")
                    for i in range(5)]
            ambiguous = kirim.send_sms("6281190033000", "answered -33")
            wait_states(kirim, dead, {State.DEAD})
            wait_states(kirim, [ambiguous], {State.UNKNOWN})
            wait_for(lambda: receiver.alert_levels("dead_letters") == ["high"], 15,
                     "a dead-letter rate alert")
            wait_for(lambda: receiver.alert_levels("unknown") == ["present"], 15,
                     "an unknown-messages alert")
    finally:
        pool.stop_all()
    unknown = [b for b in receiver.json_ok() if b.get("kind") == "unknown"]
    assert unknown[0]["count"] == "1" and "kirim settle" in unknown[0]["text"]
