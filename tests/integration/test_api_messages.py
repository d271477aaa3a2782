"""The ingest API over real HTTP: uvicorn process → Redis → real worker → sandbox."""

from __future__ import annotations

import dataclasses
import time

import pytest

from producer.core.contract import State
from tests.support.processes import RedisServer
from tests.support.waiting import wait_states

pytestmark = pytest.mark.timeout(60)


def test_accepted_message_reaches_the_sandbox_and_reads_back(api, kirim, workers, sandbox):
    workers.start()
    reply = api.client.post("/v1/messages", json={
        "channel": "sms", "to": "0812-3456-7890", "text": "Halo dari API",
        "metadata": {"order": 42}})
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["to"] == "6281234567890" and body["state"] == "queued"
    assert body["encoding"] == "gsm7" and body["parts"] == 1 and body["duplicate"] is False
    wait_states(kirim, [body["id"]], {State.SENT})
    assert sandbox.counts()[("6281234567890", "Halo dari API")] == 1
    status = api.client.get(f"/v1/messages/{body['id']}").json()
    assert status["state"] == "sent" and status["source"] == api.key_name
    assert len(status["provider_id"]) == 18 and status["last_code"] == "0"
    assert status["metadata"] == {"order": 42}
    assert [e["state"] for e in status["timeline"]] == ["accepted", "queued", "sending", "sent"]


def test_batch_accepts_valid_items_and_reports_each_refusal(api, kirim):
    reply = api.client.post("/v1/messages/batch", json={"messages": [
        {"channel": "sms", "to": "6281234567001", "text": "one"},
        {"channel": "sms", "to": "12", "text": "bad number"},
        {"channel": "wa", "to": "6281234567002", "text": ""},
        {"channel": "fax", "to": "6281234567003", "text": "bad channel"},
        {"channel": "otp", "to": "6281234567004", "text": "Kode 123456"},
    ]})
    assert reply.status_code == 207, reply.text
    body = reply.json()
    assert (body["accepted"], body["refused"]) == (2, 3)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["ok"] for r in results] == [True, False, False, False, True]
    assert [r["error"]["field"] for r in results if not r["ok"]] == ["to", "text", "channel"]
    assert all(r["error"]["code"] == "invalid_message" for r in results if not r["ok"])
    ids = [r["id"] for r in results if r["ok"]]
    assert kirim.store.states(ids) == ["queued", "queued"]
    all_ok = api.client.post("/v1/messages/batch", json={"messages": [
        {"channel": "sms", "to": "6281234567005", "text": "fine"}]})
    assert all_ok.status_code == 200 and all_ok.json()["accepted"] == 1


def test_batch_larger_than_the_maximum_is_refused(api_factory, api_env):
    server = api_factory({**api_env, "KIRIM_API_BATCH_MAX": "2"})
    item = {"channel": "sms", "to": "6281234567001", "text": "x"}
    reply = server.client.post("/v1/messages/batch", json={"messages": [item] * 3})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["field"] == "messages" and "KIRIM_API_BATCH_MAX" in error["message"]


def test_idempotency_header_returns_the_same_message_or_409(api):
    msg = {"channel": "sms", "to": "6281234567890", "text": "once"}
    headers = {"Idempotency-Key": "order-7"}
    first = api.client.post("/v1/messages", json=msg, headers=headers)
    again = api.client.post("/v1/messages", json=msg, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    other = api.client.post("/v1/messages", json={**msg, "text": "different"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"] == {
        "code": "idempotency_conflict", "field": "idempotency_key",
        "message": other.json()["error"]["message"]}
    assert first.json()["id"] in other.json()["error"]["message"]
    # Keys are namespaced per API key: another caller's same key is a new message.
    mine = api.anon.post("/v1/messages", json=msg,
                         headers={**headers, "X-API-Key": api.other_key})
    assert mine.status_code == 202 and mine.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": "Basic x"},
])
def test_missing_or_wrong_key_is_401(api, headers):
    reply = api.anon.post("/v1/messages", headers=headers,
                          json={"channel": "sms", "to": "6281234567890", "text": "x"})
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "unauthorized"
    assert api.anon.get("/v1/messages/abc", headers=headers).status_code == 401
    # Auth comes before body parsing: garbage from a stranger is still 401, not 422.
    garbage = api.anon.post("/v1/messages", content=b"{not json", headers={
        **headers, "Content-Type": "application/json"})
    assert garbage.status_code == 401


def test_no_keys_configured_refuses_everything(api_factory, api_env):
    server = api_factory({**api_env, "KIRIM_API_KEYS": ""})
    reply = server.client.get("/v1/credits")
    assert reply.status_code == 401 and "KIRIM_API_KEYS" in reply.json()["error"]["message"]


def test_unknown_message_and_route_are_404(api):
    reply = api.client.get("/v1/messages/0000000000000000000000")
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "not_found"
    assert api.client.get("/v1/nothing").json()["error"]["code"] == "not_found"


def test_body_over_the_limit_is_413_before_parsing(api_factory, api_env):
    server = api_factory({**api_env, "KIRIM_API_MAX_BODY_BYTES": "2048"})
    big = {"channel": "sms", "to": "6281234567890", "text": "x" * 4000}
    reply = server.client.post("/v1/messages", json=big)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: the streamed bytes are counted
        for _ in range(10):
            yield b"x" * 1000

    streamed = server.client.post("/v1/messages", content=chunks(),
                                  headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    small = server.client.post("/v1/messages", json={**big, "text": "ok"})
    assert small.status_code == 202


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"channel": "sms", "to": "0812", "text": "x"}, "to", "phone"),
    ({"channel": "sms", "to": "6281234567890", "text": "   "}, "text", "empty"),
    ({"channel": "sms", "to": "6281234567890", "text": "€" * 2000}, "text", "KIRIM_SMS_MAX_PARTS"),
    ({"channel": "sms", "to": "6281234567890"}, "text", "required"),
    ({"channel": "pigeon", "to": "6281234567890", "text": "x"}, "channel", "sms"),
    ({"channel": "sms", "to": 6281234567890, "text": "x"}, "to", "string"),
    ({"channel": "sms", "to": "6281234567890", "text": "x", "send_at": "soon"}, "send_at",
     "number"),
    ({"channel": "sms", "to": "6281234567890", "text": "x", "colour": "red"}, "colour",
     "not permitted"),
    ({"channel": "otp", "to": "6281234567890", "text": "x", "otp_validity_s": 1},
     "otp_validity_s", "10"),
    ([1, 2], "body", "object"),
])
def test_invalid_input_is_422_naming_the_field(api, body, field, words):
    reply = api.client.post("/v1/messages", json=body)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["field"] == field
    assert field in error["message"] or field == "body"
    assert words.lower() in error["message"].lower(), error["message"]


def test_malformed_json_is_422(api):
    reply = api.client.post("/v1/messages", content=b'{"channel": "sms",',
                            headers={"Content-Type": "application/json"})
    assert reply.status_code == 422
    assert reply.json()["error"]["code"] == "invalid_json"
    assert reply.json()["error"]["field"] == "body"


def test_otp_over_the_guard_limit_is_429_with_retry_after(api_factory, api_env, kirim,
                                                          workers, sandbox):
    server = api_factory({**api_env, "KIRIM_GUARD_PER_RECIPIENT_LIMIT": "1"})
    workers.start()
    otp = {"channel": "otp", "to": "6281234567890", "text": "Kode OTP 111111"}
    first = server.client.post("/v1/messages", json=otp)
    assert first.status_code == 202
    wait_states(kirim, [first.json()["id"]], {State.SENT})
    second = server.client.post("/v1/messages", json={**otp, "text": "Kode OTP 222222"})
    assert second.status_code == 429, second.text
    assert second.json()["error"]["code"] == "recipient_limited"
    assert second.json()["error"]["field"] == "to"
    assert 1 <= int(second.headers["Retry-After"]) <= 86400
    assert sandbox.counts()[("6281234567890", "Kode OTP 111111")] == 1


def test_redis_down_is_503_then_accepted_again(api_factory, api_env, tmp_path):
    own = RedisServer(tmp_path).start()
    try:
        server = api_factory({**api_env, "KIRIM_REDIS_URL": own.url})
        msg = {"channel": "sms", "to": "6281234567890", "text": "x"}
        assert server.anon.get("/healthz").status_code == 200
        own.stop()
        down = server.client.post("/v1/messages", json=msg)
        assert down.status_code == 503 and down.json()["error"]["code"] == "store_unavailable"
        assert server.anon.get("/healthz").status_code == 503
        assert server.client.get("/v1/messages/abc").status_code == 503
        own.start()
        deadline = time.monotonic() + 15
        while (reply := server.client.post("/v1/messages", json=msg)).status_code == 503:
            assert time.monotonic() < deadline, reply.text
            time.sleep(0.2)
        assert reply.status_code == 202, reply.text
    finally:
        own.stop()



def test_body_that_is_not_utf8_is_a_422_naming_the_body(api):
    reply = api.client.post("/v1/messages", content=b'{"text": "\xff\xfe"}',
                            headers={"Content-Type": "application/json"})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "body"


def _raw(fragment: str) -> bytes:
    """A message body with `fragment` (raw JSON text) last: a repeated key overrides."""
    return ('{"channel":"sms","to":"6281234567890","text":"x",' + fragment + "}").encode()


@pytest.mark.parametrize(("body", "field", "words"), [
    (_raw('"metadata":{"a":NaN}'), "metadata.a", "finite number, not nan"),
    (_raw('"metadata":{"ok":1,"a":Infinity}'), "metadata.a", "finite number, not inf"),
    (_raw('"metadata":{"a":-Infinity}'), "metadata.a", "finite number, not -inf"),
    (_raw('"metadata":{"a":1e400}'), "metadata.a", "finite"),  # json.loads: inf
    (_raw('"send_at":NaN'), "send_at", "finite"),
    (_raw('"send_at":-Infinity'), "send_at", "finite"),
    (_raw('"text":"x\\ud800"'), "text", "lone surrogate (\\ud800 at position 1)"),
    (_raw('"to":"\\udfff6281234567890"'), "to", "surrogate"),
    (_raw('"to":null,"group":"VIP\\ud800"'), "group", "surrogate"),
    (_raw('"idempotency_key":"k\\ud800"'), "idempotency_key", "unicode string"),
    (_raw('"callback_url":"https://x.test/\\ud800"'), "callback_url", "unicode string"),
    (_raw('"metadata":{"a":"\\udc00"}'), "metadata.a", "surrogate"),
    (_raw('"metadata":{"k\\ud800":1}'), "metadata.k\ufffd\ufffd\ufffd.[key]", "surrogate"),
    (_raw('"metadata":{"body":null}'), "metadata.body", "a string, a number or a boolean"),
    # A surrogate as raw (CESU-8) bytes: json.loads decodes bytes with "surrogatepass".
    (_raw('"text":"x"').replace(b'x"}', b'x\xed\xa0\x80"}'), "text", "surrogate"),
])
def test_poison_is_422_naming_the_field_and_nothing_is_stored(api, kirim, body, field, words):
    reply = api.client.post("/v1/messages", content=body,
                            headers={"Content-Type": "application/json"})
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_request" and error["field"] == field
    assert error["message"].startswith(f"{field}: ") and words in error["message"], error
    assert not list(kirim.redis.scan_iter(kirim.keys.message("*")))


def test_batch_poison_item_fails_only_itself(api, kirim):
    items = ['{"channel":"sms","to":"6281234567001","text":"one"}',
             '{"channel":"sms","to":"6281234567002","text":"x","metadata":{"a":NaN}}',
             '{"channel":"wa","to":"6281234567003","text":"y\\ud800"}',
             '{"channel":"sms","to":"6281234567004","text":"x","send_at":Infinity}',
             '{"channel":"otp","to":"6281234567005","text":"Kode 123456"}']
    reply = api.client.post("/v1/messages/batch", content=f'{{"messages":[{",".join(items)}]}}',
                            headers={"Content-Type": "application/json"})
    assert reply.status_code == 207, reply.text
    body = reply.json()
    assert (body["accepted"], body["refused"]) == (2, 3)
    results = body["results"]
    assert [r["ok"] for r in results] == [True, False, False, False, True]
    assert [(r["error"]["code"], r["error"]["field"]) for r in results if not r["ok"]] == [
        ("invalid_message", "metadata.a"), ("invalid_message", "text"),
        ("invalid_message", "send_at")]
    for r in (results[0], results[4]):
        status = api.client.get(f"/v1/messages/{r['id']}").json()
        assert status["state"] == "queued" and status["unreadable"] == []


def test_a_record_whose_job_cannot_be_read_answers_what_it_can(api, kirim):
    # As a record written before NaN was refused: pydantic had stored the NaN as null.
    admit = kirim.enqueuer.prepare({"channel": "sms", "to": "6281234567890", "text": "lama",
                                    "metadata": {"order": 42}}, api.key_name)
    assert '"metadata":{"order":42}' in admit.job_json
    old = dataclasses.replace(admit, job_json=admit.job_json.replace('"order":42',
                                                                     '"order":null'))
    [accepted] = kirim.enqueuer.commit([old])
    reply = api.client.get(f"/v1/messages/{accepted.id}")
    assert reply.status_code == 200, reply.text
    status = reply.json()
    assert status["unreadable"] == ["job"] and status["metadata"] == {}
    assert (status["id"], status["state"], status["to"], status["parts"]) == (
        accepted.id, "queued", "6281234567890", 1)
    assert status["source"] == api.key_name and status["attempts"] == 0
    assert [e["state"] for e in status["timeline"]] == ["accepted", "queued"]
    assert status["created_at"] == pytest.approx(admit.job.created_at)
