"""Beat rides out a Redis restart by itself (worker/beat.py), and gives up after a bounded wait.

Real redis-server (AOF, restarted on the same port with its data), real beat and worker
processes; nobody restarts beat. The periodic task watched is `drain-callbacks` (every second,
on `reports`): beat logs "Sending due task" for it and the worker logs it received.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time

import pytest
import redis as redis_lib

from tests.support.processes import RedisServer, free_port
from tests.support.waiting import wait_for
from tests.support.workers import Workers

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

DOWN_S = 10.0
LOCK_TIMEOUT_S = 15  # worker/app.py redbeat_lock_timeout
MAX_LOOP_S = 5  # worker/app.py beat_max_loop_interval: how often a standby tries the lock
EX_UNAVAILABLE = 69  # worker/beat.py: beat gave up on Redis
ACQUIRED = "beat: Acquired lock"
DOWN = "beat: Redis is unreachable"
BACK = "beat: Redis is reachable again"
LOST = "beat: Lost the lock"
STANDBY = "beat: Another beat holds the lock; standing by"
EXITING = "beat: exiting: Redis has been unreachable for longer than KIRIM_BEAT_REDIS_WAIT_S"
SENDING = "Sending due task drain-callbacks"
RECEIVED = "Task kirim.drain_callbacks["


@pytest.fixture
def redis_url(aof_redis: RedisServer) -> str:
    """Every kirim process of these tests uses the restartable Redis, not the session's."""
    return aof_redis.url


def _log(workers: Workers, proc: subprocess.Popen[bytes], name: str) -> list[str]:
    """Lines of a process's log (Workers names it after the process's start order)."""
    path = workers.logdir / f"{name}{workers.procs.index(proc)}.log"
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def _count(lines: list[str], needle: str) -> int:
    return sum(needle in line for line in lines)


def _after(lines: list[str], needle: str) -> list[str]:
    """The lines after the last one containing `needle` (none if no line does)."""
    marks = [i for i, line in enumerate(lines) if needle in line]
    return lines[marks[-1] + 1:] if marks else []


def _write_while_down(server: RedisServer, key: str, value: str) -> None:
    """Change the stopped Redis's data: start it on a port beat does not know, write, stop."""
    port, server.port = server.port, free_port()
    try:
        server.start()
        client = redis_lib.Redis(port=server.port)
        client.set(key, value, px=120_000)
        client.close()
        server.stop()
    finally:
        server.port = port


def test_beat_keeps_running_through_a_redis_restart(aof_redis, workers, settings):
    worker = workers.start(queues="maintenance,reports", concurrency=4)
    beat = workers.beat()
    wait_for(lambda: _count(_log(workers, worker, "w"), RECEIVED) >= 3, 40,
             "the worker to receive periodic tasks before the restart")

    aof_redis.stop()
    time.sleep(DOWN_S)
    assert beat.poll() is None, "beat exited while Redis was down"
    received = _count(_log(workers, worker, "w"), RECEIVED)
    aof_redis.start()  # same port, same AOF directory
    back_at = time.monotonic()
    wait_for(lambda: _count(_after(_log(workers, beat, "beat"), BACK), SENDING) >= 1, 15,
             "beat to schedule again after the restart")
    scheduling_s = time.monotonic() - back_at
    wait_for(lambda: _count(_log(workers, worker, "w"), RECEIVED) >= received + 3, 40,
             "the worker to receive periodic tasks after the restart")
    received_s = time.monotonic() - back_at

    lines = _log(workers, beat, "beat")
    print(f"[beat] Redis down {DOWN_S:.0f} s; beat scheduling again {scheduling_s:.1f} s and"
          f" the worker receiving {received_s:.1f} s after Redis came back")
    assert beat.poll() is None, "beat exited after Redis came back"
    assert _count(lines, DOWN) == 1 and _count(lines, BACK) == 1, "\n".join(lines[-30:])
    assert _count(_after(lines, DOWN), BACK) == 1, "the recovery was logged before the outage"
    assert "beat raised exception" not in "\n".join(lines)
    assert scheduling_s < MAX_LOOP_S
    client = redis_lib.Redis.from_url(aof_redis.url)
    assert 0 < client.ttl(settings.key_prefix + ":redbeat::lock") <= LOCK_TIMEOUT_S, "no lock"
    client.close()


def test_beat_exits_after_the_wait_when_redis_stays_down(aof_redis, workers):
    workers.env = {**workers.env, "KIRIM_BEAT_REDIS_WAIT_S": "5"}
    beat = workers.beat()
    wait_for(lambda: _count(_log(workers, beat, "beat"), SENDING) >= 1, 40,
             "beat to schedule")

    aof_redis.stop()
    stopped_at = time.monotonic()
    code = beat.wait(30)
    exited_s = time.monotonic() - stopped_at

    lines = _log(workers, beat, "beat")
    print(f"[beat] KIRIM_BEAT_REDIS_WAIT_S=5: beat exited {exited_s:.1f} s into the outage")
    assert code == EX_UNAVAILABLE, "\n".join(lines[-30:])
    assert _count(lines, EXITING) == 1 and _count(lines, DOWN) == 1
    assert 5 <= exited_s <= 5 + 2 * MAX_LOOP_S
    assert "Traceback" not in "\n".join(_after(lines, DOWN)), "the exit is one line, no trace"


def test_beat_stands_by_when_another_beat_took_the_lock_during_the_outage(
        aof_redis, workers, settings):
    beat = workers.beat()
    wait_for(lambda: _count(_log(workers, beat, "beat"), SENDING) >= 1, 40,
             "beat to schedule")
    lock_key = f"{settings.key_prefix}:redbeat::lock"

    aof_redis.stop()
    _write_while_down(aof_redis, lock_key, "another-beat")  # the other leader's token
    time.sleep(2)
    aof_redis.start()
    wait_for(lambda: STANDBY in "\n".join(_log(workers, beat, "beat")), 15,
             "beat to notice the other leader and stand by")
    time.sleep(MAX_LOOP_S + 1)  # at least one more standby tick
    lines = _log(workers, beat, "beat")
    assert _count(lines, LOST) == 1, "\n".join(lines[-30:])
    standby = _after(lines, LOST)
    client = redis_lib.Redis.from_url(aof_redis.url, decode_responses=True)
    assert client.get(lock_key) == "another-beat", "beat overwrote another beat's lock"
    assert _count(standby, SENDING) == 0, "beat scheduled while another beat held the lock"

    client.delete(lock_key)  # the other leader went away; its lock is gone
    wait_for(lambda: _count(_after(_log(workers, beat, "beat"), ACQUIRED), SENDING) >= 1
             and _count(_log(workers, beat, "beat"), ACQUIRED) == 2, 2 * MAX_LOOP_S + 5,
             "beat to take the free lock and schedule again")
    assert client.get(lock_key) not in (None, "another-beat")
    assert 0 < client.ttl(lock_key) <= LOCK_TIMEOUT_S
    assert beat.poll() is None
    client.close()


def _sent_at(lines: list[str]) -> list[str]:
    """Timestamps (ISO, UTC) of every task the beat sent."""
    return [json.loads(line)["timestamp"] for line in lines
            if line.startswith("{") and "Sending due task" in line]


def test_two_beats_one_leader_after_an_outage_longer_than_the_lock(aof_redis, workers):
    first = workers.beat()
    wait_for(lambda: _count(_log(workers, first, "beat"), SENDING) >= 1, 40, "the leader")
    second = workers.beat()
    wait_for(lambda: STANDBY in "\n".join(_log(workers, second, "beat")), 40, "the standby")

    aof_redis.stop()
    time.sleep(LOCK_TIMEOUT_S + 2)  # the leader's lock expires meanwhile
    aof_redis.start()
    wait_for(lambda: any(_count(_after(_log(workers, b, "beat"), BACK), SENDING) >= 3
                         for b in (first, second)), 15, "one beat to schedule again")
    time.sleep(MAX_LOOP_S + 1)  # the other beat tries the lock at least once more meanwhile

    logs = {b.pid: _log(workers, b, "beat") for b in (first, second)}
    assert first.poll() is None and second.poll() is None
    for lines in logs.values():
        assert _count(lines, DOWN) == 1 and _count(lines, BACK) == 1, "\n".join(lines[-30:])
    leader = sorted((at, pid) for pid, lines in logs.items() for at in _sent_at(lines))
    switches = sum(a[1] != b[1] for a, b in itertools.pairwise(leader))
    print(f"[beat] two beats, Redis down {LOCK_TIMEOUT_S + 2} s: leadership changed"
          f" {switches} time(s)")
    assert switches <= 1, "two beats scheduled at the same time"
