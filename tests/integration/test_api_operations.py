"""Operations over the ingest API: dead letters, credits, health and metrics."""

from __future__ import annotations

import time

import pytest

from producer.core.contract import State
from tests.support.waiting import wait_states

pytestmark = pytest.mark.timeout(60)


def test_dead_letters_are_listed_and_replayed(api, kirim, workers):
    workers.start()
    dead = api.client.post("/v1/messages", json={
        "channel": "sms", "to": "6281190013000", "text": "permanent -13"}).json()["id"]
    fine = api.client.post("/v1/messages", json={
        "channel": "sms", "to": "6281190088000", "text": "permanent -88"}).json()["id"]
    wait_states(kirim, [dead, fine], {State.DEAD})
    listing = api.client.get("/v1/dead-letters", params={"code": "-13"}).json()
    assert listing["count"] == 1
    letter = listing["items"][0]
    assert letter["message_id"] == dead and letter["code_name"] == "INVALID_DESTINATION_ADDRESS"
    assert letter["to"] == "6281190013000" and letter["attempts"] == 1
    assert api.client.get("/v1/dead-letters", params={"limit": 1}).json()["count"] == 1
    assert api.client.get("/v1/dead-letters").json()["count"] == 2
    replay = api.client.post(f"/v1/dead-letters/{letter['entry_id']}/replay")
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"message_id": dead, "entry_id": letter["entry_id"],
                             "state": "queued"}
    wait_states(kirim, [dead], {State.DEAD})  # the same number fails the same way again
    timeline = api.client.get(f"/v1/messages/{dead}").json()["timeline"]
    assert any("replayed from dead letter" in (e["note"] or "") for e in timeline)
    gone = api.client.post(f"/v1/dead-letters/{letter['entry_id']}/replay")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert api.client.get("/v1/dead-letters", params={"limit": 0}).status_code == 422


def test_credits_come_from_the_last_reading(api, kirim):
    empty = api.client.get("/v1/credits")
    assert empty.status_code == 503
    assert empty.json()["error"]["code"] == "no_credits_reading"
    assert "no CREDITS reading yet" in empty.json()["error"]["message"]
    now = time.time()
    kirim.redis.hset(kirim.keys.credits, mapping={
        "value": "125000", "expires": "2027-01-31", "read_at": f"{now:.3f}"})
    body = api.client.get("/v1/credits").json()
    assert body["value"] == 125000 and body["expires"] == "2027-01-31"
    assert 0 <= body["age_s"] < 30


def test_healthz_and_metrics(api):
    assert api.anon.get("/healthz").json() == {"status": "ok"}
    api.client.post("/v1/messages", json={"channel": "sms", "to": "1", "text": "x"})
    api.client.post("/v1/messages", json={"channel": "sms", "to": "6281234567890", "text": "x"})
    metrics = api.anon.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert ('kirim_api_requests_total{code="invalid_message",route="/v1/messages",status="422"}'
            in text)
    assert 'kirim_api_requests_total{code="ok",route="/v1/messages",status="202"}' in text
    assert "process_cpu_seconds_total" in text or "python_info" in text


def test_openapi_documents_the_routes(api):
    spec = api.anon.get("/openapi.json").json()
    post = spec["paths"]["/v1/messages"]["post"]
    assert post["summary"] == "Enqueue one message"
    assert {"202", "401", "409", "422", "429", "503"} <= set(post["responses"])
    for path in ("/v1/messages/batch", "/v1/messages/{message_id}", "/v1/credits",
                 "/v1/dead-letters", "/v1/dead-letters/{letter_id}/replay",
                 "/api/v3/sendsms/plain", "/api/v3/sendwa/plain", "/api/command"):
        assert path in spec["paths"], path
    assert api.anon.get("/docs").status_code == 200
