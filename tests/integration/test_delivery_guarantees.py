"""No loss, no duplicates, lanes kept apart, schedules kept: with real worker processes."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from producer.core.contract import State
from producer.core.routing import Queues
from tests.support.queues import queued_ids
from tests.support.reliability import REACHED
from tests.support.waiting import wait_for, wait_states

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]


def test_worker_sigkilled_mid_flight_loses_nothing_and_sends_nothing_twice(
        kirim, workers, sandbox):
    sandbox.configure(latency_ms=150)
    first = workers.start(concurrency=16)
    workers.beat()  # its outbox sweep republishes a task lost inside the killed worker
    texts = {f"62812000{i:05d}": f"tagihan {i}" for i in range(240)}
    results = kirim.send_many([{"channel": "sms", "to": to, "text": t} for to, t in texts.items()])
    ids = [r.id for r in results]
    wait_for(lambda: sandbox.stats()["accepted"] >= 20, 20, "the first sends")
    workers.kill(first, signal.SIGKILL)
    in_flight = sum(s == State.SENDING for s in kirim.store.states(ids))
    assert in_flight > 0, "the kill should catch messages mid-call"
    workers.start(concurrency=16)
    # Beat also polls delivery reports, so a sent message may already be `delivered`.
    states = wait_states(kirim, ids, {*REACHED, State.UNKNOWN}, timeout_s=90)
    counts = sandbox.counts()
    assert all(n == 1 for n in counts.values()), "a recipient got the same message twice"
    for mid, state in zip(ids, states, strict=True):
        to, text = kirim.status(mid).get("to"), texts[kirim.status(mid).get("to") or ""]
        if state in REACHED:
            assert counts.get((to, text)) == 1, f"{mid} is sent but the provider never got it"
    unknown = states.count(State.UNKNOWN)
    assert unknown <= in_flight, "only messages caught mid-call may be unknown"
    assert sum(s in REACHED for s in states) >= len(ids) - in_flight


def test_otp_is_sent_before_an_sms_backlog_drains(kirim, workers, sandbox):
    sandbox.configure(latency_ms=20)
    workers.start(queues="sms,wa", concurrency=4, name="general")
    workers.start(queues="otp", concurrency=2, name="otp")
    backlog = kirim.send_many([{"channel": "sms", "to": f"62812111{i:05d}", "text": f"promo {i}"}
                               for i in range(3000)])
    time.sleep(1.0)
    otp = kirim.send_otp("6281299990000", "Kode OTP Anda 424242")
    wait_states(kirim, [otp], {State.SENT}, timeout_s=10)
    sent_sms = sum(s == State.SENT for s in kirim.store.states([r.id for r in backlog]))
    assert sent_sms < 2000, f"the OTP waited for the backlog ({sent_sms} SMS sent first)"
    assert len(queued_ids(kirim.redis, Queues.SMS)) > 500


def test_scheduled_message_is_held_then_sent_by_beat(kirim, workers, sandbox):
    workers.start(queues="otp,sms,wa,maintenance")
    workers.beat()
    accepted = kirim.submit({"channel": "sms", "to": "6281234567890", "text": "later",
                             "send_at": time.time() + 3})
    assert accepted.state == State.DEFERRED
    time.sleep(1.5)
    assert sandbox.stats()["accepted"] == 0
    wait_states(kirim, [accepted.id], {State.SENT}, timeout_s=30)
    notes = [e["state"] for e in kirim.status(accepted.id).timeline]
    assert notes == ["accepted", "deferred", "queued", "sending", "sent"]


def test_group_send_is_one_tracked_job(kirim, workers, sandbox):
    workers.start()
    mid = kirim.send_group("Example", "Rapat jam 3 sore")
    wait_states(kirim, [mid], {State.SENT})
    assert (kirim.status(mid).get("provider_id") or "").startswith("Group-Api-Campaign")
    bad = kirim.send_group("NoSuchGroup", "nobody")
    wait_states(kirim, [bad], {State.DEAD})
    assert kirim.status(bad).get("last_code") == "-55"


def test_outbox_publishes_what_a_crash_left_unpublished(kirim, workers, sandbox):
    from producer.core.contract import SendRequest
    from producer.core.jobs import build_job

    job = build_job(SendRequest(channel="sms", to="6281234567890", text="orphan"), kirim.settings)
    kirim.store.create(job, State.QUEUED, kirim.keys.outbox, time.time() - 60, "tok1")
    workers.start()
    assert kirim.requeuer.sweep_outbox(grace_s=2) == 1
    wait_states(kirim, [job.id], {State.SENT})
    assert sandbox.counts()[("6281234567890", "orphan")] == 1


def test_worker_command_lines_consume_exactly_the_code_queues():
    """Every -Q in the Makefile stack, compose file and docs names a real queue, and together
    they cover every queue the code routes to."""
    sources = [ROOT / "producer/cli/stack.py", ROOT / "docker-compose.yml"]
    consumed: set[str] = set()
    for path in sources:
        for match in re.finditer(r"""["']?-Q["']?,?\s*["']?([a-z,]+)""", path.read_text()):
            queues = set(match.group(1).split(","))
            assert queues <= set(Queues.ALL), f"{path.name} consumes unknown queues {queues}"
            consumed |= queues
    assert consumed == set(Queues.ALL)
