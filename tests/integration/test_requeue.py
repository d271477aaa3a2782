"""The Requeuer (producer/core/requeue.py) on a real Redis that is also the broker: a requeue
moves, publishes and pushes the outbox entry back; a refused move does nothing; the sweep
republishes only overdue unclaimed messages; a publish that fails leaves the outbox entry
for the sweep. No worker: the tasks are read off the broker's lists."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest

from producer.client import KirimClient
from producer.core.broker import make_celery
from producer.core.contract import SendRequest, State
from producer.core.jobs import build_job
from producer.core.publisher import Publisher
from producer.core.requeue import Requeuer
from producer.core.routing import Circuit
from tests.support.processes import free_port
from tests.support.settings import settings_from_env

pytestmark = pytest.mark.timeout(60)


def stored(kirim: KirimClient, state: State, index: str, score: float, text: str = "x") -> str:
    """A message recorded in `state` with its entry in `index` at `score` (dispatch "tok")."""
    job = build_job(SendRequest(channel="sms", to="6281234567890", text=text), kirim.settings)
    kirim.store.create(job, state, index, score, "tok")
    return job.id


def tasks(kirim: KirimClient, queue: str = "sms") -> list[tuple[str, str]]:
    """(message id, dispatch token) of every task on a broker list, oldest first."""
    found = []
    for raw in reversed(kirim.redis.lrange(queue, 0, -1)):
        args, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        found.append((args[0]["id"], kwargs["dispatch"]))
    return found


def field(kirim: KirimClient, mid: str, name: str) -> str | None:
    """One field of a message's record."""
    record = kirim.store.get(mid)
    return record.get(name) if record else None


def test_requeue_moves_publishes_and_pushes_the_outbox_entry_back(kirim: KirimClient) -> None:
    mid = stored(kirim, State.DEFERRED, kirim.keys.deferred, time.time() - 1)
    kirim.redis.sadd(kirim.keys.held(str(Circuit.SMS)), mid)
    kirim.redis.zadd(kirim.keys.sending, {mid: time.time()})
    before = time.time()
    assert kirim.requeuer.requeue(mid, allowed_from=[State.DEFERRED], note="requeued by test",
                                  set_fields={"reason": "r"}, incr={"attempts": 2})
    after = time.time()
    record = kirim.status(mid)
    assert record.state == State.QUEUED and record.timeline[-1]["note"] == "requeued by test"
    assert record.get("reason") == "r" and record.get("attempts") == "2"
    token = record.get("dispatch")
    assert token and token != "tok" and tasks(kirim) == [(mid, token)]
    assert before <= float(record.get("not_before") or 0) <= after
    recheck = kirim.requeuer.recheck_after_s
    assert before + recheck <= kirim.redis.zscore(kirim.keys.outbox, mid) <= after + recheck
    assert kirim.redis.zscore(kirim.keys.deferred, mid) is None
    assert kirim.redis.zscore(kirim.keys.sending, mid) is None
    assert not kirim.redis.sismember(kirim.keys.held(str(Circuit.SMS)), mid)


def test_a_countdown_is_the_not_before_and_delays_the_recheck(kirim: KirimClient) -> None:
    mid = stored(kirim, State.DEFERRED, kirim.keys.deferred, time.time())
    before = time.time()
    assert kirim.requeuer.requeue(mid, allowed_from=[State.DEFERRED], note="later",
                                  countdown_s=30)
    not_before = float(field(kirim, mid, "not_before") or 0)
    assert before + 30 <= not_before <= time.time() + 30
    due = kirim.redis.zscore(kirim.keys.outbox, mid)
    assert due == pytest.approx(not_before + kirim.requeuer.recheck_after_s, abs=1)
    [raw] = kirim.redis.lrange("sms", 0, -1)
    assert json.loads(raw)["headers"]["eta"], "published with the countdown"


def test_a_refused_move_returns_false_and_changes_nothing(kirim: KirimClient) -> None:
    due = time.time() - 5
    mid = stored(kirim, State.QUEUED, kirim.keys.outbox, due)
    assert not kirim.requeuer.requeue(mid, allowed_from=[State.DEFERRED], note="no")
    assert not kirim.requeuer.requeue("no-such-message", allowed_from=[State.DEFERRED],
                                      note="no")
    record = kirim.status(mid)
    assert record.state == State.QUEUED and record.get("dispatch") == "tok"
    assert len(record.timeline) == 2  # accepted, queued: no third entry
    assert kirim.redis.zscore(kirim.keys.outbox, mid) == pytest.approx(due)
    assert tasks(kirim) == []


def test_sweep_republishes_overdue_unclaimed_and_skips_claimed(kirim: KirimClient) -> None:
    old = time.time() - 60
    lost = stored(kirim, State.QUEUED, kirim.keys.outbox, old, "lost publish")
    fresh = stored(kirim, State.QUEUED, kirim.keys.outbox, time.time(), "within the grace")
    claimed = stored(kirim, State.QUEUED, kirim.keys.outbox, old, "claimed")
    assert kirim.store.claim(claimed, 30, "tok", "sms", "c1")[0] == "claimed"
    assert kirim.redis.zscore(kirim.keys.outbox, claimed) is None  # the claim took it out
    kirim.redis.zadd(kirim.keys.outbox, {claimed: old})  # a stale entry, as after a race
    before = time.time()
    assert kirim.requeuer.sweep_outbox(grace_s=2) == 1
    assert tasks(kirim) == [(lost, "tok")]  # the record's own token: no second send possible
    assert kirim.redis.zscore(kirim.keys.outbox, lost) >= before + kirim.requeuer.recheck_after_s
    assert kirim.redis.zscore(kirim.keys.outbox, fresh) is not None
    assert kirim.redis.zscore(kirim.keys.outbox, claimed) is None  # dropped, not published
    assert kirim.store.states([lost, fresh, claimed]) == [State.QUEUED, State.QUEUED,
                                                           State.SENDING]


def test_release_due_requeues_only_what_is_due_and_drops_stale_entries(
        kirim: KirimClient) -> None:
    now = time.time()
    due = stored(kirim, State.DEFERRED, kirim.keys.deferred, now - 1, "due")
    later = stored(kirim, State.DEFERRED, kirim.keys.deferred, now + 600, "later")
    moved_on = stored(kirim, State.SENT, kirim.keys.deferred, now - 1, "already sent")
    kirim.redis.zadd(kirim.keys.deferred, {"gone-message": now - 1})
    assert kirim.requeuer.release_due() == 1
    assert kirim.store.states([due, later, moved_on]) == [State.QUEUED, State.DEFERRED,
                                                           State.SENT]
    assert [mid for mid, _ in tasks(kirim)] == [due]
    remaining = {m.decode() for m in kirim.redis.zrange(kirim.keys.deferred, 0, -1)}
    assert remaining == {later}


@pytest.fixture
def unreachable_broker(kirim: KirimClient) -> Iterator[Requeuer]:
    """A Requeuer on the test Redis whose publisher's broker refuses connections."""
    dead = settings_from_env({"KIRIM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    celery = make_celery(dead)
    yield Requeuer(kirim.store, Publisher(celery), kirim.requeuer.recheck_after_s)
    celery.close()


def test_a_failed_publish_leaves_the_outbox_entry_for_the_sweep(
        kirim: KirimClient, unreachable_broker: Requeuer) -> None:
    mid = stored(kirim, State.DEFERRED, kirim.keys.deferred, time.time())
    before = time.time()
    assert unreachable_broker.requeue(mid, allowed_from=[State.DEFERRED], note="broker down")
    assert kirim.status(mid).state == State.QUEUED  # moved: the outbox has it
    due = kirim.redis.zscore(kirim.keys.outbox, mid)
    assert due is not None and before <= due <= time.time()  # due now, not pushed back
    assert tasks(kirim) == []
    assert kirim.requeuer.sweep_outbox(grace_s=0) == 1  # the broker is back
    assert tasks(kirim) == [(mid, field(kirim, mid, "dispatch"))]
    assert kirim.redis.zscore(kirim.keys.outbox, mid) > before + 5
