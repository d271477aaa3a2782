"""NusaSMS pushes: the DR and inbound receivers of the API (`api`, a real uvicorn process),
the sandbox pushing to them over HTTP, a real worker on the `reports` queue applying what they
publish, and the inbound webhook forward to a local `receiver`."""

from __future__ import annotations

import json

import httpx
import pytest

from producer.core.contract import State
from tests.support.waiting import wait_for, wait_states
from worker.state_writer import Attempt, StateWriter

pytestmark = pytest.mark.timeout(90)

TOKEN = "push-secret-7f3a-Qm9vYmFyLXRva2VuLTMyYw"  # KIRIM_CALLBACK_TOKEN: 32+ random chars


@pytest.fixture
def kirim_env(kirim_env: dict[str, str]) -> dict[str, str]:
    """The integration env with a callback token; polling is slow so only pushes act."""
    return {**kirim_env, "KIRIM_CALLBACK_TOKEN": TOKEN, "KIRIM_DR_FIRST_POLL_S": "600"}


@pytest.fixture
def api(api_factory, api_env):  # type: ignore[no-untyped-def]
    """This module's API process: the session's has no callback token."""
    return api_factory(api_env)


def test_pushed_reports_are_applied_by_the_worker(kirim, workers, sandbox, api):
    workers.start(queues="otp,sms,wa,maintenance,reports")  # no beat: nothing polls
    sandbox.configure(dr_delay_s=0.2, dr_callback_url=f"{api.url}/callbacks/{TOKEN}/dr")
    delivered = kirim.send_sms("6281191100000", "pushed D")
    failed = kirim.send_sms("6281191300000", "pushed F")
    wait_states(kirim, [delivered], {State.DELIVERED})
    wait_states(kirim, [failed], {State.FAILED})
    record = kirim.status(delivered)
    assert record.timeline[-1]["note"] == "delivery report D (push)"
    assert record.get("dr_err_code") == "0" and record.get("dr_sent_date")
    assert all(p["status_code"] == 200 for p in sandbox.pushes() if p["kind"] == "dr")


def _reports_queued(kirim) -> int:
    return int(kirim.redis.llen("reports"))


def test_wrong_or_missing_token_is_404_and_changes_nothing(kirim, workers, sandbox, api,
                                                           api_factory, api_env):
    workers.start()  # sends, but nobody consumes `reports`
    sandbox.configure(dr_delay_s=0.1, dr_callback_url=f"{api.url}/callbacks/wrong/dr")
    mid = kirim.send_sms("6281191100000", "wrong token")
    wait_states(kirim, [mid], {State.SENT})
    wait_for(lambda: any(p["kind"] == "dr" for p in sandbox.pushes()), 10, "the sandbox's push")
    assert [p["status_code"] for p in sandbox.pushes()] == [404]
    pid = kirim.status(mid).get("provider_id")
    params = {"ref_no": pid, "status": "D"}
    assert api.anon.get("/callbacks/wrong/dr", params=params).status_code == 404
    assert api.anon.get(f"/callbacks/{TOKEN}x/dr", params=params).status_code == 404
    no_token = api_factory({**api_env, "KIRIM_CALLBACK_TOKEN": ""})
    assert no_token.anon.get("/callbacks//dr", params=params).status_code == 404
    assert no_token.anon.get(f"/callbacks/{TOKEN}/dr", params=params).status_code == 404
    assert no_token.anon.post(f"/callbacks/{TOKEN}/inbound",
                              data={"originator": "1", "msg": "x"}).status_code == 404
    assert _reports_queued(kirim) == 0
    assert kirim.status(mid).state == State.SENT


def test_report_fields_from_json_body_and_validation(kirim, api):
    url = f"/callbacks/{TOKEN}/dr"
    ok = api.anon.request("GET", url, content=json.dumps(
        {"ref_no": "123456789012345678", "status": "D", "sent_date": "2017-09-25 17:49:05.0",
         "err_code": "0"}), headers={"content-type": "application/json"})
    assert ok.status_code == 200 and ok.json()["ref_no"] == "123456789012345678"
    assert api.anon.get(url, params={"ref_no": "1"}).status_code == 422
    assert api.anon.get(url, params={"status": "D"}).status_code == 422
    assert api.anon.get(url, params={"ref_no": "a b", "status": "D"}).status_code == 422
    assert api.anon.request("GET", url, content=b"{nope").status_code == 422
    assert _reports_queued(kirim) == 1
    body = json.loads(kirim.redis.lindex("reports", 0))
    assert body["headers"]["task"] == "kirim.apply_dr"


def test_report_before_the_send_is_recorded_is_applied_later(kirim, workers, api):
    workers.start(queues="reports")  # no sending lane: the message stays queued
    mid = kirim.send_sms("6281234567890", "early report")
    pid = "987654321098765432"
    pushed = api.anon.get(f"/callbacks/{TOKEN}/dr", params={"ref_no": pid, "status": "D"})
    assert pushed.status_code == 200
    wait_for(lambda: _reports_queued(kirim) == 0, 10, "the worker to take the report")
    record = kirim.status(mid)
    assert kirim.store.claim(mid, 60, record.get("dispatch") or "", "sms", "c1")[0] == "claimed"
    assert StateWriter(kirim.store, kirim.requeuer, 600.0).sent(
        record.job, Attempt(0, "OK", "", provider_id=pid))
    wait_states(kirim, [mid], {State.DELIVERED}, timeout_s=20)
    assert kirim.status(mid).timeline[-1]["note"] == "delivery report D (push)"


def test_inbound_sms_reaches_the_stream_the_task_and_the_webhook(kirim, workers, sandbox,
                                                                  api_factory, api_env, receiver):
    receiver.fail_first, receiver.fail_status = 1, 503  # the forward must retry
    webhook = receiver.url
    server = api_factory({**api_env, "KIRIM_INBOUND_TASK": "shop.inbound_sms",
                          "KIRIM_INBOUND_WEBHOOK_URL": webhook})
    workers.start(queues="reports", extra_env={"KIRIM_INBOUND_WEBHOOK_URL": webhook})
    sandbox.configure(inbox_url=f"{server.url}/callbacks/{TOKEN}/inbound")
    pushed = sandbox.inbound("6281234567890", "STOP promo")
    assert pushed["status_code"] == 200
    entries = kirim.redis.xrange(f"{kirim.keys.prefix}:inbound")
    assert len(entries) == 1
    event = {k.decode(): v.decode() for k, v in entries[0][1].items()}
    assert event["originator"] == "6281234567890" and event["msg"] == "STOP promo"
    assert event["id"] == pushed["id"] and event["gateway_number"] == "6281100000000"
    task = json.loads(kirim.redis.lindex("celery", 0))  # Celery's default queue
    assert task["headers"]["task"] == "shop.inbound_sms"
    wait_for(lambda: len(receiver.json_ok()) == 1, 20, "the webhook forward (after one 503)")
    assert receiver.json_ok()[0]["msg"] == "STOP promo" and len(receiver.hits) == 2
    again = httpx.post(f"{server.url}/callbacks/{TOKEN}/inbound", data={
        k: event[k] for k in ("id", "gateway_number", "originator", "msg", "receive_date")})
    assert again.json() == {"ok": True, "duplicate": True}
    assert kirim.redis.xlen(f"{kirim.keys.prefix}:inbound") == 1
