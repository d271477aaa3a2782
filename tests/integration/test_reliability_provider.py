"""The provider on its worst day: a storm of faults, then an outage longer than a few retries."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from producer.core.contract import State
from sandbox.control import SandboxControl
from tests.support.processes import free_port, start_sandbox, stop
from tests.support.reliability import check_run
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import TEST_ENV

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

STORM = {"rate_5xx": 0.3, "rate_timeout": 0.1, "rate_malformed": 0.05, "rate_429": 0.05,
         "rate_drop_after_accept": 0.03, "hang_s": 2.5, "seed": 20251125}
STORM_MESSAGES = 400
# What the provider may have taken (read timeout, dropped reply, garbled 2xx): never resent.
AMBIGUOUS_FAULTS = {"timeout", "malformed", "drop_after_accept"}


def test_fault_storm_ends_every_message_within_its_budget_and_never_twice(kirim, workers,
                                                                          sandbox):
    started = time.monotonic()
    sandbox.configure(latency_ms=10, **STORM)
    for _ in range(2):
        workers.start(concurrency=16)
    texts = {f"62815{i:07d}": f"storm {i}" for i in range(STORM_MESSAGES)}
    results = kirim.send_many([{"channel": "sms", "to": to, "text": t} for to, t in texts.items()])
    by_id = {r.id: (r.to or "", texts[r.to or ""]) for r in results}
    ended = frozenset({State.SENT, State.DEAD, State.UNKNOWN})
    wait_states(kirim, list(by_id), ended, timeout_s=120)
    out = check_run(kirim, sandbox, by_id, ended, started)
    max_attempts = int(TEST_ENV["KIRIM_RETRY_MAX_ATTEMPTS"])
    last_fault = _last_fault_by_gsm(sandbox)
    attempts: Counter[int] = Counter()
    for mid, (to, _) in by_id.items():
        record = kirim.status(mid)
        attempts[record.attempts] += 1
        assert 1 <= record.attempts <= max_attempts, f"{mid} used {record.attempts} attempts"
        if record.state == State.DEAD:
            assert (record.get("reason") or "").startswith("retries exhausted"), record.fields
            assert record.attempts == max_attempts
        if last_fault.get(to) in AMBIGUOUS_FAULTS:
            assert record.state == State.UNKNOWN, (mid, last_fault[to], record.state)
        if record.state == State.UNKNOWN:
            assert last_fault.get(to) in AMBIGUOUS_FAULTS, (mid, last_fault.get(to))
    stats = sandbox.stats()
    print(out.line(f"fault storm {STORM}"))
    print(f"[reliability] provider requests={stats['requests']} faults={stats['faults']}"
          f" attempts per message={dict(sorted(attempts.items()))}")
    assert out.duplicates == 0 and stats["duplicates"] == 0


def _last_fault_by_gsm(sandbox: SandboxControl) -> dict[str, str | None]:
    """The fault of the last provider request for each recipient (None: a clean reply)."""
    last: dict[str, str | None] = {}
    for entry in sandbox.requests():
        if entry["gsm"]:
            last[entry["gsm"]] = entry["fault"]
    return last


OUTAGE_S = 10.0
# Ceilings 0.5, 1, 2, 4, 5, 5, 5, 5, 5 s, each waited for half to all of it: at least 16 s of
# waiting over 10 attempts, more than the outage.
OUTAGE_RETRY_ENV = {"KIRIM_RETRY_MAX_ATTEMPTS": "10", "KIRIM_RETRY_BASE_DELAY_S": "0.5",
                    "KIRIM_RETRY_MAX_DELAY_S": "5"}


@pytest.fixture
def late_sandbox(tmp_path) -> Iterator[tuple[str, object]]:
    """A sandbox URL on which nothing listens yet, and a function that starts it there."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs = []

    def start() -> SandboxControl:
        procs.append(start_sandbox(port, tmp_path / "late-sandbox.log"))
        return SandboxControl(url)

    yield url, start
    stop(procs, timeout_s=10)


@pytest.mark.parametrize("outage", ["connection_refused", "http_5xx"])
def test_provider_outage_shorter_than_the_budget_dead_letters_nothing(
        outage, kirim, workers, sandbox, late_sandbox):
    started = time.monotonic()
    url, start_late = late_sandbox
    target = url if outage == "connection_refused" else sandbox.url
    if outage == "http_5xx":
        sandbox.configure(rate_5xx=1.0)
    for _ in range(2):
        workers.start(concurrency=8, extra_env={**OUTAGE_RETRY_ENV, "KIRIM_NUSASMS_URL": target})
    texts = {f"62816{i:07d}": f"outage {i}" for i in range(200)}
    results = kirim.send_many([{"channel": "sms", "to": to, "text": t} for to, t in texts.items()])
    by_id = {r.id: (r.to or "", texts[r.to or ""]) for r in results}
    wait_for(lambda: all(int(r.attempts) >= 2 for r in map(kirim.status, list(by_id)[:20])),
             30, "retries during the outage")
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
    if outage == "connection_refused":
        provider = start_late()
    else:
        sandbox.configure(rate_5xx=0.0)
        provider = sandbox
    wait_states(kirim, list(by_id), {State.SENT}, timeout_s=60)
    out = check_run(kirim, provider, by_id, frozenset({State.SENT}), started)
    most = max(kirim.status(mid).attempts for mid in by_id)
    print(out.line(f"provider outage ({outage}) of {OUTAGE_S:.0f} s; most attempts {most}"))
    assert out.states == Counter({State.SENT: len(by_id)}) and out.duplicates == 0
