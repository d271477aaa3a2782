"""The job's WhatsApp fields (schema v2): validation naming the field, v1 jobs still read, the
`read` state's edges, the client's file check, and dead letters without the file."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from producer.core.contract import (
    TRANSITIONS,
    WA_MEDIA_MAX_BYTES,
    Job,
    SendRequest,
    State,
    sent_api,
)
from producer.core.deadletters import dead_letter_fields
from producer.core.errors import InvalidMessage
from producer.core.jobs import build_job
from producer.core.media import read_media_file
from producer.core.settings import Settings

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()
V1_JOB: dict[str, Any] = {"v": 1, "id": "job0000000001", "channel": "wa", "to": "6281234567890",
                          "text": "halo", "encoding": "gsm7", "parts": 1, "text_hash": "h",
                          "created_at": 1764000000.0}


def refused_field(**fields: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        SendRequest(**{"channel": "wa", "to": "081234567890", "text": "hi", **fields})
    return ".".join(map(str, refused.value.errors()[0]["loc"]))


@pytest.mark.parametrize(("fields", "field"), [
    ({"channel": "sms", "media_url": "https://example.com/a.jpg"}, "media_url"),
    ({"channel": "otp", "sender": "6281100000001"}, "sender"),
    ({"media_url": "ftp://example.com/a.jpg"}, "media_url"),
    ({"media_url": "https:///a.jpg"}, "media_url"),
    ({"media_base64": "bm90IGJhc2U2NA", "file_name": "a.txt"}, "media_base64"),  # no padding
    ({"media_base64": PNG}, "file_name"),
    ({"media_base64": PNG, "file_name": "../etc/passwd"}, "file_name"),
    ({"file_name": "a.png"}, "file_name"),
    ({"media_url": "https://example.com/a.jpg", "media_base64": PNG, "file_name": "a.png"},
     "media_base64"),
    ({"caption": "no file"}, "caption"),
    ({"sender": "+6281100000001"}, "sender"),
    ({"sender": "081100000001"}, "sender"),
])
def test_each_bad_wa_field_is_named(fields: dict[str, Any], field: str) -> None:
    assert refused_field(**fields) == field


def test_the_512_kb_limit_is_on_the_decoded_bytes() -> None:
    exact = base64.b64encode(b"x" * WA_MEDIA_MAX_BYTES).decode()
    over = base64.b64encode(b"x" * (WA_MEDIA_MAX_BYTES + 1)).decode()
    SendRequest(channel="wa", to="0812", text="t", media_base64=exact, file_name="a.bin")
    with pytest.raises(ValidationError, match="524289 bytes"):
        SendRequest(channel="wa", to="0812", text="t", media_base64=over, file_name="a.bin")
    # Far too large: refused by its length, before decoding.
    with pytest.raises(ValidationError, match="more than 524288 bytes"):
        SendRequest(channel="wa", to="0812", text="t", media_base64="A" * 2_000_000,
                    file_name="a.bin")


def test_a_job_with_wa_fields_is_v2_and_one_without_stays_v1() -> None:
    settings = Settings(hash_key="k" * 32)
    plain = build_job(SendRequest(channel="wa", to="081234567890", text="hi"), settings)
    media = build_job(SendRequest(channel="wa", to="081234567890", text="hi",
                                  media_url="https://example.com/a.jpg", caption="c",
                                  sender="6281100000001"), settings)
    assert plain.v == 1 and "media_url" not in plain.to_task()
    task = media.to_task()
    assert task["v"] == 2 and task["media_url"] == "https://example.com/a.jpg"
    assert task["caption"] == "c" and task["sender"] == "6281100000001"
    assert "media_base64" not in task and "media_erased" not in task
    assert Job.model_validate(task) == media


def test_a_literal_v1_job_is_accepted_and_may_not_carry_v2_fields() -> None:
    assert Job.model_validate(V1_JOB).v == 1
    with pytest.raises(ValidationError, match="schema version 2") as refused:
        Job.model_validate({**V1_JOB, "sender": "6281100000001"})
    assert refused.value.errors()[0]["loc"] == ("sender",)
    assert Job.model_validate({**V1_JOB, "v": 2, "sender": "6281100000001"}).sender
    with pytest.raises(ValidationError):
        Job.model_validate({**V1_JOB, "v": 3})


def test_an_erased_file_reads_back_but_is_never_sent_again() -> None:
    stored = {**V1_JOB, "v": 2, "media_base64": "", "media_erased": True, "file_name": "a.png"}
    job = Job.model_validate(stored)
    assert job.has_media and job.media_erased
    with pytest.raises(ValueError, match="file was erased"):
        job.to_task()
    with pytest.raises(ValidationError):  # not erased: an empty file is refused
        Job.model_validate({**stored, "media_erased": False})
    with pytest.raises(ValidationError, match="must be empty"):
        Job.model_validate({**stored, "media_base64": PNG})


def test_read_comes_after_delivered_or_straight_from_sent_and_nothing_follows_it() -> None:
    assert TRANSITIONS[State.READ] == {State.SENT, State.UNKNOWN, State.DELIVERED}
    assert all(State.READ not in before for before in TRANSITIONS.values())


def test_sent_api_says_which_api_took_the_message() -> None:
    assert sent_api({"api": "v1", "provider_id": "x"}) == "v1"
    assert sent_api({"provider_id": "x"}) == "v3"
    assert sent_api({}) is None


def test_read_media_file_names_the_file_and_its_size(tmp_path: Path) -> None:
    small = tmp_path / "ok.png"
    small.write_bytes(b"png")
    assert read_media_file(small) == {"media_base64": "cG5n", "file_name": "ok.png"}
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (WA_MEDIA_MAX_BYTES + 1))
    with pytest.raises(InvalidMessage, match=r"big\.png.* is 524289 bytes") as refused:
        read_media_file(big, field="--media-file")
    assert refused.value.field == "--media-file"
    with pytest.raises(InvalidMessage, match="cannot read"):
        read_media_file(tmp_path / "missing.png")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(InvalidMessage, match="empty"):
        read_media_file(tmp_path / "empty")


def test_a_dead_letter_keeps_the_job_without_its_file() -> None:
    job = json.dumps({**V1_JOB, "v": 2, "media_base64": PNG, "file_name": "a.png",
                      "created_at": time.time()})
    fields = dead_letter_fields("m", "why", None, "X", 0, "", 1.0, job, "wa")
    kept = json.loads(fields[fields.index("job") + 1])
    assert kept["media_base64"] == "" and kept["media_erased"] is True
    assert kept["file_name"] == "a.png"


def test_the_idempotency_fingerprint_covers_the_wa_fields_only_when_set() -> None:
    from producer.core.records import fingerprint

    settings = Settings(hash_key="k" * 32)
    plain = build_job(SendRequest(channel="wa", to="081234567890", text="hi",
                                  idempotency_key="k"), settings)
    media = build_job(SendRequest(channel="wa", to="081234567890", text="hi",
                                  idempotency_key="k", media_url="https://example.com/a.jpg"),
                      settings)
    assert fingerprint(plain) != fingerprint(media)
    # A job without them hashes as before they existed (keys stored by an older release).
    import hashlib
    body = plain.model_dump(include={"channel", "to", "group", "text_hash", "send_at",
                                     "callback_url", "metadata"})
    assert fingerprint(plain) == hashlib.sha256(
        json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def test_a_text_hash_with_a_colon_is_refused_it_would_break_the_guards_members() -> None:
    assert Job.model_validate({**V1_JOB, "text_hash": "0123456789abcdef"}).text_hash
    with pytest.raises(ValidationError) as refused:
        Job.model_validate({**V1_JOB, "text_hash": "ab:cd"})
    assert refused.value.errors()[0]["loc"] == ("text_hash",)
