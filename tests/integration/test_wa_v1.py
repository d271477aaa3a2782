"""WhatsApp through NusaSMS API v1.0, end to end: real workers and beat, real Redis, the
sandbox's v1.0 routes over HTTP, the ingest API and the CLI.

A media message reaches `read` with the provider's times in its timeline and a status
callback for each step; a job with a sender is sent from it; bad media is refused at the
door (422, InvalidMessage, exit 65) naming the field; a v1 job from a foreign Celery client
still goes; the inline file leaves Redis once it was sent.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from producer.cli import app
from producer.client import KirimClient
from producer.core.contract import WA_MEDIA_MAX_BYTES, State
from producer.core.deadletters import DeadLetters
from producer.core.errors import InvalidMessage
from tests.support.receiver import states_posted
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import FAST_CREDITS_POLL

pytestmark = pytest.mark.timeout(120)

QUEUES = "otp,sms,wa,maintenance,reports"
SANDBOX_KEY = "demo-api-key"  # sandbox/config.py's api_key
DR_ENV = {
    "KIRIM_DR_POLL_INTERVAL_S": "0.5",
    "KIRIM_DR_FIRST_POLL_S": "0.2",
    "KIRIM_DR_BACKOFF_MAX_S": "0.5",
    "KIRIM_DR_EXPIRY_S": "3600",
}
PNG = base64.b64decode(  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture
def kirim_env(kirim_env: dict[str, str], sandbox: Any) -> dict[str, str]:
    """The integration env with WhatsApp on API v1.0 (the sandbox's key) and fast DR polls."""
    return {**kirim_env, **DR_ENV, "KIRIM_NUSASMS_API_KEY": SANDBOX_KEY,
            "KIRIM_NUSASMS_V1_URL": sandbox.url + "/nusasms_api/1.0"}


def _wa_sent(sandbox: Any, gsm: str | None = None) -> list[dict[str, Any]]:
    """WhatsApp messages the sandbox took through API v1.0 (to `gsm`)."""
    return [dict(m) for m in sandbox.messages(gsm=gsm, channel="wa") if m.get("api") == "v1"]


def _start(workers: Any, beat: bool = True, **env: str) -> None:
    workers.start(queues=QUEUES, extra_env=env or None)
    if beat:
        workers.beat()


def test_a_media_message_from_a_local_file_reaches_read(kirim_env, sandbox, workers, tmp_path,
                                                       receiver):
    sandbox.configure(dr_delay_s=0.3, wa_read_delay_s=0.5)
    _start(workers)
    image = tmp_path / "receipt.png"
    image.write_bytes(PNG)
    with KirimClient(settings_from_env(kirim_env), source="shop") as kirim:
        mid = kirim.send_wa("0812-3456-7001", "Struk belanja Anda", media_path=image,
                            caption="Struk #1001", callback_url=receiver.url)
        wait_states(kirim, [mid], {State.READ}, timeout_s=30)
        record = kirim.status(mid)
    states = [e["state"] for e in record.timeline]
    assert states[-3:] == ["sent", "delivered", "read"], states
    notes = {e["state"]: e.get("note", "") for e in record.timeline}
    assert record.get("dr_delivered_date") and record.get("dr_read_date")
    assert record.get("dr_delivered_date") in notes["delivered"]
    assert record.get("dr_read_date") in notes["read"]
    at = {e["state"]: e["at"] for e in record.timeline}
    assert at["sent"] <= at["delivered"] <= at["read"]
    assert record.get("api") == "v1"
    # What reached the provider: one media message, the file inline, under its caption.
    sent = _wa_sent(sandbox, "6281234567001")
    assert len(sent) == 1
    assert sent[0]["caption"] == "Struk #1001" and sent[0]["file_name"] == "receipt.png"
    assert sent[0]["media_bytes"] == len(PNG)
    # The file left Redis in the step that made the message sent; the rest of the job stays.
    job = json.loads(record.get("job") or "{}")
    assert job["media_base64"] == "" and job["media_erased"] is True
    assert job["file_name"] == "receipt.png" and job["v"] == 2
    assert record.get("media_erased") == "1"
    wait_for(lambda: "read" in states_posted(receiver, mid), 20, "a callback for read")
    assert states_posted(receiver, mid)[-2:] == ["delivered", "read"]


def test_a_v2_job_with_a_sender_and_a_media_url_goes_from_that_sender(kirim, sandbox, workers):
    _start(workers, beat=False)
    mid = kirim.send_wa("6281234567002", "Katalog baru", media_url="https://example.com/k.pdf",
                        sender="6281100000001")
    plain = kirim.send_wa("6281234567003", "Teks saja", sender="6281100000001")
    wait_states(kirim, [mid, plain], {State.SENT})
    assert json.loads(kirim.status(mid).get("job") or "{}")["v"] == 2
    [media] = _wa_sent(sandbox, "6281234567002")
    assert media["media_url"] == "https://example.com/k.pdf"
    assert media["sender"] == "6281100000001"
    assert media["caption"] == "Katalog baru"  # no caption given: the text
    [text] = _wa_sent(sandbox, "6281234567003")
    assert text["sender"] == "6281100000001" and text["media_url"] is None
    assert kirim.status(plain).get("api") == "v1"


def test_a_v1_job_from_a_foreign_celery_client_is_still_sent(kirim, sandbox, workers):
    _start(workers, beat=False)
    job = {"v": 1, "id": "javawa00000001", "channel": "wa", "to": "6281234567004",
           "text": "from another language", "encoding": "gsm7", "parts": 1,
           "text_hash": "abc", "created_at": time.time()}
    v2 = {**job, "v": 2, "id": "javawa00000002", "to": "6281234567005",
          "media_url": "https://example.com/a.jpg", "caption": "a photo"}
    kirim.celery.send_task("kirim.send", args=[job], queue="wa")
    kirim.celery.send_task("kirim.send", args=[v2], queue="wa")
    wait_states(kirim, ["javawa00000001", "javawa00000002"], {State.SENT})
    assert [m["media_url"] for m in _wa_sent(sandbox, "6281234567004")] == [None]
    assert [m["media_url"] for m in _wa_sent(sandbox, "6281234567005")] == [
        "https://example.com/a.jpg"]
    # A v1 job may not carry v2 fields: dead-lettered as a poison payload, never sent.
    bad = {**job, "id": "javawa00000003", "sender": "6281100000001"}
    kirim.celery.send_task("kirim.send", args=[bad], queue="wa")
    letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
    wait_for(lambda: letters.get("javawa00000003") is not None, 15, "a poison dead letter")
    assert "schema version 2" in letters.get("javawa00000003").last_reply


def test_a_media_job_on_a_legacy_worker_dies_saying_what_to_set(kirim_env, sandbox, workers):
    env = {**kirim_env, "KIRIM_WA_API": "v3"}
    with KirimClient(settings_from_env(env), source="test") as kirim:
        _start(workers, beat=False, KIRIM_WA_API="v3")
        mid = kirim.send_wa("6281234567006", "Foto", media_url="https://example.com/a.jpg")
        plain = kirim.send_wa("6281234567007", "Teks lewat v3")
        wait_states(kirim, [mid], {State.DEAD})
        wait_states(kirim, [plain], {State.SENT})
        assert "KIRIM_NUSASMS_API_KEY" in (kirim.status(mid).get("last_reply") or "")
        assert kirim.status(plain).get("api") == "v3"  # a WhatsApp says which API it went by
    assert _wa_sent(sandbox) == []  # nothing through API v1.0
    assert [m["text"] for m in sandbox.messages(channel="wa")] == ["Teks lewat v3"]


def test_the_inline_file_never_reaches_a_dead_letter_but_stays_for_replay(kirim, sandbox,
                                                                          workers):
    sandbox.configure(wa_senders=["6281100000001"])
    _start(workers, beat=False)
    # A number the provider refuses for good (magic -13): dead, and its dead letter keeps
    # the job without the file, which the record keeps for a replay.
    dead = kirim.send_wa("6281190013000", "Dokumen", sender="6281100000001",
                         media_base64=base64.b64encode(PNG).decode(), file_name="a.png")
    wait_states(kirim, [dead], {State.DEAD})
    letter = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).get(dead)
    assert letter is not None
    assert letter.job["media_base64"] == "" and letter.job["file_name"] == "a.png"
    assert base64.b64decode(json.loads(kirim.status(dead).get("job") or "{}")["media_base64"]
                            ) == PNG
    # A sender the account does not have, named by this message: this message dies (its
    # file kept for a replay with another sender); WhatsApp goes on for everyone else.
    mid = kirim.send_wa("6281234567008", "Dokumen",
                        media_base64=base64.b64encode(PNG).decode(), file_name="a.png",
                        sender="6281999999999")
    wait_states(kirim, [mid], {State.DEAD})
    record = kirim.status(mid)
    assert record.get("last_code_name") == "INVALID_WA_SENDER"
    assert json.loads(record.get("job") or "{}")["media_base64"]  # kept for a replay
    after = kirim.send_wa("6281234567009", "masih jalan")
    wait_states(kirim, [after], {State.SENT, State.DELIVERED, State.READ})


def test_api_refuses_bad_media_naming_the_field(api, sandbox):
    big = base64.b64encode(b"x" * (WA_MEDIA_MAX_BYTES + 1)).decode()
    cases = [
        ({"channel": "sms", "media_url": "https://example.com/a.jpg"}, "media_url"),
        ({"media_url": "ftp://example.com/a.jpg"}, "media_url"),
        ({"media_base64": "not base64!", "file_name": "a.png"}, "media_base64"),
        ({"media_base64": big, "file_name": "a.png"}, "media_base64"),
        ({"media_base64": base64.b64encode(PNG).decode()}, "file_name"),
        ({"media_url": "https://example.com/a.jpg",
          "media_base64": base64.b64encode(PNG).decode(), "file_name": "a.png"}, "media_base64"),
        ({"caption": "no file"}, "caption"),
        ({"sender": "+62 811"}, "sender"),
    ]
    http = api.client
    for extra, field in cases:
        body = {"channel": "wa", "to": "6281234567009", "text": "hi", **extra}
        reply = http.post("/v1/messages", json=body)
        assert reply.status_code == 422, (extra, reply.text)
        error = reply.json()["error"]
        assert error["field"] == field, (extra, error)
    good = http.post("/v1/messages", json={
        "channel": "wa", "to": "6281234567009", "text": "hi", "sender": "6281100000001",
        "media_base64": base64.b64encode(PNG).decode(), "file_name": "a.png"})
    assert good.status_code == 202, good.text
    shown = http.get(f"/v1/messages/{good.json()['id']}").json()
    assert shown["sender"] == "6281100000001" and shown["media"] == "a.png"
    assert "media_base64" not in json.dumps(shown)


def test_python_client_checks_the_file_at_enqueue(kirim, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (WA_MEDIA_MAX_BYTES + 10))
    with pytest.raises(InvalidMessage) as refused:
        kirim.send_wa("6281234567010", "too big", media_path=big)
    assert refused.value.field == "media_path"
    assert "big.bin" in str(refused.value) and str(WA_MEDIA_MAX_BYTES + 10) in str(refused.value)
    with pytest.raises(InvalidMessage, match="cannot read"):
        kirim.send_wa("6281234567010", "missing", media_path=tmp_path / "nope.png")
    with pytest.raises(InvalidMessage, match="channel 'wa' only"):
        kirim.send_sms("6281234567010", "sms", media_url="https://example.com/a.jpg")


@pytest.fixture
def cli(kirim_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name, value in kirim_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_cli_sends_media_with_caption_and_sender(cli, kirim, sandbox, workers, tmp_path):
    sandbox.set_credits(77, "2030-06-30", product="wa")
    # Polled often: one poll lost to a busy CI machine must not leave it unread for 5 min.
    workers.env.update(FAST_CREDITS_POLL)
    _start(workers)
    out = cli("send", "wa", "0812-3456-7011", "Katalog", "--media-url",
              "https://example.com/katalog.pdf", "--caption", "Katalog Desember",
              "--sender", "6281100000001", "--json")
    assert out.exit_code == 0, out.output
    mid = json.loads(out.output)["id"]
    image = tmp_path / "foto.png"
    image.write_bytes(PNG)
    out = cli("send", "wa", "081234567012", "Foto", "--media-file", str(image))
    assert out.exit_code == 0, out.output
    second = out.output.split()[0]
    wait_states(kirim, [mid, second], {State.READ}, timeout_s=40)
    status = cli("status", mid)
    for word in ("read", "delivered", "api: v1", "dr_read_date"):
        assert word in status.output, status.output
    job = json.loads(kirim.status(mid).get("job") or "{}")
    assert job["caption"] == "Katalog Desember" and job["sender"] == "6281100000001"
    # The WhatsApp wallet, read by beat's credits poll from API v1.0's /balance.
    # Each send spends WhatsApp credit: the wallet now holds what the sandbox says it holds.
    left = sandbox.stats()["wa_credits"]
    assert 0 < left < 77
    try:
        wait_for(lambda: (json.loads(cli("credits", "--json").output).get("wa") or {}).get(
            "balance") == f"{left:g}", 20, f"the WA balance {left:g} in `kirim credits`")
    except AssertionError:
        print(workers.logs())
        raise
    shown = cli("credits").output
    assert "wa" in shown and f"balance  {left:g}" in shown and "API v1.0" in shown, shown
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (WA_MEDIA_MAX_BYTES + 1))
    refused = cli("send", "wa", "081234567013", "Besar", "--media-file", str(big))
    assert refused.exit_code == 65
    assert "big.png" in refused.output and str(WA_MEDIA_MAX_BYTES + 1) in refused.output
    assert cli("send", "sms", "081234567013", "x", "--caption", "c").exit_code == 65


def test_read_is_forward_only(kirim, sandbox, workers):
    """A late `delivered` (a report replayed) never moves a read message back."""
    sandbox.configure(dr_delay_s=0.2, wa_read_delay_s=0.2)
    _start(workers)
    mid = kirim.send_wa("6281234567014", "Halo")
    wait_states(kirim, [mid], {State.READ}, timeout_s=30)
    moved = kirim.store.move(mid, State.DELIVERED, note="late report")
    assert not moved.ok and moved.previous == State.READ
    assert kirim.status(mid).state == State.READ


def test_the_file_leaves_the_record_in_the_step_that_makes_it_sent(kirim):
    from producer.core.contract import SendRequest
    from producer.core.jobs import build_job

    req = SendRequest(channel="wa", to="6281234567015", text="Dokumen",
                      media_base64=base64.b64encode(PNG).decode(), file_name="a.png",
                      metadata={"media_base64": "a metadata value, not the file"})
    job = build_job(req, kirim.settings)
    kirim.store.create(job, State.QUEUED, kirim.keys.outbox, time.time(), "d1")
    store = kirim.store
    # Dead and replayed: the file stays, so the replay can send it.
    assert store.move(job.id, State.DEAD, allowed_from=[State.QUEUED]).ok
    assert kirim.status(job.id).job.media_base64 == job.media_base64
    assert store.move(job.id, State.QUEUED, allowed_from=[State.DEAD]).ok
    assert store.move(job.id, State.SENDING, allowed_from=[State.QUEUED]).ok
    assert kirim.status(job.id).job.media_base64 == job.media_base64
    assert store.move(job.id, State.SENT, allowed_from=[State.SENDING]).ok
    record = kirim.status(job.id)
    stored = record.job  # still reads back as a job
    assert stored.media_base64 == "" and stored.media_erased and stored.file_name == "a.png"
    assert stored.metadata["media_base64"] == "a metadata value, not the file"
    assert base64.b64encode(PNG) not in kirim.redis.hget(kirim.keys.message(job.id), "job")
    assert record.get("media_erased") == "1"
    # Later moves leave the erased job as it is.
    assert store.move(job.id, State.DELIVERED, allowed_from=[State.SENT]).ok
    assert store.move(job.id, State.READ, allowed_from=[State.DELIVERED]).ok
    assert kirim.status(job.id).job == stored


def test_a_dropped_reply_is_unknown_and_a_429_waits_its_retry_after(kirim, sandbox, workers):
    _start(workers, beat=False)
    sandbox.configure(rate_drop_after_accept=1.0)
    lost = kirim.send_wa("6281234567016", "Balasan hilang", media_url="https://example.com/a.jpg")
    wait_states(kirim, [lost], {State.UNKNOWN})
    assert len(_wa_sent(sandbox, "6281234567016")) == 1  # the provider has it: never resent
    sandbox.configure(rate_drop_after_accept=0.0, rate_429=1.0)
    throttled = kirim.send_wa("6281234567017", "Tunggu")
    wait_for(lambda: "ProviderThrottled" in (kirim.status(throttled).get("last_code_name")
                                             or ""), 15, "a 429")
    sandbox.configure(rate_429=0.0)
    wait_states(kirim, [throttled], {State.SENT})
    record = kirim.status(throttled)
    retried = [e for e in record.timeline if "ProviderThrottled" in (e.get("note") or "")]
    waits = [float(e["note"].split("retry in ")[1].split("s")[0]) for e in retried]
    assert waits and min(waits) >= 1.0, waits  # Retry-After: 1 (the backoff alone is 0.2 s)
    assert len(_wa_sent(sandbox, "6281234567017")) == 1
    time.sleep(1.0)
    assert kirim.status(lost).state == State.UNKNOWN


def test_apply_wa_moves_forward_only_and_counts_each_move(kirim):
    from producer.core.contract import SendRequest
    from producer.core.jobs import build_job
    from worker import metrics
    from worker.delivery import Applied, DeliveryReports
    from worker.nusasms import DeliveryState
    from worker.nusasms.v1_replies import WAStatus

    def sent_message(to: str) -> str:
        job = build_job(SendRequest(channel="wa", to=to, text="Halo"), kirim.settings)
        kirim.store.create(job, State.SENDING, kirim.keys.sending, time.time(), "d1")
        assert kirim.store.move(job.id, State.SENT, set_fields={"provider_id": "ref-" + to,
                                                                "api": "v1"}).ok
        return job.id

    def status(state: DeliveryState, letter: str, final: bool, **dates: str) -> WAStatus:
        return WAStatus(ref_no="r", letter=letter, state=state, final=final,
                        sent_date=dates.get("sent"), delivered_date=dates.get("delivered"),
                        read_date=dates.get("read"))

    def count(state: str) -> float:
        return metrics.DELIVERY_REPORTS.labels("wa", state, "v1")._value.get()

    reports = DeliveryReports(kirim.store, kirim.settings)
    read_before, delivered_before = count("read"), count("delivered")
    # The first status already read: delivered and read, both in the timeline, in order.
    quick = sent_message("6281234567018")
    assert reports.apply_wa(quick, status(DeliveryState.READ, "D", True, sent="2026-12-02 10:00:00",
                                          delivered="2026-12-02 10:00:05",
                                          read="2026-12-02 10:01:00")) == Applied.FINAL
    record = kirim.status(quick)
    assert [e["state"] for e in record.timeline][-3:] == ["sent", "delivered", "read"]
    assert "2026-12-02 10:01:00" in record.timeline[-1]["note"]
    assert record.get("dr_read_date") == "2026-12-02 10:01:00"
    assert kirim.redis.zscore(kirim.keys.dr_pending, quick) is None
    assert (count("read"), count("delivered")) == (read_before + 1, delivered_before + 1)
    # A late delivered status changes nothing.
    late = status(DeliveryState.DELIVERED, "D", False, delivered="2026-12-02 10:00:05")
    assert reports.apply_wa(quick, late) == Applied.IGNORED
    assert kirim.status(quick).state == State.READ
    # Delivered, not read: stays polled, backed off.
    slow = sent_message("6281234567019")
    assert reports.apply_wa(slow, late) == Applied.FINAL
    assert kirim.status(slow).state == State.DELIVERED
    assert kirim.redis.zscore(kirim.keys.dr_pending, slow) is not None
    assert reports.apply_wa(slow, late) == Applied.KEPT
    # A final failure letter.
    failed = sent_message("6281234567020")
    assert reports.apply_wa(failed, status(DeliveryState.UNDELIVERED, "U", True)) == Applied.FINAL
    assert kirim.status(failed).state == State.UNDELIVERED
