"""The hand-built `kirim.send` message is the one kombu would write (envelope.py).

Every worker test also consumes it (all enqueues go through accept.lua); these tests pin
the format itself, so a Celery or kombu upgrade that changes it fails here first.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kombu import Connection, Consumer, Queue

from producer.client import KirimClient
from producer.contract import SendRequest
from producer.envelope import send_message
from producer.jobs import build_job

# Differ per message by design: fresh UUIDs and the publish time.
PER_MESSAGE_HEADERS = {"id", "root_id", "enqueued_at"}
PER_MESSAGE_PROPERTIES = {"correlation_id", "delivery_tag", "reply_to"}


def decoded(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_hand_built_message_matches_the_one_kombu_publishes(kirim: KirimClient) -> None:
    req = SendRequest.model_validate({"channel": "sms", "to": "081234567890",
                                      "text": "Tagihan Rp 50.000 {lunas}", "metadata": {"a": 1}})
    job = build_job(req, kirim.settings)
    kirim.publisher.publish(job, "tok-1")
    by_kombu = decoded(kirim.redis.rpop("sms"))
    ours = decoded(send_message(job, job.model_dump_json(), "tok-1").encode())
    assert kirim.redis.llen("sms") == 0
    assert set(ours) == set(by_kombu)
    assert ours["body"] == by_kombu["body"]
    assert ours["body"][0][0]["to"] == "6281234567890" and ours["body"][1] == {"dispatch": "tok-1"}
    for part in ("content-type", "content-encoding"):
        assert ours[part] == by_kombu[part]
    assert set(ours["headers"]) == set(by_kombu["headers"])
    for name, value in by_kombu["headers"].items():
        if name not in PER_MESSAGE_HEADERS:
            assert ours["headers"][name] == value, name
    assert ours["headers"]["root_id"] == ours["headers"]["id"]
    assert set(ours["properties"]) == set(by_kombu["properties"])
    for name, value in by_kombu["properties"].items():
        if name not in PER_MESSAGE_PROPERTIES:
            assert ours["properties"][name] == value, name
    assert ours["properties"]["correlation_id"] == ours["headers"]["id"]
    assert "50.000" not in json.dumps(ours["headers"]), "argsrepr must not show the text"


def test_accepted_message_is_consumed_and_acked_through_kombu(kirim: KirimClient) -> None:
    accepted = kirim.submit({"channel": "otp", "to": "081234567890", "text": "Kode 123456"})
    got: list[Any] = []
    with Connection(kirim.settings.redis_url) as conn:
        def on_message(body: Any, message: Any) -> None:
            got.append((body, message.headers, message.delivery_info))
            message.ack()

        with Consumer(conn, queues=[Queue("otp", no_declare=True)], callbacks=[on_message],
                      accept=["json"]):
            conn.drain_events(timeout=5)
    [(body, headers, info)] = got
    assert headers["task"] == "kirim.send" and headers["ignore_result"] is True
    assert body[0][0]["id"] == accepted.id and body[0][0]["channel"] == "otp"
    assert body[1] == {"dispatch": kirim.store.get(accepted.id).get("dispatch")}
    assert info["routing_key"] == "otp"
    assert kirim.redis.llen("otp") == 0
    assert kirim.redis.hlen("unacked") == 0, "acked: nothing left for the unacked restorer"


def test_accepting_survives_a_flushed_script_cache(kirim: KirimClient) -> None:
    """After a Redis restart (or SCRIPT FLUSH) accept.lua is loaded again, nothing is lost."""
    kirim.redis.script_flush()
    first = kirim.send_many([{"channel": "sms", "to": f"6281234567{i:03d}", "text": "x"}
                             for i in range(3)])
    kirim.redis.script_flush()
    single = kirim.submit({"channel": "wa", "to": "6281234567999", "text": "y"})
    assert [r.state for r in first] == ["queued"] * 3 and single.state == "queued"
    assert kirim.redis.llen("sms") == 3 and kirim.redis.llen("wa") == 1
