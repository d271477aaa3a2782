"""Logs, metrics and liveness of a real worker process; backlog gauges on a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from producer.client import KirimClient
from producer.core.backlog import BacklogCollector
from producer.core.keys import Keys
from producer.core.routing import Queues
from tests.support.processes import free_port
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import Workers

SANDBOX_OK = "6281234567"  # + 3 digits: an ordinary accepted number


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def backlog(redis: Redis) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the backlog collector reports right now."""
    collector = BacklogCollector(redis, Keys(), Queues.ALL)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in collector.collect() for s in fam.samples}


def test_backlog_depth_and_oldest_age_without_workers(kirim: KirimClient,
                                                      redis_url: str) -> None:
    raw = Redis.from_url(redis_url)
    assert backlog(raw)[("kirim_queue_depth", (("queue", "sms"),))] == 0
    for i in range(3):
        kirim.send_sms(f"{SANDBOX_OK}{i:03d}", f"halo {i}")
    time.sleep(1.2)
    kirim.send_otp(f"{SANDBOX_OK}900", "Kode 1234")
    got = backlog(raw)
    assert got[("kirim_queue_depth", (("queue", "sms"),))] == 3
    assert got[("kirim_queue_depth", (("queue", "otp"),))] == 1
    assert got[("kirim_queue_depth", (("queue", "wa"),))] == 0
    assert 1.2 <= got[("kirim_queue_oldest_age_seconds", (("queue", "sms"),))] < 10
    assert got[("kirim_queue_oldest_age_seconds", (("queue", "otp"),))] < 1.0
    assert got[("kirim_queue_oldest_age_seconds", (("queue", "wa"),))] == 0
    assert got[("kirim_backlog_redis_up", ())] == 1
    envelope = json.loads(raw.lindex("sms", -1) or b"{}")
    assert isinstance(envelope["headers"]["enqueued_at"], float)


def test_backlog_says_redis_down() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert backlog(dead)[("kirim_backlog_redis_up", ())] == 0


def test_api_metrics_carry_the_backlog_gauges(api: Any) -> None:
    reply = api.client.post("/v1/messages", json={"channel": "wa", "to": f"{SANDBOX_OK}321",
                                                  "text": "Tagihan lunas"})
    assert reply.status_code == 202, reply.text
    got = samples(api.anon.get("/metrics").text)
    assert got[("kirim_queue_depth", (("queue", "wa"),))] == 1
    assert got[("kirim_queue_oldest_age_seconds", (("queue", "wa"),))] >= 0
    assert got[("kirim_backlog_redis_up", ())] == 1


def test_worker_metrics_logs_and_heartbeat(workers: Workers, kirim: KirimClient,
                                           tmp_path: Path) -> None:
    port, beat_file = free_port(), tmp_path / "alive"
    workers.start(extra_env={"KIRIM_METRICS_PORT": str(port),
                             "KIRIM_HEARTBEAT_FILE": str(beat_file)})
    ids = [kirim.send_sms(f"{SANDBOX_OK}{i:03d}", f"tagihan {i}") for i in range(4)]
    ids.append(kirim.send_sms("6281190013000", "dead by -13"))
    wait_states(kirim, ids, {"sent", "dead"})

    def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)

    wait_for(lambda: scraped().get(("kirim_messages_total",
                                    (("channel", "sms"), ("outcome", "sent")))) == 4,
             10, "4 sent in kirim_messages_total")
    got = scraped()
    assert got[("kirim_dead_letters_total", (("channel", "sms"),))] == 1
    assert got[("kirim_provider_codes_total", (("channel", "sms"), ("code", "-13"),
                                                ("name", "INVALID_DESTINATION_ADDRESS")))] == 1
    assert got[("kirim_provider_latency_seconds_count", (("channel", "sms"),))] == 5
    assert got[("kirim_queue_depth", (("queue", "sms"),))] == 0
    assert got[("kirim_messages_waiting", (("set", "dead_letters"),))] == 1

    probe = [sys.executable, "-m", "worker.health", str(beat_file), "--max-age-s", "30"]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    stale = subprocess.run([*probe[:-1], "0.0001"], capture_output=True, timeout=30)
    assert stale.returncode == 1 and b"last heartbeat" in stale.stderr

    lines = [json.loads(line) for line in workers.logs().splitlines()
             if line.startswith("{")]
    replies = [e for e in lines if e.get("event") == "provider_reply"]
    assert len(replies) == 5, workers.logs()
    for entry in replies:
        assert entry["message_id"] in ids and entry["channel"] == "sms"
        assert entry["to"].startswith("628") and "***" in entry["to"], entry
    assert any(e.get("logger", "").startswith("celery") for e in lines), "celery lines as JSON"


def test_api_metrics_negotiate_openmetrics_and_time_requests(api: Any) -> None:
    reply = api.client.post("/v1/messages", json={"channel": "sms", "to": f"{SANDBOX_OK}322",
                                                  "text": "Tagihan"})
    assert reply.status_code == 202, reply.text
    assert api.anon.get("/v1/messages/nope").status_code == 401
    plain = api.anon.get("/metrics")
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/plain")
    got = samples(plain.text)
    post = ("kirim_api_request_duration_seconds_count",
            (("method", "POST"), ("route", "/v1/messages"), ("status", "2xx")))
    assert got[post] >= 1
    assert got[("kirim_api_request_duration_seconds_count",
                (("method", "GET"), ("route", "/v1/messages/{message_id}"),
                 ("status", "4xx")))] >= 1
    assert got[("kirim_api_requests_total", (("code", "ok"), ("route", "/v1/messages"),
                                             ("status", "202")))] >= 1
    # One counter per request: the histogram's _count, not a second requests counter.
    assert not [k for k in got if k[0].startswith("kirim_api_") and k[0].endswith("_total")
                and k[0] != "kirim_api_requests_total"]

    om = api.anon.get("/metrics", headers={"Accept": "application/openmetrics-text; "
                                           "version=1.0.0; charset=utf-8"})
    assert om.headers["content-type"].startswith("application/openmetrics-text"), om.headers
    assert om.text.rstrip().endswith("# EOF")
    assert "kirim_api_request_duration_seconds_bucket" in om.text
    assert "kirim_queue_depth" in om.text  # the backlog collector, collected off the loop
    gz = api.anon.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip" and "kirim_queue_depth" in gz.text
