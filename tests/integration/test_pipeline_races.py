"""Races a reviewer found between the lease sweep, retries, pause/resume and late outcomes,
each pinned with the real pipeline objects on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from producer.core.account import resume_account
from producer.core.contract import SendRequest, State
from producer.core.jobs import build_job
from producer.core.routing import Circuit
from worker.decision import Next, Step
from worker.leases import sweep_expired_leases
from worker.pipeline import SendPipeline
from worker.services import Services, build_services
from worker.state_writer import Attempt


@pytest.fixture
def svc(settings, kirim) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    services = build_services(settings, kirim.celery)
    yield services
    services.close()


def _claimed(svc: Services, text: str = "hi", **req: object):  # type: ignore[no-untyped-def]
    job = build_job(SendRequest(channel="sms", to="6281234567890", text=text, **req),
                    svc.settings)
    svc.store.create(job, State.QUEUED, svc.keys.outbox, time.time(), "tok")
    assert svc.store.claim(job.id, svc.settings.send_lease_s, "tok", job.channel,
                           CLAIM)[0] == "claimed"
    return job


CLAIM = "claim-1"


def _lose_lease(svc: Services, job) -> None:  # type: ignore[no-untyped-def]
    svc.redis.hset(svc.keys.message(job.id), "lease_until", time.time() - 1)
    svc.redis.zadd(svc.keys.sending, {job.id: time.time() - 1})


def test_lease_sweep_spares_a_sender_whose_lease_was_renewed(svc):
    job = _claimed(svc)
    # The sweep read an old, expired score; the record's lease is the live one.
    svc.redis.zadd(svc.keys.sending, {job.id: time.time() - 60})
    assert sweep_expired_leases(svc) == 0
    assert svc.store.get(job.id).state == State.SENDING


def test_lease_sweep_marks_a_sender_lost_mid_call_unknown(svc):
    job = _claimed(svc)
    assert svc.limiter.mark_calling(svc.keys.message(job.id), CLAIM) == ("calling", 0.0)
    _lose_lease(svc, job)
    assert sweep_expired_leases(svc) == 1
    assert svc.store.get(job.id).state == State.UNKNOWN
    assert svc.redis.zscore(svc.keys.sending, job.id) is None


def test_lease_sweep_requeues_a_sender_lost_before_calling(svc):
    job = _claimed(svc)
    assert svc.guard.reserve(job.id, "sms", job.to, job.text_hash).allowed
    _lose_lease(svc, job)
    assert sweep_expired_leases(svc) == 1
    record = svc.store.get(job.id)
    assert record.state == State.QUEUED and record.attempts == 0  # the attempt never happened
    assert "before calling" in record.timeline[-1]["note"]
    assert svc.redis.zscore(svc.keys.sending, job.id) is None
    assert svc.redis.zcard(svc.keys.guard_recipient("sms", job.to)) == 0  # slot freed


def test_a_batch_mark_takes_only_a_live_lease_of_its_own_claim(svc):
    """mark_many.lua (a batch's marks, one step before its writes) and calling.lua refuse
    alike, each message on its own."""
    lost = _claimed(svc)
    _lose_lease(svc, lost)
    other = _claimed(svc, text="second")
    assert svc.starter.mark_many([(lost, CLAIM, ""), (other, "not-my-claim", "")]) == [
        False, False]
    assert svc.redis.hget(svc.keys.message(other.id), "calling") in (None, b"0", "0")
    assert svc.starter.mark_many([(lost, CLAIM, ""), (other, CLAIM, "v1")]) == [False, True]
    assert svc.redis.hget(svc.keys.message(lost.id), "calling") in (None, b"0", "0")
    record = svc.redis.hgetall(svc.keys.message(other.id))
    assert record[b"calling"] == b"1" and record[b"api"] == b"v1"
    assert abs(float(record[b"calling_at"]) - time.time()) < 5


def test_a_lost_lease_cannot_mark_calling_and_a_calling_mark_stops_the_requeue(svc):
    job = _claimed(svc)
    _lose_lease(svc, job)
    assert svc.limiter.mark_calling(svc.keys.message(job.id), CLAIM)[0] == "lost"
    other = _claimed(svc, text="second")
    assert svc.limiter.mark_calling(svc.keys.message(other.id), "not-my-claim")[0] == "lost"
    assert svc.limiter.mark_calling(svc.keys.message(other.id), CLAIM)[0] == "calling"
    # The sweep read the record before the mark: its requeue must still refuse.
    moved = svc.requeuer.requeue(other.id, allowed_from=[State.SENDING], calling=False,
                                   lease_expired_by=time.time() + 3600, note="race")
    assert not moved and svc.store.get(other.id).state == State.SENDING


def test_a_retry_leaves_no_lease_entry_behind(svc):
    job = _claimed(svc)
    svc.writer.retry(job, Attempt(-26, "COMMUNICATION_ERROR", "", attempts=1), 5.0)
    assert svc.store.get(job.id).state == State.QUEUED
    assert svc.redis.zscore(svc.keys.sending, job.id) is None


def test_a_late_real_outcome_clears_the_unknown_entry(svc):
    job = _claimed(svc)
    assert svc.writer.unknown(job.id, Attempt(None, "WORKER_LOST", ""), "lease expired")
    assert svc.writer.sent(job, Attempt(0, "ALL_RECIPIENTS_PROCESSED", "", "1" * 18))
    assert svc.redis.zscore(svc.keys.unknown, job.id) is None


def test_hold_racing_a_resume_requeues_the_message(svc):
    job = _claimed(svc)
    svc.circuits.pause("sms", "NOT_ENOUGH_CREDITS", -2)  # another worker opened it first
    hold = svc.writer.hold

    def resume_then_hold(*args, **kwargs):  # type: ignore[no-untyped-def]
        resume_account(svc.circuits, svc.requeuer)  # the credits poll wins the race
        return hold(*args, **kwargs)

    svc.writer.hold = resume_then_hold  # type: ignore[method-assign]
    pause = Step(Next.PAUSE, "NOT_ENOUGH_CREDITS", circuit=Circuit.SMS)
    assert SendPipeline(svc).carry_out(
        job, pause, Attempt(-2, "NOT_ENOUGH_CREDITS", "", attempts=1)) == "paused"
    record = svc.store.get(job.id)
    assert record.state == State.QUEUED
    assert svc.redis.sismember(svc.keys.held("sms"), job.id) == 0


def test_an_expired_otp_frees_its_guard_slot(svc):
    job = build_job(SendRequest(channel="otp", to="6281234567890", text="Kode 123456",
                                otp_validity_s=10), svc.settings, now=time.time() - 60)
    svc.store.create(job, State.QUEUED, svc.keys.outbox, time.time(), "tok")
    assert svc.guard.reserve(job.id, "sms", job.to, job.text_hash).allowed
    assert SendPipeline(svc).process(job.to_task(), "tok") == "expired"
    assert svc.store.get(job.id).state == State.EXPIRED
    assert svc.redis.zcard(svc.keys.guard_recipient("sms", job.to)) == 0


def test_a_sender_that_outlived_its_lease_cannot_move_a_message_claimed_since(svc):
    job = _claimed(svc)
    _lose_lease(svc, job)
    assert sweep_expired_leases(svc) == 1  # requeued: the stale sender never called
    record = svc.store.get(job.id)
    assert svc.store.claim(job.id, 30, record.get("dispatch"), job.channel,
                           "claim-2")[0] == "claimed"
    stale = Attempt(None, "GUARD", "per_recipient", attempts=1)
    assert not svc.writer.defer(job, stale, time.time() + 60, "late", claim=CLAIM)
    assert not svc.writer.retry(job, stale, 1.0, claim=CLAIM)
    assert svc.store.get(job.id).state == State.SENDING  # the new sender still holds it
    assert svc.writer.sent(job, Attempt(0, "OK", "", "2" * 18), claim="claim-2")


def test_messages_held_by_a_closed_circuit_are_requeued_by_the_sweep(svc):
    from producer.core.account import release_orphans

    svc.circuits.pause("wa", "NOT_ENOUGH_CREDITS", -2)
    job = build_job(SendRequest(channel="wa", to="6281234567890", text="held"), svc.settings)
    svc.store.create(job, State.QUEUED, svc.keys.outbox, time.time(), "tok")
    assert svc.store.claim(job.id, 30, "tok", job.channel, CLAIM)[0] == "paused"
    svc.redis.delete(svc.keys.circuit("wa"))  # a resumer died after closing the circuit
    old = build_job(SendRequest(channel="sms", to="6281234567891", text="old"), svc.settings)
    svc.store.create(old, State.DEFERRED, svc.keys.outbox, time.time(), "tok")
    svc.redis.sadd(svc.keys.legacy_held, old.id)  # held by a version before the circuits
    assert release_orphans(svc.circuits, svc.requeuer) == 2
    assert svc.store.states([job.id, old.id]) == [State.QUEUED, State.QUEUED]
    assert release_orphans(svc.circuits, svc.requeuer) == 0


def _queued(svc: Services, text: str):  # type: ignore[no-untyped-def]
    job = build_job(SendRequest(channel="sms", to="6281234567891", text=text), svc.settings)
    svc.store.create(job, State.QUEUED, svc.keys.outbox, time.time(), "tok")
    return job


def test_a_resent_start_step_answers_what_its_first_run_did(svc):
    """redis-py resends a script whose reply was lost: the same claim run again must not
    look like someone else's claim (its message would end `unknown` with no call made)."""
    job = _queued(svc, "again")
    first = svc.starter.start(job, 60, "tok", "claim-a")
    again = svc.starter.start(job, 60, "tok", "claim-a")
    assert (first.status, first.attempts) == ("calling", 1)
    assert (again.status, again.attempts) == ("calling", 1)
    other = svc.starter.start(job, 60, "tok", "claim-b")
    assert (other.status, other.detail) == ("state", "sending")
    # A replay of a claim that stopped before its mark (a rate-limit wait) goes on to it.
    waiting = _queued(svc, "waiting")
    svc.store.claim(waiting.id, 60, "tok", waiting.channel, "claim-c")
    replay = svc.starter.start(waiting, 60, "tok", "claim-c")
    assert (replay.status, replay.attempts) == ("calling", 1)
    assert svc.redis.hget(svc.keys.message(waiting.id), "calling") == b"1"


def test_a_worker_clock_behind_redis_claims_nothing(svc):
    job = _queued(svc, "late clock")
    started = svc.starter.start(job, -5, "tok", "claim-d")  # its lease ends before Redis's now
    assert started.status == "clock" and not started.claimed
    assert svc.store.get(job.id).state == State.QUEUED  # type: ignore[union-attr]
