"""Every outcome class end to end: producer → Redis → real worker process → sandbox over HTTP."""

from __future__ import annotations

import time

import pytest

from producer.core.account import AccountCircuits, resume_account
from producer.core.contract import State
from producer.core.deadletters import DeadLetters
from producer.core.errors import IdempotencyConflict
from tests.support.waiting import wait_for, wait_states

pytestmark = pytest.mark.timeout(120)

DONE = {State.SENT}


def test_sms_is_sent_once_and_recorded(kirim, workers, sandbox):
    workers.start()
    mid = kirim.send_sms("0812-3456-7890", "Halo, pesanan Anda sudah dikirim.")
    wait_states(kirim, [mid], DONE)
    record = kirim.status(mid)
    assert record.get("to") == "6281234567890"
    assert len(record.get("provider_id") or "") == 18
    assert record.get("last_code") == "0"
    assert [e["state"] for e in record.timeline] == ["accepted", "queued", "sending", "sent"]
    assert sandbox.counts()[("6281234567890", "Halo, pesanan Anda sudah dikirim.")] == 1


def test_each_channel_reaches_its_endpoint(kirim, workers, sandbox):
    workers.start()
    ids = [kirim.send_sms("6281234567001", "sms text"),
           kirim.send_wa("6281234567002", "wa text 👍"),
           kirim.send_otp("6281234567003", "Kode OTP Anda 123456")]
    wait_states(kirim, ids, DONE)
    got = {m["gsm"]: m for m in sandbox.messages()}
    assert got["6281234567001"]["channel"] == "sms" and not got["6281234567001"]["otp"]
    assert got["6281234567002"]["channel"] == "wa"
    assert got["6281234567003"]["otp"] is True


def test_transient_error_is_retried_until_it_recovers(kirim, workers, sandbox):
    workers.start()
    mid = kirim.send_sms("6281195200000", "recovers after two -26")
    wait_states(kirim, [mid], DONE)
    record = kirim.status(mid)
    assert record.attempts == 3
    assert sum(1 for e in record.timeline if e["state"] == "queued") == 3  # first + 2 retries


def test_retries_are_bounded_then_dead_lettered(kirim, workers, settings):
    workers.start()
    mid = kirim.send_sms("6281190026000", "always -26")
    wait_states(kirim, [mid], {State.DEAD})
    record = kirim.status(mid)
    assert record.attempts == settings.retry_max_attempts
    letter = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).get(mid)
    assert letter is not None and letter.code == "-26" and letter.code_name == "COMMUNICATION_ERROR"
    assert "retries exhausted" in letter.reason and letter.job["text"] == "always -26"


@pytest.mark.parametrize(("number", "code", "name"), [
    ("6281190013000", "-13", "INVALID_DESTINATION_ADDRESS"),
    ("6281190088000", "-88", "REJECTED_ROUTE"),
])
def test_permanent_errors_are_dead_at_once(kirim, workers, number, code, name):
    workers.start()
    mid = kirim.send_sms(number, f"permanent {code}")
    wait_states(kirim, [mid], {State.DEAD})
    record = kirim.status(mid)
    assert record.attempts == 1 and record.get("last_code") == code
    letter = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).get(mid)
    assert letter is not None and letter.code_name == name and letter.attempts == 1
    assert kirim.redis.hget(kirim.keys.provider_codes, code) == b"1"


def test_duplicate_message_id_is_unknown_not_sent(kirim, workers):
    # kirim sends no message id, so -33 cannot mean "already sent": an operator settles it.
    workers.start()
    mid = kirim.send_sms("6281190033000", "duplicate message id at the provider")
    wait_states(kirim, [mid], {State.UNKNOWN})
    record = kirim.status(mid)
    assert record.get("last_code") == "-33" and record.attempts == 1
    assert kirim.redis.zscore(kirim.keys.unknown, mid) is not None


def test_provider_recipient_cap_defers(kirim, workers):
    workers.start()
    mid = kirim.send_sms("6281190078000", "-78 from the provider")
    wait_states(kirim, [mid], {State.DEFERRED})
    record = kirim.status(mid)
    assert float(record.get("release_at") or 0) > time.time() + 3600
    assert kirim.redis.hget(kirim.keys.provider_codes, "-78") == b"1"
    assert kirim.redis.zscore(kirim.keys.deferred, mid) is not None


@pytest.mark.parametrize("number", ["6281193000000", "6281194000000"])
def test_ambiguous_failures_become_unknown_and_are_never_resent(kirim, workers, sandbox, number):
    workers.start()
    mid = kirim.send_sms(number, "may or may not have arrived")
    wait_states(kirim, [mid], {State.UNKNOWN}, timeout_s=30)
    time.sleep(1.5)  # longer than every retry delay: a resend would have happened by now
    assert kirim.status(mid).attempts == 1
    assert sandbox.counts()[(number, "may or may not have arrived")] == 1
    assert kirim.redis.zscore(kirim.keys.unknown, mid) is not None


def test_out_of_credit_pauses_the_account_and_resume_sends(kirim, workers, sandbox):
    workers.start()
    sandbox.set_credits(0)
    ids = [kirim.send_sms(f"628123450{i:04d}", f"campaign {i}") for i in range(5)]
    wait_states(kirim, ids, {State.DEFERRED})
    circuits = AccountCircuits(kirim.redis, kirim.keys)
    assert circuits.state("sms").paused and circuits.state("sms").code == "-2"
    assert [s.name for s in circuits.paused()] == ["sms"]  # WhatsApp's wallet is not SMS's
    assert DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).count() == 0
    sandbox.set_credits(100)
    assert resume_account(circuits, kirim.requeuer) == 5
    wait_states(kirim, ids, DONE)


def test_idempotency_key_returns_the_first_message(kirim, workers, sandbox):
    workers.start()
    first = kirim.submit({"channel": "sms", "to": "6281234567890", "text": "once",
                          "idempotency_key": "order-1"})
    again = kirim.submit({"channel": "sms", "to": "6281234567890", "text": "once",
                          "idempotency_key": "order-1"})
    assert again.id == first.id and again.duplicate
    with pytest.raises(IdempotencyConflict):
        kirim.submit({"channel": "sms", "to": "6281234567890", "text": "other body",
                      "idempotency_key": "order-1"})
    wait_states(kirim, [first.id], DONE)
    assert sandbox.counts()[("6281234567890", "once")] == 1


def test_poison_payload_is_dead_lettered_and_the_worker_goes_on(kirim, workers):
    workers.start()
    kirim.celery.send_task("kirim.send", args=[{"v": 99, "id": "bad-payload-1"}], queue="sms")
    kirim.celery.send_task("kirim.send", args=["not even a dict"], queue="sms")
    mid = kirim.send_sms("6281234567890", "after the poison")
    wait_states(kirim, [mid], DONE)
    letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
    wait_for(lambda: letters.count() == 2, 10, "two poison dead letters")
    assert {d.reason for d in letters.list()} == {"invalid_payload"}
    assert "v" in letters.get("bad-payload-1").last_reply


def test_foreign_celery_client_job_is_adopted_and_sent(kirim, workers, sandbox):
    workers.start()
    job = {"v": 1, "id": "java0000000001", "channel": "sms", "to": "6281234567890",
           "text": "from another language", "encoding": "gsm7", "parts": 1,
           "text_hash": "not:ours", "created_at": time.time()}  # recomputed, never used
    kirim.celery.send_task("kirim.send", args=[job], queue="sms")
    wait_states(kirim, ["java0000000001"], DONE)
    assert sandbox.counts()[("6281234567890", "from another language")] == 1


def test_expired_otp_is_never_sent(kirim, workers, sandbox):
    from producer.core.contract import SendRequest
    from producer.core.jobs import build_job

    req = SendRequest(channel="otp", to="6281234567890", text="Kode OTP 111222",
                      otp_validity_s=10)
    job = build_job(req, kirim.settings, now=time.time() - 30)
    kirim.store.create(job, State.QUEUED, kirim.keys.outbox, time.time(), "d1")
    kirim.publisher.publish(job, "d1")
    workers.start()
    wait_states(kirim, [job.id], {State.EXPIRED})
    assert kirim.status(job.id).get("reason", "").startswith("otp_expired")
    assert sandbox.stats()["accepted"] == 0


def test_dead_letter_replay_goes_through_the_pipeline_again(kirim, workers, sandbox):
    workers.start()
    mid = kirim.send_sms("6281195500000", "needs five tries")  # -26 five times, then ok
    wait_states(kirim, [mid], {State.DEAD})
    letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
    assert letters.replay_where(code="-26") == (1, 0)
    wait_states(kirim, [mid], DONE)
    assert letters.count() == 0
    assert sandbox.counts()[("6281195500000", "needs five tries")] == 1


def test_batch_conflict_refuses_only_its_own_item(kirim, workers, sandbox):
    workers.start()
    kirim.submit({"channel": "sms", "to": "6281234567890", "text": "first",
                  "idempotency_key": "k-1"})
    results = kirim.send_many([
        {"channel": "sms", "to": "6281234567891", "text": "fine"},
        {"channel": "sms", "to": "6281234567890", "text": "changed", "idempotency_key": "k-1"},
    ])
    assert isinstance(results[1], IdempotencyConflict)
    wait_states(kirim, [results[0].id], DONE)
    assert sandbox.counts()[("6281234567891", "fine")] == 1


def test_every_change_of_a_message_with_a_callback_url_is_in_the_event_stream(kirim, workers):
    workers.start()
    mid = kirim.send_sms("6281195100000", "with callback",
                         callback_url="http://127.0.0.1:9/hook")  # -26 once, then sent
    plain = kirim.send_sms("6281234567890", "no callback")
    wait_states(kirim, [mid, plain], DONE)
    events = kirim.redis.xrange(kirim.keys.events)
    states = [(e[b"id"].decode(), e[b"state"].decode()) for _, e in events]
    assert [s for i, s in states if i == mid] == ["queued", "sending", "queued", "sending",
                                                  "sent"]
    assert all(i == mid for i, _ in states)
    assert events[-1][1][b"code"] == b"0" and len(events[-1][1][b"provider_id"]) == 18
