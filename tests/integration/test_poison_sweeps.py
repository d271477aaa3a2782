"""One poisoned item never stops a sweep: it is quarantined (dead, with the reason, out of
every index) and the good items behind it are handled. Real Redis, real broker lists, the
real sweep code; a worker process where the task path is concerned."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from producer.core.contract import SendRequest, State
from producer.core.deadletters import DeadLetters
from producer.core.jobs import build_job
from tests.support.waiting import wait_for, wait_states
from worker.leases import sweep_expired_leases
from worker.services import Services, build_services

pytestmark = pytest.mark.timeout(120)

# What a job stored before validation refused NaN looks like: pydantic wrote NaN as null.
POISON_JOB = ('{"v":1,"id":"%s","channel":"sms","to":"6281234567890","text":"x",'
              '"encoding":"gsm7","parts":1,"text_hash":"h","created_at":1.0,'
              '"metadata":{"a":null}}')


@pytest.fixture
def svc(settings, kirim) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    services = build_services(settings, kirim.celery)
    yield services
    services.close()


def _stored(svc: Services, state: State, index: str, score: float, text: str) -> str:
    job = build_job(SendRequest(channel="sms", to="6281234567890", text=text), svc.settings)
    svc.store.create(job, state, index, score, "tok")
    return job.id


def _poison(svc: Services, mid: str) -> None:
    svc.redis.hset(svc.keys.message(mid), "job", POISON_JOB % mid)


def _assert_quarantined(svc: Services, mid: str) -> None:
    record = svc.store.get(mid)
    assert record is not None and record.state == State.DEAD
    assert (record.get("reason") or "").startswith("poisoned: invalid job: metadata.a")
    for index in (svc.keys.outbox, svc.keys.deferred, svc.keys.sending):
        assert svc.redis.zscore(index, mid) is None, index
    letter = DeadLetters(svc.redis, svc.keys, svc.requeuer).get(mid)
    assert letter is not None and letter.code_name == "POISONED"
    assert letter.job["metadata"] == {"a": None}  # what was stored, kept for the operator


def test_outbox_sweep_quarantines_a_poisoned_entry_and_publishes_the_rest(svc):
    old = time.time() - 3600
    bad = _stored(svc, State.QUEUED, svc.keys.outbox, old - 10, "bad")  # first in line
    good = [_stored(svc, State.QUEUED, svc.keys.outbox, old, f"good {i}") for i in range(3)]
    _poison(svc, bad)
    assert svc.requeuer.sweep_outbox(grace_s=1) == 3
    _assert_quarantined(svc, bad)
    assert svc.redis.llen("sms") == 3  # the three good tasks are on the broker's list
    assert all(svc.redis.zscore(svc.keys.outbox, g) > time.time() for g in good)  # rechecked
    assert svc.requeuer.sweep_outbox(grace_s=1) == 0  # and the bad one is gone for good


def test_an_index_entry_that_is_not_utf8_is_dropped_and_the_sweeps_go_on(svc):
    good = _stored(svc, State.QUEUED, svc.keys.outbox, time.time() - 3600, "good")
    for index in (svc.keys.outbox, svc.keys.deferred, svc.keys.sending):
        svc.redis.zadd(index, {b"\xff\xfe": time.time() - 7200})
    assert svc.requeuer.sweep_outbox(grace_s=1) == 1
    assert svc.requeuer.release_due() == 0
    assert sweep_expired_leases(svc) == 0
    for index in (svc.keys.outbox, svc.keys.deferred, svc.keys.sending):
        assert svc.redis.zscore(index, b"\xff\xfe") is None
    assert svc.redis.zscore(svc.keys.outbox, good) is not None  # published, rechecked later


def test_deferred_release_quarantines_a_poisoned_entry_and_releases_the_rest(svc):
    due = time.time() - 5
    bad = _stored(svc, State.DEFERRED, svc.keys.deferred, due - 10, "bad")
    good = [_stored(svc, State.DEFERRED, svc.keys.deferred, due, f"good {i}") for i in range(3)]
    _poison(svc, bad)
    assert svc.requeuer.release_due() == 3
    _assert_quarantined(svc, bad)
    assert svc.store.states(good) == [State.QUEUED] * 3


def test_lease_sweep_quarantines_a_poisoned_entry_and_settles_the_rest(svc):
    ids = [_stored(svc, State.QUEUED, svc.keys.outbox, time.time(), f"m {i}") for i in range(3)]
    for i, mid in enumerate(ids):
        assert svc.store.claim(mid, 30, "tok", "sms", f"c{i}")[0] == "claimed"
        svc.redis.hset(svc.keys.message(mid), "lease_until", time.time() - 1)  # sender lost
        svc.redis.zadd(svc.keys.sending, {mid: time.time() - 10 + i})
    _poison(svc, ids[0])
    assert sweep_expired_leases(svc) == 2
    _assert_quarantined(svc, ids[0])
    assert svc.store.states(ids[1:]) == [State.QUEUED] * 2  # never called: requeued


def test_resume_quarantines_a_poisoned_held_message_and_requeues_the_rest(svc):
    from producer.core.account import resume_account

    ids = [_stored(svc, State.QUEUED, svc.keys.outbox, time.time(), f"h {i}") for i in range(3)]
    svc.circuits.pause("sms", "NOT_ENOUGH_CREDITS", -2)
    assert [svc.store.claim(m, 30, "tok", "sms", "c")[0] for m in ids] == ["paused"] * 3
    _poison(svc, ids[1])
    assert resume_account(svc.circuits, svc.requeuer) == 2
    _assert_quarantined(svc, ids[1])
    assert svc.store.states([ids[0], ids[2]]) == [State.QUEUED] * 2


def test_a_poisoned_task_quarantines_a_poisoned_record_but_never_a_good_one(kirim, workers):
    bad, good = (build_job(SendRequest(channel="sms", to="6281234567890", text=t),
                           kirim.settings) for t in ("bad", "good"))
    for job in (bad, good):
        kirim.store.create(job, State.QUEUED, kirim.keys.outbox, time.time() - 3600, "tok")
        payload = {**job.to_task(), "metadata": {"a": None}}  # NaN after a JSON round trip
        kirim.celery.send_task("kirim.send", args=[payload, "tok"], queue="sms")
    kirim.redis.hset(kirim.keys.message(bad.id), "job", POISON_JOB % bad.id)
    workers.start()
    workers.beat()  # the outbox sweep publishes the good record's own, readable job
    wait_states(kirim, [bad.id], {State.DEAD})
    assert (kirim.status(bad.id).get("reason") or "").startswith("poisoned")
    assert kirim.redis.zscore(kirim.keys.outbox, bad.id) is None
    wait_states(kirim, [good.id], {State.SENT}, timeout_s=40)  # a bad copy did not kill it
    letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
    wait_for(lambda: letters.get(good.id) is not None, 5, "the bad copy's dead letter")
    assert letters.get(good.id).reason == "invalid_payload"
