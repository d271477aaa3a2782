"""Flower against a real worker: workers, kirim.send tasks, masked args (sends and inbound
SMS), auth, dashboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from producer.client import KirimClient
from tests.support.flower import ARTIFACTS, PASSWORD, USER, Flower, headless
from tests.support.receiver import Receiver
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import Workers

NUMBERS = [f"6281234567{i:03d}" for i in range(4)]
TEXT = "Kode OTP Anda 778899"
PUSH_TOKEN = "flower-test-push-token-5e8a1c3f9b7d2e4a"


@pytest.fixture
def kirim_env(kirim_env: dict[str, str]) -> dict[str, str]:
    """Workers with task events on: Flower's task view needs them (off by default)."""
    return {**kirim_env, "KIRIM_WORKER_TASK_EVENTS": "1"}


@pytest.fixture
def flower(kirim_env: dict[str, str], tmp_path: Path) -> Iterator[Flower]:
    """A Flower process with basic auth on the test broker."""
    proc = Flower(kirim_env, tmp_path).start()
    yield proc
    proc.stop()


def online(flower: Flower) -> list[str]:
    """Worker names Flower finds when it asks the workers now (inspect)."""
    return list(flower.get("/api/workers", refresh=1))


def kirim_send_tasks(flower: Flower) -> dict[str, dict[str, object]]:
    """Flower's view of kirim.send tasks, by task id."""
    tasks = flower.get("/api/tasks", taskname="kirim.send")
    return {tid: t for tid, t in tasks.items() if t.get("name") == "kirim.send"}


def test_flower_shows_workers_and_masked_tasks(flower: Flower, workers: Workers,
                                               kirim: KirimClient) -> None:
    workers.start(name="flowerw")
    wait_for(lambda: any(n.startswith("flowerw0@") for n in online(flower)),
             30, "Flower to list the worker", interval_s=0.5)
    ids = [kirim.send_otp(n, TEXT) for n in NUMBERS]
    wait_states(kirim, ids, {"sent"})
    wait_for(lambda: sum(t.get("state") == "SUCCESS" for t in kirim_send_tasks(flower).values())
             >= len(ids), 30, "Flower to see every kirim.send succeed", interval_s=0.5)

    tasks = kirim_send_tasks(flower)
    shown = json.dumps(tasks)
    assert all(mid in shown for mid in ids), "Flower shows kirim's message ids"
    for number in NUMBERS:
        assert number not in shown and number[2:] not in shown, "raw recipient in Flower"
    assert "778899" not in shown and "Kode OTP" not in shown, "message text in Flower"

    assert httpx.get(f"{flower.url}/api/workers", timeout=5).status_code == 401
    assert httpx.get(f"{flower.url}/", timeout=5).status_code == 401
    # Flower 2.x serves /metrics without auth: keep its port private (see docs/operations.md).
    assert httpx.get(f"{flower.url}/metrics", timeout=5).status_code == 200


def test_flower_dashboard_in_headless_chromium(flower: Flower, workers: Workers,
                                               kirim: KirimClient) -> None:
    workers.start(name="chromew")
    wait_for(lambda: any(n.startswith("chromew0@") for n in online(flower)),
             30, "Flower to list the worker", interval_s=0.5)
    wait_states(kirim, [kirim.send_sms(NUMBERS[0], "Halo dari kirim")], {"sent"})
    authed = f"http://{USER}:{PASSWORD}@127.0.0.1:{flower.port}"

    dashboard = headless(f"{authed}/workers", "--dump-dom")
    assert "chromew0@" in dashboard.stdout, dashboard.stderr[-2000:]
    tasks_page = headless(f"{authed}/tasks", "--dump-dom")
    assert "kirim.send" in tasks_page.stdout, tasks_page.stderr[-2000:]

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "flower.png"
    shot.unlink(missing_ok=True)
    headless(f"{authed}/workers", f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 10_000, "no screenshot of Flower"


def test_inbound_sms_shows_in_flower_without_its_text_or_number(
        flower: Flower, workers: Workers, sandbox, api_factory, api_env: dict[str, str],
        receiver: Receiver) -> None:
    """An inbound SMS pushed by the sandbox through the API runs as two tasks on a real
    worker: the KIRIM_INBOUND_TASK publish (here kirim.forward_inbound itself, on Celery's
    default queue) and the webhook forward, whose first POST gets 503 so that it is retried
    (a retry is a new task message, with arguments of its own)."""
    receiver.fail_first, receiver.fail_status = 1, 503
    number, text = "6281298765432", "Kode rahasia 246810 jangan dibagikan"
    env = {**api_env, "KIRIM_CALLBACK_TOKEN": PUSH_TOKEN,
           "KIRIM_INBOUND_TASK": "kirim.forward_inbound",
           "KIRIM_INBOUND_WEBHOOK_URL": receiver.url}
    api = api_factory(env)
    workers.start(name="inboundw", queues="reports,celery",
                  extra_env={"KIRIM_INBOUND_WEBHOOK_URL": receiver.url})
    sandbox.configure(inbox_url=f"{api.url}/callbacks/{PUSH_TOKEN}/inbound")
    assert sandbox.inbound(number, text)["status_code"] == 200
    wait_for(lambda: len(receiver.json_ok()) == 2, 30, "both forwards (one after a 503)")

    def forwards() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = flower.get("/api/tasks",
                                                      taskname="kirim.forward_inbound")
        return found

    wait_for(lambda: [t.get("state") for t in forwards().values()] == ["SUCCESS"] * 2, 30,
             "Flower to see both forwards succeed", interval_s=0.5)
    tasks = forwards()
    assert sorted(int(t.get("retries") or 0) for t in tasks.values()) == [0, 1]
    shown = json.dumps(flower.get("/api/tasks")) + "".join(
        flower.http.get(f"/task/{tid}").text + json.dumps(flower.get(f"/api/task/info/{tid}"))
        for tid in tasks)
    assert "628129****432" in shown, "Flower shows the masked sender"
    for secret in (number, number[2:], number[-10:], text, "246810"):
        assert secret not in shown, f"{secret!r} in Flower"
    assert receiver.json_ok()[0]["msg"] == text  # the forward itself is whole


DEAD_NUMBER = "6281190013000"  # the sandbox answers -13: dead at once
TWO_TRANSIENT = "6281195200000"  # two -26 answers, then accepted: two requeues for retry


def test_dead_and_retried_sends_show_in_flowers_failed_and_retried_filters(
        flower: Flower, workers: Workers, kirim: KirimClient) -> None:
    workers.start(name="failw")
    wait_for(lambda: any(n.startswith("failw0@") for n in online(flower)),
             30, "Flower to list the worker", interval_s=0.5)
    dead = kirim.send_sms(DEAD_NUMBER, "to a number that does not exist")
    retried = kirim.send_sms(TWO_TRANSIENT, "two transient errors first")
    wait_states(kirim, [dead], {"dead"})
    wait_states(kirim, [retried], {"sent"})

    def by_state(state: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = flower.get("/api/tasks", taskname="kirim.send",
                                                      state=state)
        return found

    wait_for(lambda: any(dead in str(t.get("args")) for t in by_state("FAILURE").values()),
             30, "Flower to list the dead message's task as failed", interval_s=0.5)
    [failed] = [t for t in by_state("FAILURE").values() if dead in str(t.get("args"))]
    assert "MessageFailed" in str(failed.get("exception")), failed
    assert "dead:" in str(failed["exception"]) and "-13" in str(failed["exception"]), failed
    assert "INVALID_DESTINATION" in str(failed["exception"]), failed
    assert "does not exist" not in json.dumps(failed), "message text in Flower"

    wait_for(lambda: sum(retried in str(t.get("args")) for t in by_state("RETRY").values())
             == 2, 30, "Flower to list the two requeued attempts as retried", interval_s=0.5)
    for task in (t for t in by_state("RETRY").values() if retried in str(t.get("args"))):
        assert "Requeued" in str(task.get("exception")) and "-26" in str(task["exception"])
    assert any(retried in str(t.get("args")) for t in by_state("SUCCESS").values())

    # Acked, not retried by Celery, no traceback in the worker's log.
    assert not kirim.redis.hlen("unacked") and not kirim.redis.llen("sms")
    logs = workers.logs()
    assert "raised expected: MessageFailed" in logs and "Traceback" not in logs, logs[-3000:]

    # The Failed filter of Flower's task page, in a browser.
    authed = f"http://{USER}:{PASSWORD}@127.0.0.1:{flower.port}"
    page = headless(f"{authed}/tasks?state=FAILURE", "--dump-dom")
    assert "MessageFailed" in page.stdout or failed["uuid"] in page.stdout, page.stderr[-2000:]
