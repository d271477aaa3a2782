"""The guard and the rate limit under real concurrency, against a sandbox enforcing the same
limits: zero -77, zero -78, none lost, and the account's rate respected."""

from __future__ import annotations

from collections import Counter

import pytest

from producer.client import KirimClient
from producer.core.contract import State
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_states
from tests.support.workers import Workers

pytestmark = pytest.mark.timeout(180)


def test_campaign_breaking_both_limits_earns_no_77_or_78(kirim_env, redis_url, sandbox, tmp_path):
    env = {**kirim_env, "KIRIM_GUARD_PER_RECIPIENT_LIMIT": "20"}
    sandbox.configure(same_text_limit=10, per_number_limit=20, latency_ms=10)
    pool = Workers(env, tmp_path)
    try:
        for i in range(8):  # 8 processes × 8 threads on one campaign
            pool.start(concurrency=8, name=f"w{i}-")
        with KirimClient(settings_from_env(env), source="campaign") as kirim:
            recipients = [f"6281277700{i:03d}" for i in range(6)]
            batch = [{"channel": "sms", "to": to, "text": "Promo akhir tahun!"}
                     for to in recipients for _ in range(15)]
            batch += [{"channel": "sms", "to": to, "text": f"Info #{n}"}
                      for to in recipients for n in range(15)]
            results = kirim.send_many(batch)
            ids = [r.id for r in results]
            states = wait_states(kirim, ids, {State.SENT, State.DEFERRED}, timeout_s=90)
    finally:
        pool.stop_all()
    by_status = sandbox.stats()["by_status"]
    assert by_status.get("-77", 0) == 0 and by_status.get("-78", 0) == 0, by_status
    per_number = Counter(m["gsm"] for m in sandbox.messages())
    assert set(per_number.values()) == {20}, "each recipient gets exactly its cap"
    same_text = Counter(gsm for (gsm, text), n in sandbox.counts().items()
                        for _ in range(n) if text == "Promo akhir tahun!")
    assert max(same_text.values()) <= 10
    assert Counter(states) == {State.SENT: 120, State.DEFERRED: 60}


def test_rate_limit_holds_across_processes_and_is_used_fully(kirim_env, sandbox, tmp_path):
    rate, burst = 25, 2
    env = {**kirim_env, "KIRIM_RATE_LIMIT_PER_S": str(rate), "KIRIM_RATE_LIMIT_BURST": str(burst)}
    pool = Workers(env, tmp_path)
    try:
        for i in range(4):
            pool.start(concurrency=8, name=f"r{i}-")
        with KirimClient(settings_from_env(env), source="rate") as kirim:
            results = kirim.send_many([{"channel": "sms", "to": f"62812888{i:05d}",
                                        "text": f"rate {i}"} for i in range(200)])
            wait_states(kirim, [r.id for r in results], {State.SENT}, timeout_s=60)
    finally:
        pool.stop_all()
    arrivals = sorted(r["t"] for r in sandbox.requests() if r["path"].endswith("/plain"))
    assert len(arrivals) == 200
    # GCRA admits at most floor(d·rate) + burst in any span of d seconds.
    busiest = max(sum(1 for t in arrivals[i:] if t - start <= 1.0)
                  for i, start in enumerate(arrivals))
    assert busiest <= rate + burst, f"{busiest} requests in one second (limit {rate}+{burst})"
    sustained = (len(arrivals) - burst) / (arrivals[-1] - arrivals[0])
    assert sustained >= 0.95 * rate, f"sustained {sustained:.1f}/s of {rate}/s"
