"""Settings errors name the variable; job building refuses bad input naming the field."""

from __future__ import annotations

import hashlib
import time

import pytest
from pydantic import ValidationError

from producer.core.contract import Channel, Job, SendRequest
from producer.core.errors import ConfigError, InvalidMessage
from producer.core.jobs import build_job, parse_request
from producer.core.records import fingerprint
from producer.core.segments import text_hash
from producer.core.settings import Settings, load_settings


def test_invalid_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("KIRIM_REDIS_URL", "localhost:6379")
    with pytest.raises(ConfigError, match=r"KIRIM_REDIS_URL: .*redis://"):
        load_settings()


def test_non_numeric_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("KIRIM_RATE_LIMIT_PER_S", "fast")
    with pytest.raises(ConfigError, match="KIRIM_RATE_LIMIT_PER_S"):
        load_settings()


def test_worker_without_credentials_names_what_is_missing():
    with pytest.raises(ConfigError, match="KIRIM_NUSASMS_USER, KIRIM_NUSASMS_PASSWORD not set"):
        Settings().require_provider()


def test_retry_cap_must_stay_below_visibility_timeout():
    with pytest.raises(ConfigError, match="VISIBILITY_TIMEOUT"):
        load_settings(visibility_timeout_s=60, retry_max_delay_s=120)


def test_password_is_secret_in_repr():
    settings = Settings(nusasms_user="u", nusasms_password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in str(settings)


def test_redis_password_is_masked_for_logs():
    assert Settings(redis_url="redis://:pw123@host:6379/0").safe_redis_url == \
        "redis://:***@host:6379/0"


def _job(**fields):
    data = {"channel": "sms", "to": "081234567890", "text": "halo", **fields}
    return build_job(SendRequest(**data), Settings())


def test_job_is_normalised_and_sized():
    job = _job(text="x" * 161)
    assert job.to == "6281234567890" and job.encoding == "gsm7" and job.parts == 2
    assert _job(text="Terima kasih 🙏").encoding == "ucs2"


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"text": "   "}, "text", "empty"),
    ({"text": "a\x00b"}, "text", "NUL"),
    ({"text": "x" * 1600}, "text", "KIRIM_SMS_MAX_PARTS"),
    ({"channel": "wa", "text": "x" * 1001}, "text", "1000"),
    ({"to": "12345"}, "to", "international form"),
    ({"group": "Example"}, "to", "exactly one"),
    ({"channel": "otp", "send_at": time.time() + 60}, "send_at", "OTP"),
    ({"send_at": time.time() + 400 * 86400}, "send_at", "KIRIM_MESSAGE_TTL_S"),
    ({"otp_validity_s": 60}, "otp_validity_s", "otp"),
])
def test_bad_input_is_refused_naming_the_field(fields, field, words):
    with pytest.raises(InvalidMessage) as info:
        _job(**fields)
    assert info.value.field == field and words in str(info.value)


def test_group_is_sms_only():
    with pytest.raises(InvalidMessage, match="SMS only"):
        build_job(SendRequest(channel=Channel.WA, group="Example", text="hi"), Settings())


@pytest.mark.parametrize(("data", "field"), [
    ({"channel": "fax", "to": "0812", "text": "x"}, "channel"),
    ({"channel": "sms", "to": "0812"}, "text"),
    ({"channel": "sms", "to": "0812", "text": "x", "colour": "red"}, "colour"),
    ({"channel": "sms", "to": "0812", "text": "x", "callback_url": "ftp://x"}, "callback_url"),
])
def test_request_shape_errors_name_the_field(data, field):
    with pytest.raises(InvalidMessage) as info:
        parse_request(data)
    assert info.value.field == field


def test_otp_gets_a_validity():
    job = build_job(SendRequest(channel="otp", to="081234567890", text="Kode 1234"), Settings(),
                    now=1000.0)
    assert job.valid_until == 1000.0 + Settings().otp_validity_s


# --- the hash key (issue 14) -----------------------------------------------------------------

def test_build_job_without_the_hash_key_is_a_config_error(monkeypatch):
    monkeypatch.delenv("KIRIM_HASH_KEY", raising=False)
    with pytest.raises(ConfigError, match="KIRIM_HASH_KEY not set"):
        _job(channel="otp", text="Kode 123456")


def test_a_short_hash_key_names_the_variable(monkeypatch):
    monkeypatch.setenv("KIRIM_HASH_KEY", "too-short")
    with pytest.raises(ConfigError, match="KIRIM_HASH_KEY"):
        load_settings()


def test_the_text_hash_is_keyed_by_the_settings_key(monkeypatch):
    code = {"channel": "otp", "text": "Kode OTP Anda 739104"}
    first, again = _job(**code), _job(**code)
    assert first.text_hash == again.text_hash == text_hash(code["text"],
                                                           Settings().hash_key_bytes)
    monkeypatch.setenv("KIRIM_HASH_KEY", "a-different-hash-key-0123456789abcdef")
    other = _job(**code)
    assert other.text_hash != first.text_hash
    unkeyed = hashlib.sha256(code["text"].encode()).hexdigest()
    assert unkeyed[:16] not in (first.text_hash, other.text_hash)


def test_the_idempotency_fingerprint_holds_no_plain_hash_of_the_text(monkeypatch):
    code = {"channel": "otp", "text": "Kode OTP Anda 739104", "idempotency_key": "k"}
    first = fingerprint(_job(**code))
    assert first == fingerprint(_job(**code))
    assert first != fingerprint(_job(**{**code, "text": "Kode OTP Anda 739105"}))
    # The same request under another server key: another fingerprint, so nothing in it can be
    # checked against a guessed code without the key.
    monkeypatch.setenv("KIRIM_HASH_KEY", "a-different-hash-key-0123456789abcdef")
    assert fingerprint(_job(**code)) != first


def test_an_erased_job_reads_back_and_cannot_become_a_task():
    job = _job(channel="otp", text="Kode 739104")
    erased = Job.model_validate_json(
        job.model_dump_json().replace('"text":"Kode 739104"', '"text":""')[:-1]
        + ',"text_erased":true}')
    assert erased.text == "" and erased.text_erased and erased.id == job.id
    assert "text_erased" not in job.model_dump_json()  # a normal job's JSON is unchanged
    assert '"text_erased":true' in erased.model_dump_json()
    with pytest.raises(ValueError, match="erased"):
        erased.to_task()
    with pytest.raises(ValidationError, match="at least 1 character"):
        Job.model_validate({**job.to_task(), "text": ""})  # empty without the mark: refused
    with pytest.raises(ValidationError, match="must be empty"):
        Job.model_validate({**job.to_task(), "text_erased": True})
