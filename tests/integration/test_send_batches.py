"""Messages enqueued together travel as `kirim.send_batch` tasks (KIRIM_SEND_BATCH_SIZE per
lane), and each is still claimed, sent and recorded on its own: real Redis, real worker
processes, the sandbox counting what it accepted."""

from __future__ import annotations

import signal
import time

import pytest

from producer.client import KirimClient
from producer.core.contract import State
from producer.core.routing import Queues, Tasks
from tests.support.queues import queued_ids, queued_tasks
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import Workers

pytestmark = pytest.mark.timeout(120)


def _sms(n: int, text: str = "promo", start: int = 0) -> list[dict[str, object]]:
    return [{"channel": "sms", "to": f"6281234{start + i:06d}", "text": f"{text} {i}"}
            for i in range(n)]


def test_lanes_are_batched_and_otps_and_scheduled_messages_are_not(kirim: KirimClient) -> None:
    items = [*_sms(20), {"channel": "otp", "to": "6281299990001", "text": "Kode 1111"},
             {"channel": "wa", "to": "6281299990002", "text": "halo"},
             {"channel": "otp", "to": "6281299990003", "text": "Kode 2222"},
             {"channel": "sms", "to": "6281299990004", "text": "later",
              "send_at": time.time() + 3600}]
    accepted = kirim.send_many(items)
    sms_ids = [a.id for a in accepted[:20]]
    assert [(task, len(ids)) for task, ids in queued_tasks(kirim.redis, Queues.SMS)] == [
        (Tasks.SEND_BATCH, 8), (Tasks.SEND_BATCH, 8), (Tasks.SEND_BATCH, 4)]
    assert queued_ids(kirim.redis, Queues.SMS) == sms_ids, "in order, each once"
    # An OTP never waits inside a batch; a lone message of a lane keeps its own task.
    assert queued_tasks(kirim.redis, Queues.OTP) == [
        (Tasks.SEND, [accepted[20].id]), (Tasks.SEND, [accepted[22].id])]
    assert queued_tasks(kirim.redis, Queues.WA) == [(Tasks.SEND, [accepted[21].id])]
    assert accepted[23].state == State.DEFERRED  # scheduled: released later, on its own


def test_every_message_of_a_batch_is_sent_once(kirim: KirimClient, workers: Workers,
                                               sandbox) -> None:  # type: ignore[no-untyped-def]
    accepted = kirim.send_many(_sms(50))
    workers.start(queues="sms", concurrency=4)
    ids = [a.id for a in accepted]
    assert wait_states(kirim, ids, {State.SENT, State.DELIVERED}, timeout_s=60)
    counts = sandbox.counts()
    assert len(counts) == 50 and set(counts.values()) == {1}
    # Each message has its own claim and its own timeline, as a kirim.send task leaves it.
    record = kirim.store.get(ids[17])
    assert record is not None
    states = [e["state"] for e in record.timeline]
    # (it may have been requeued by the rate limit before: KIRIM_RATE_LIMIT_BURST < 16)
    assert states.count("sent") == 1 and states.index("sending") < states.index("sent")


def test_a_poisoned_item_is_dead_lettered_and_the_rest_are_sent(
        kirim: KirimClient, workers: Workers, sandbox) -> None:  # type: ignore[no-untyped-def]
    accepted = kirim.send_many(_sms(3, "ok"))
    ids = [a.id for a in accepted]
    kirim.redis.delete(Queues.SMS)  # their own batch task gone: only ours below carries them
    good = [[kirim.store.get(mid).job.to_task(), kirim.store.get(mid).get("dispatch")]  # type: ignore[union-attr]
            for mid in ids]
    kirim.celery.send_task(Tasks.SEND_BATCH, args=[[good[0], "garbage", good[1],
                                                    [{"id": "not-a-job"}, "tok"], good[2]]],
                           queue=Queues.SMS)
    workers.start(queues="sms", concurrency=2)
    assert wait_states(kirim, ids, {State.SENT, State.DELIVERED}, timeout_s=60)
    wait_for(lambda: kirim.core.dead_letters.count() == 2, 30, "two poisoned items dead-lettered")
    assert {d.reason for d in kirim.core.dead_letters.list()} == {"invalid_payload"}
    assert set(sandbox.counts().values()) == {1} and len(sandbox.counts()) == 3


def test_a_redelivered_batch_skips_what_was_sent(kirim: KirimClient, workers: Workers,
                                                 sandbox) -> None:  # type: ignore[no-untyped-def]
    """A copy of a batch (as kombu restores an unacked task after a worker died) sends
    nothing twice: its finished messages are claimed already."""
    accepted = kirim.send_many(_sms(8, "twice"))
    ids = [a.id for a in accepted]
    [(task, carried)] = queued_tasks(kirim.redis, Queues.SMS)
    copy = kirim.redis.lindex(Queues.SMS, 0)
    assert task == Tasks.SEND_BATCH and carried == ids and copy is not None
    workers.start(queues="sms", concurrency=2)
    assert wait_states(kirim, ids, {State.SENT, State.DELIVERED}, timeout_s=60)
    kirim.redis.lpush(Queues.SMS, copy)
    wait_for(lambda: kirim.redis.llen(Queues.SMS) == 0, 30, "the copy consumed")
    time.sleep(1.0)
    assert set(sandbox.counts().values()) == {1} and len(sandbox.counts()) == 8


def test_a_batch_calls_the_provider_for_all_its_messages_at_once(
        kirim: KirimClient, workers: Workers, sandbox) -> None:  # type: ignore[no-untyped-def]
    """One worker thread, one batch of 8, a provider that takes 1 s per call: the calls
    overlap (about 1 s for the batch, not 8), so a SIGTERM mid-batch lets the worker exit
    within its grace period having sent every message once and left none `sending`."""
    sandbox.configure(latency_ms=1000)
    ids = [a.id for a in kirim.send_many(_sms(8, "slow"))]
    first = workers.start(queues="sms", concurrency=1)
    wait_for(lambda: State.SENDING in kirim.store.states(ids), 30, "the batch under way")
    started = time.monotonic()
    workers.kill(first, signal.SIGTERM)  # warm shutdown; returns once the worker exited
    took_s = time.monotonic() - started
    assert took_s < 4.5, f"the worker took {took_s:.1f} s: its batch's calls did not overlap"
    assert set(kirim.store.states(ids)) <= {State.SENT, State.DELIVERED}
    assert set(sandbox.counts().values()) == {1} and len(sandbox.counts()) == 8
    times = sorted(r["accepted_at"] for r in sandbox.messages())
    assert times[-1] - times[0] < 0.9, "all 8 calls were in flight together"


def test_a_batch_mixes_refusals_waits_and_sends(kirim: KirimClient, workers: Workers,
                                                sandbox) -> None:  # type: ignore[no-untyped-def]
    """Inside one batch each message gets what a single task would: the recipient guard
    defers a second copy of a text, the provider's refusal dead-letters its message, a
    rate-limit wait is slept and sent after the others, and the rest are sent once."""
    items = _sms(5, "mixed")
    items.append({"channel": "sms", "to": "6281234000000", "text": "mixed 0"})  # copy of 0
    items.append({"channel": "sms", "to": "6281190011000", "text": "refused"})  # -11: dead
    items.append({"channel": "sms", "to": "6281234000042", "text": "mixed 7"})
    accepted = kirim.send_many(items)
    ids = [a.id for a in accepted]
    assert [len(c) for _, c in queued_tasks(kirim.redis, Queues.SMS)] == [8]
    workers.start(queues="sms", concurrency=1, extra_env={
        "KIRIM_GUARD_SAME_TEXT_LIMIT": "1", "KIRIM_RATE_LIMIT_PER_S": "20",
        "KIRIM_RATE_LIMIT_BURST": "4"})
    sent_ids = [*ids[:5], ids[7]]
    assert wait_states(kirim, sent_ids, {State.SENT, State.DELIVERED}, timeout_s=60)
    assert wait_states(kirim, [ids[6]], {State.DEAD}, timeout_s=30)
    assert wait_states(kirim, [ids[5]], {State.DEFERRED}, timeout_s=30)
    deferred = kirim.store.get(ids[5])
    assert deferred is not None and "same_text" in (deferred.get("reason") or "")
    counts = sandbox.counts()
    assert set(counts.values()) == {1} and len(counts) == 6  # the refused one is not counted
    # The rate limit let 4 go at once (its burst) and held the rest back behind them.
    times = sorted(m["accepted_at"] for m in sandbox.messages())
    assert times[-1] - times[0] >= 0.04


def test_one_message_whose_start_step_fails_does_not_stop_the_batch(
        kirim: KirimClient, workers: Workers, sandbox) -> None:  # type: ignore[no-untyped-def]
    """A batch whose second record is not a hash: its start step raises for that message
    alone (its error is its reply), the others are started, sent once and recorded, and
    the batch's shared writes (lease index, outbox) are made for them."""
    ids = [a.id for a in kirim.send_many(_sms(3, "partway"))]
    broken = kirim.store.keys.message(ids[1])
    kirim.redis.delete(broken)
    kirim.redis.set(broken, "not a record")
    workers.start(queues="sms", concurrency=1)
    good = [ids[0], ids[2]]
    assert wait_states(kirim, good, {State.SENT, State.DELIVERED}, timeout_s=30)
    assert sandbox.counts() == {("6281234000000", "partway 0"): 1,
                                ("6281234000002", "partway 2"): 1}
    for mid in good:
        assert kirim.redis.zscore(kirim.store.keys.outbox, mid) is None
        assert kirim.redis.zscore(kirim.store.keys.sending, mid) is None
    assert kirim.redis.get(broken) == b"not a record"


def test_calls_without_a_free_connection_in_time_are_queued_again(
        kirim: KirimClient, workers: Workers, sandbox) -> None:  # type: ignore[no-untyped-def]
    """One provider connection per worker process and a batch of 4 at 1.5 s per call: the
    calls go one wave at a time, and those whose wave would start too late for the lease
    are never written: queued again with their attempt given back, then sent once."""
    sandbox.configure(latency_ms=1500)
    ids = [a.id for a in kirim.send_many(_sms(4, "narrow"))]
    workers.start(queues="sms", concurrency=1, extra_env={"KIRIM_NUSASMS_POOL_SIZE": "1"})
    assert wait_states(kirim, ids, {State.SENT, State.DELIVERED}, timeout_s=60)
    assert set(sandbox.counts().values()) == {1} and len(sandbox.counts()) == 4
    notes = [e.get("note", "") for mid in ids
             for e in kirim.store.get(mid).timeline]  # type: ignore[union-attr]
    assert any("not called: queued again" in n for n in notes)
    assert all(int(kirim.store.get(mid).get("attempts") or 0) == 1  # type: ignore[union-attr]
               for mid in ids)
