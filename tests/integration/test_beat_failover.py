"""RedBeat: two beat processes, one leader; the standby takes over when the leader is SIGKILLed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from producer.core.contract import State
from tests.support.waiting import wait_for, wait_states

pytestmark = pytest.mark.timeout(90)

LOCK_TIMEOUT_S = 15  # worker/app.py redbeat_lock_timeout
MAX_LOOP_S = 5  # worker/app.py beat_max_loop_interval: how often a standby tries the lock
ACQUIRED = "beat: Acquired lock"


@pytest.fixture
def kirim_env(kirim_env: dict[str, str]) -> dict[str, str]:
    """Fast DR polling: the scheduled task whose effect the test watches."""
    return {**kirim_env, "KIRIM_DR_POLL_INTERVAL_S": "0.5", "KIRIM_DR_FIRST_POLL_S": "0.2",
            "KIRIM_DR_BACKOFF_MAX_S": "1"}


def _log(workers, proc) -> str:
    index = workers.procs.index(proc)
    path = Path(workers.logdir) / f"beat{index}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_standby_beat_takes_over_after_the_leader_is_killed(kirim, workers, sandbox):
    sandbox.configure(dr_delay_s=0.1)
    workers.start(queues="otp,sms,wa,maintenance,reports")
    leader = workers.beat()
    wait_for(lambda: ACQUIRED in _log(workers, leader), 20, "the first beat to take the lock")
    standby = workers.beat()
    wait_for(lambda: "beat: Starting" in _log(workers, standby), 20, "the second beat to start")
    lock_key = f"{kirim.keys.prefix}:redbeat::lock"
    assert kirim.redis.exists(lock_key) and 0 < kirim.redis.ttl(lock_key) <= LOCK_TIMEOUT_S
    before = kirim.send_sms("6281191100000", "polled by the leader")
    wait_states(kirim, [before], {State.DELIVERED}, timeout_s=20)
    assert ACQUIRED not in _log(workers, standby), "two beats hold the lock at once"

    workers.kill(leader)
    killed_at = time.monotonic()
    after = kirim.send_sms("6281191100001", "polled by the standby")
    wait_states(kirim, [after], {State.SENT}, timeout_s=20)
    wait_states(kirim, [after], {State.DELIVERED}, timeout_s=LOCK_TIMEOUT_S + MAX_LOOP_S + 10)
    took_over_s = time.monotonic() - killed_at
    assert ACQUIRED in _log(workers, standby)
    assert took_over_s <= LOCK_TIMEOUT_S + MAX_LOOP_S + 10
