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
from producer.core.contract import SendRequest
from producer.core.envelope import build_send_task
from producer.core.jobs import build_job
from producer.core.records import Stored
from producer.core.routing import Tasks
from tests.support.queues import queued_ids, queued_tasks

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
    ours = decoded(build_send_task(job, job.model_dump_json(), "tok-1").encode())
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
    batch = [{"channel": "sms", "to": f"6281234567{i:03d}", "text": "x"} for i in range(3)]
    kirim.redis.script_flush()
    first = kirim.send_many(batch)
    kirim.redis.script_flush()  # after the process loaded it: the NOSCRIPT path
    second = kirim.send_many([{**item, "text": "z"} for item in batch])
    kirim.redis.script_flush()
    single = kirim.submit({"channel": "wa", "to": "6281234567999", "text": "y"})
    assert [r.state for r in first + second] == ["queued"] * 6 and single.state == "queued"
    # Every message has its record and a task (a batch task pushed before a NOSCRIPT'd
    # record is pushed again after it; the claim skips the copy that finds it claimed).
    assert set(queued_ids(kirim.redis, "sms")) == {r.id for r in first + second}
    assert all(kirim.store.get(r.id) is not None for r in first + second)
    assert queued_ids(kirim.redis, "wa") == [single.id]


def test_a_resent_accept_answers_what_it_did_not_duplicate(kirim: KirimClient) -> None:
    """redis-py resends a pipeline whose reply was lost; the same call must not turn into a
    'duplicate' (nor a second message)."""
    item = kirim.enqueuer.prepare({"channel": "sms", "to": "081234567890", "text": "x"}, "t")
    first, again = kirim.store.accept_many([item]), kirim.store.accept_many([item])
    assert isinstance(first[0], Stored) and isinstance(again[0], Stored)
    assert (again[0].id, again[0].duplicate, again[0].state) == (first[0].id, False, "queued")
    assert kirim.redis.llen("sms") == 1


def test_a_refused_script_fails_its_message_only(kirim: KirimClient) -> None:
    kirim.redis.config_set("maxmemory", "1")  # noeviction: Redis refuses every write (OOM)
    try:
        results = kirim.send_many([{"channel": "sms", "to": f"6281234567{i:03d}", "text": "x"}
                                   for i in range(3)] + [{"channel": "sms", "to": "1"}])
    finally:
        kirim.redis.config_set("maxmemory", "0")
    assert [type(r).__name__ for r in results] == ["StoreUnavailable"] * 3 + ["InvalidMessage"]
    assert "maxmemory" in str(results[0])
    assert kirim.redis.keys("kirim:msg:*") == [] and kirim.redis.llen("sms") == 0


def test_duplicates_of_a_batch_come_back_with_their_states(kirim: KirimClient) -> None:
    items = [{"channel": "sms", "to": f"6281234567{i:03d}", "text": "x",
              "idempotency_key": f"k{i}"} for i in range(5)]
    first = kirim.send_many(items)
    again = kirim.send_many(items)
    assert [a.id for a in again] == [f.id for f in first]
    assert all(a.duplicate and a.state == "queued" for a in again)
    # One batch task for the five; the second batch's task carries ids never created,
    # which a worker's claim skips ("missing").
    assert queued_tasks(kirim.redis, "sms")[0] == (Tasks.SEND_BATCH, [f.id for f in first])
