"""DR polling's budget: per-message backoff, the account pause, the rate slice, poisoned ids.

Real worker and beat processes, real Redis, the sandbox over HTTP; the poisoned-id test runs
one poll round in this process (a real NusaSMSClient on the sandbox) to see that it returns.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator

import pytest

from producer.core.contract import State
from tests.support.waiting import wait_for, wait_states
from worker.delivery import Applied, DeliveryReports
from worker.dr_poll import DRPoller, account_refused
from worker.nusasms import NusaSMSClient, NusaSMSConfig, ProviderRejected, build_http_client
from worker.nusasms.status import lookup

pytestmark = pytest.mark.timeout(120)

INTERVAL_S, BACKOFF_MAX_S, PAUSE_MIN_S, PAUSE_MAX_S = 0.5, 4.0, 1.0, 4.0
DR_ENV = {
    "KIRIM_DR_POLL_INTERVAL_S": str(INTERVAL_S),
    "KIRIM_DR_FIRST_POLL_S": "0.2",
    "KIRIM_DR_BACKOFF_MAX_S": str(BACKOFF_MAX_S),
    "KIRIM_DR_BATCH_SIZE": "50",
    "KIRIM_DR_CONCURRENCY": "4",
    "KIRIM_DR_EXPIRY_S": "3600",
    "KIRIM_DR_PAUSE_MIN_S": str(PAUSE_MIN_S),
    "KIRIM_DR_PAUSE_MAX_S": str(PAUSE_MAX_S),
    # Wide open unless a test narrows it: the backoff and pause tests count pulls, not slots.
    "KIRIM_DR_RATE_LIMIT_PER_S": "500",
    "KIRIM_DR_RATE_LIMIT_BURST": "100",
}
QUEUES = "otp,sms,wa,maintenance,reports"
DELIVERED_NUMBER = "6281191100000"  # sandbox magic: final letter D


@pytest.fixture
def kirim_env(kirim_env: dict[str, str]) -> dict[str, str]:
    """The integration env with fast delivery-report polling."""
    return {**kirim_env, **DR_ENV}


def send_and_wait_sent(kirim, workers, sandbox, count: int, queues: str = QUEUES
                       ) -> list[str]:
    """`count` SMS sent, their report final (D) from the first pull; no beat yet."""
    sandbox.configure(dr_delay_s=0)  # the sandbox fixes a message's report time on accepting
    workers.start(queues=queues)
    ids = [kirim.send_sms(DELIVERED_NUMBER, f"laporan {i}") for i in range(count)]
    wait_states(kirim, ids, {State.SENT})
    return ids


def dr_requests(sandbox, since: float = 0.0) -> list[dict]:
    """The sandbox's DR pulls (any outcome) that arrived after `since`, oldest first."""
    return [r for r in sandbox.requests() if r["cmd"] == "DR" and r["t"] >= since]


def observe_pulls(workers, sandbox, seconds: float, stop: bool = False) -> list[dict]:
    """Start beat; its DR pulls in `seconds` from the first (then stop beat if `stop`)."""
    started = time.time()
    beat = workers.beat()
    wait_for(lambda: bool(dr_requests(sandbox, started)), 30, "the first DR pull")
    first = dr_requests(sandbox, started)[0]["t"]
    time.sleep(max(0.0, first + seconds - time.time()))
    if stop:
        workers.kill(beat, signal.SIGTERM)
        time.sleep(2 * INTERVAL_S)
    return [r for r in dr_requests(sandbox, first) if stop or r["t"] < first + seconds]


def full_logs(workers) -> str:
    """Every worker and beat log in full (Workers.logs keeps only their tails)."""
    return "".join(p.read_text(errors="replace") for p in sorted(workers.logdir.glob("*.log")))


def failures(kirim, ids: list[str]) -> list[int]:
    return [int(kirim.status(mid).get("dr_failures") or 0) for mid in ids]


def test_failed_pulls_back_off_per_message(kirim, workers, sandbox):
    ids = send_and_wait_sent(kirim, workers, sandbox, 8)
    sandbox.configure(rate_5xx=1.0)  # every pull: HTTP 5xx (outcome RETRY)
    observe_s = 8.0
    pulls = observe_pulls(workers, sandbox, observe_s, stop=True)
    rounds = observe_s / INTERVAL_S
    # 0.5, 1, 2, 4 s apart: at most 5 pulls each in 8 s (one more for a round's rounding),
    # where a retry at once would be one per message per round (16 each).
    assert len(ids) <= len(pulls) <= 6 * len(ids), len(pulls)
    assert len(pulls) < rounds * len(ids) / 2
    assert all(r["fault"] == "5xx" for r in pulls)
    counted = failures(kirim, ids)
    assert all(3 <= n <= 6 for n in counted), counted
    assert sum(counted) == len(pulls)  # every failed pull charged to its message, once
    for mid in ids:
        record = kirim.status(mid)
        n = int(record.get("dr_failures") or 0)
        next_at, failed_at = float(record.get("dr_next_at")), float(record.get("dr_failed_at"))
        assert next_at - failed_at == pytest.approx(min(INTERVAL_S * 2 ** (n - 1),
                                                        BACKOFF_MAX_S), abs=1e-3)
        assert kirim.redis.zscore(kirim.keys.dr_pending, mid) == pytest.approx(next_at)
        assert record.state == State.SENT and record.get("dr_error", "").find("HTTP 5") >= 0
    # A message whose pulls keep failing still expires at dr_expiry_s.
    kirim.redis.hset(kirim.keys.message(ids[0]), "sent_at", time.time() - 3601)
    workers.beat()
    wait_states(kirim, [ids[0]], {State.EXPIRED}, timeout_s=BACKOFF_MAX_S + 5)
    assert kirim.status(ids[0]).get("reason") == "dr_expired"
    sandbox.configure(rate_5xx=0.0)
    wait_states(kirim, ids[1:], {State.DELIVERED}, timeout_s=BACKOFF_MAX_S + 10)


def test_wrong_credentials_pause_polling_until_they_are_right(kirim, workers, sandbox):
    ids = send_and_wait_sent(kirim, workers, sandbox, 10)
    sandbox.configure(password="changed")  # every pull now answers -5
    started = time.time()
    pulls = observe_pulls(workers, sandbox, 8.0)
    paused_lines = full_logs(workers).count("dr_polling_paused")
    assert pulls and all(r["status"] == "-5" for r in pulls)
    # The first round's threads (4) may each have one in flight; then one probe per pause
    # (1, 2, 4 s): about 1 per pause interval, not one per message per round (160).
    times = [r["t"] for r in pulls]
    assert 2 <= len(pulls) <= 4 + 3, [round(t - times[0], 2) for t in times]
    gaps = [b - a for a, b in itertools.pairwise(times) if b - a > 0.3]  # probe to probe
    assert gaps and all(gap >= PAUSE_MIN_S - 0.05 for gap in gaps), gaps
    # One error line per pause (the first refusal, then each refused probe), not per pull.
    assert len(gaps) + 1 <= paused_lines <= len(gaps) + 2, paused_lines
    pause = {k.decode(): v.decode() for k, v in
             kirim.redis.hgetall(kirim.keys.dr_pause).items()}
    assert float(pause["pause_s"]) >= 2 * PAUSE_MIN_S and "-5" in pause["reason"]
    assert float(pause["until"]) > started
    assert failures(kirim, ids) == [0] * len(ids)  # the account's fault, not the messages'
    assert kirim.store.states(ids) == [State.SENT] * len(ids)
    sandbox.configure(password="demo")
    wait_states(kirim, ids, {State.DELIVERED}, timeout_s=PAUSE_MAX_S + 10)
    assert not kirim.redis.exists(kirim.keys.dr_pause)
    assert "dr_polling_resumed" in full_logs(workers)


RATE_PER_S, BURST = 5.0, 2


def test_dr_pulls_stay_within_their_rate_slice(kirim, workers, sandbox):
    # A sender that takes no poll task; one pull each is enough.
    ids = send_and_wait_sent(kirim, workers, sandbox, 30, queues="otp,sms,wa,maintenance")
    slice_env = {"KIRIM_DR_RATE_LIMIT_PER_S": str(RATE_PER_S),
                 "KIRIM_DR_RATE_LIMIT_BURST": str(BURST)}
    for _ in range(2):  # two processes share one budget
        workers.start(queues="reports", concurrency=4, extra_env=slice_env)
    workers.beat()
    wait_states(kirim, ids, {State.DELIVERED}, timeout_s=30)
    times = [r["t"] for r in dr_requests(sandbox)]
    assert len(times) == len(ids)  # nothing given back was lost or pulled twice
    # Arrival at the sandbox lags the grant by a few ms: allow a quarter second of it.
    lag_s = 0.25
    worst = max(j - i + 1 - (RATE_PER_S * (times[j] - times[i] + lag_s) + BURST)
                for i in range(len(times)) for j in range(i, len(times)))
    assert worst <= 0, worst
    span_s = times[-1] - times[0]
    assert span_s >= (len(ids) - BURST) / RATE_PER_S - lag_s  # the budget held them back
    assert span_s <= 2 * len(ids) / RATE_PER_S  # and the budget was used, not starved


@pytest.fixture
def poller(kirim, settings, sandbox) -> Iterator[tuple[DRPoller, NusaSMSClient]]:
    """A DRPoller and a NusaSMSClient on the sandbox, in this process."""
    http = build_http_client(1.0, 2.0, 8)
    client = NusaSMSClient(NusaSMSConfig(sandbox.url, "demo", "demo"), http)
    yield DRPoller(DeliveryReports(kirim.store, settings)), client
    http.close()


def _poison(kirim, name: str, fields: dict, timeline: bytes | None = None) -> str:
    mid = f"msg-poison-{name}"
    kirim.redis.hset(kirim.keys.message(mid), mapping=fields)
    if timeline is not None:
        kirim.redis.rpush(kirim.keys.timeline(mid), timeline)
    kirim.redis.zadd(kirim.keys.dr_pending, {mid: 0})  # due before every good one
    return mid


def test_poisoned_ids_leave_the_poll_and_the_round_goes_on(kirim, workers, sandbox, poller):
    dr, client = poller
    good = send_and_wait_sent(kirim, workers, sandbox, 3)
    sent = {"state": "sent", "provider_id": "999999999999999999"}
    poisons = {
        "ValueError": _poison(kirim, "date", {**sent, "sent_at": "garbage"}),
        "JSONDecodeError": _poison(kirim, "timeline", sent, timeline=b"{not json"),
        "UnicodeDecodeError": _poison(kirim, "utf8", {**sent, "sender": b"\xff\xfe"}),
    }
    stateless = _poison(kirim, "nostate", {"provider_id": "1"})  # KeyError: no state
    time.sleep(0.3)  # the good ones' first poll (0.2 s after sending) is due
    counts = dr.poll_due(client)  # returns: no poisoned id stops the round
    assert counts[Applied.UNREADABLE] == 4 and counts[Applied.FINAL] == 3, counts
    assert kirim.store.states(good) == [State.DELIVERED] * 3
    for error, mid in poisons.items():
        state, reason = kirim.redis.hmget(kirim.keys.message(mid), "state", "reason")
        assert state == b"expired" and reason.decode().startswith(f"dr_unreadable: {error}")
    assert kirim.redis.hget(kirim.keys.message(stateless), "state") is None
    assert kirim.redis.zcard(kirim.keys.dr_pending) == 0


def test_a_poisoned_id_does_not_stop_beats_polls(kirim, workers, sandbox):
    good = send_and_wait_sent(kirim, workers, sandbox, 3)
    bad = _poison(kirim, "beat", {"state": "sent", "provider_id": "999999999999999999",
                                  "sent_at": "garbage"})
    workers.beat()
    wait_states(kirim, [*good, bad], {State.DELIVERED, State.EXPIRED})
    assert kirim.store.states(good) == [State.DELIVERED] * 3
    assert kirim.status(bad).get("reason", "").startswith("dr_unreadable: ValueError")
    assert full_logs(workers).count("dr_unreadable") == 1  # logged once


def test_pause_doubles_up_to_its_cap_and_one_refusal_counts_once(kirim, settings):
    dr = DRPoller(DeliveryReports(kirim.store, settings))
    key, now = kirim.keys.dr_pause, 1000.0

    def pause(at: float) -> tuple[int, float, float]:
        started, until, pause_s = dr._pause(keys=[key], args=[at, PAUSE_MIN_S, PAUSE_MAX_S, "-5"])
        return int(started), float(until), float(pause_s)

    assert pause(now) == (1, now + 1, 1)
    assert pause(now + 0.5) == (0, now + 1, 1)  # a second thread refused at the same time
    assert pause(now + 1) == (1, now + 3, 2)
    assert pause(now + 3) == (1, now + 7, 4)
    assert pause(now + 7) == (1, now + 11, 4)  # capped
    assert kirim.redis.hget(key, "since") == b"1000.0"


def test_only_account_wide_refusals_pause():
    assert account_refused(ProviderRejected("delivery_report", lookup(-5)))
    assert account_refused(ProviderRejected("delivery_report", lookup(-40)))
    # -22 on the DR command: a ref_no the provider does not know, one message's trouble.
    assert not account_refused(ProviderRejected("delivery_report", lookup(-22)))
    assert not account_refused(ProviderRejected("delivery_report", lookup(-26)))
