"""Races a reviewer found between the lease sweep, retries, pause/resume and late outcomes,
each pinned with the real pipeline objects on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from producer.account import resume_account
from producer.contract import SendRequest, State
from producer.jobs import build_job
from worker.outcomes import Attempt
from worker.pipeline import SendPipeline
from worker.services import Services, build_services
from worker.tasks import sweep_expired_leases


@pytest.fixture
def svc(settings, kirim) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    services = build_services(settings, kirim.celery)
    yield services
    services.close()


def _claimed(svc: Services, text: str = "hi", **req: object):  # type: ignore[no-untyped-def]
    job = build_job(SendRequest(channel="sms", to="6281234567890", text=text, **req),
                    svc.settings)
    svc.store.create(job, State.QUEUED, svc.keys.outbox, time.time(), "tok")
    assert svc.store.claim(job.id, svc.settings.send_lease_s, "tok")[0] == "claimed"
    return job


def test_lease_sweep_spares_a_sender_whose_lease_was_renewed(svc):
    job = _claimed(svc)
    # The sweep read an old, expired score; the record's lease is the live one.
    svc.redis.zadd(svc.keys.sending, {job.id: time.time() - 60})
    assert sweep_expired_leases(svc) == 0
    assert svc.store.get(job.id).state == State.SENDING


def test_lease_sweep_marks_a_really_lost_sender_unknown(svc):
    job = _claimed(svc)
    svc.redis.hset(svc.keys.message(job.id), "lease_until", time.time() - 1)
    svc.redis.zadd(svc.keys.sending, {job.id: time.time() - 1})
    assert sweep_expired_leases(svc) == 1
    assert svc.store.get(job.id).state == State.UNKNOWN
    assert svc.redis.zscore(svc.keys.sending, job.id) is None


def test_a_retry_leaves_no_lease_entry_behind(svc):
    job = _claimed(svc)
    svc.recorder.retry(job, Attempt(-26, "COMMUNICATION_ERROR", "", attempts=1), 5.0)
    assert svc.store.get(job.id).state == State.QUEUED
    assert svc.redis.zscore(svc.keys.sending, job.id) is None


def test_a_late_real_outcome_clears_the_unknown_entry(svc):
    job = _claimed(svc)
    assert svc.recorder.unknown(job, Attempt(None, "WORKER_LOST", ""), "lease expired")
    assert svc.recorder.sent(job, Attempt(0, "ALL_RECIPIENTS_PROCESSED", "", "1" * 18))
    assert svc.redis.zscore(svc.keys.unknown, job.id) is None


def test_hold_racing_a_resume_requeues_the_message(svc):
    job = _claimed(svc)
    svc.circuit.pause("NOT_ENOUGH_CREDITS", -2)  # another worker opened it first
    hold = svc.recorder.hold

    def resume_then_hold(*args, **kwargs):  # type: ignore[no-untyped-def]
        resume_account(svc.circuit, svc.dispatcher)  # the credits poll wins the race
        return hold(*args, **kwargs)

    svc.recorder.hold = resume_then_hold  # type: ignore[method-assign]
    SendPipeline(svc)._pause(job, Attempt(-2, "NOT_ENOUGH_CREDITS", "", attempts=1))
    record = svc.store.get(job.id)
    assert record.state == State.QUEUED
    assert svc.redis.sismember(svc.keys.held, job.id) == 0


def test_an_expired_otp_frees_its_guard_slot(svc):
    job = build_job(SendRequest(channel="otp", to="6281234567890", text="Kode 123456",
                                otp_validity_s=10), svc.settings, now=time.time() - 60)
    svc.store.create(job, State.QUEUED, svc.keys.outbox, time.time(), "tok")
    svc.store.claim(job.id, 30, "tok")
    assert svc.guard.reserve(job.id, "sms", job.to, job.text_hash).allowed
    assert SendPipeline(svc)._otp_expired(job)
    assert svc.store.get(job.id).state == State.EXPIRED
    assert svc.redis.zcard(svc.keys.guard_recipient("sms", job.to)) == 0
