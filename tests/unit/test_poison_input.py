"""Poison never enters: NaN, Infinity and lone surrogates are refused naming the field, and
every job kirim builds survives its own JSON (what Redis, the task message and the worker read).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from producer.core.contract import Job, SendRequest
from producer.core.envelope import build_send_task
from producer.core.errors import InvalidMessage
from producer.core.jobs import build_job, parse_request
from producer.core.records import fingerprint
from producer.core.settings import Settings

BASE: dict[str, Any] = {"channel": "sms", "to": "081234567890", "text": "halo"}
NAN, INF = float("nan"), float("inf")
LONE = "\ud800"  # a lone surrogate: what a JSON "\ud800" escape decodes to in Python
SETTINGS = Settings()


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"metadata": {"a": NAN}}, "metadata.a", "finite number, not nan"),
    ({"metadata": {"a": INF}}, "metadata.a", "finite number, not inf"),
    ({"metadata": {"ok": 1, "a": -INF}}, "metadata.a", "finite number, not -inf"),
    ({"send_at": NAN}, "send_at", "finite"),
    ({"send_at": INF}, "send_at", "finite"),
    ({"send_at": -INF}, "send_at", "finite"),
    ({"send_at": 10**400}, "send_at", "number"),
    ({"channel": "otp", "otp_validity_s": NAN}, "otp_validity_s", "finite"),
    ({"text": "halo " + LONE}, "text", "lone surrogate (\\ud800 at position 5)"),
    ({"to": "0812" + LONE}, "to", "surrogate"),
    ({"to": None, "group": "vip\udfff"}, "group", "\\udfff"),
    # A length limit makes pydantic read the text as UTF-8 first: its own wording.
    ({"idempotency_key": LONE}, "idempotency_key", "unable to parse raw data as a unicode"),
    ({"callback_url": "https://example.com/" + LONE}, "callback_url", "unicode string"),
    ({"metadata": {"a": "x\udc80"}}, "metadata.a", "surrogate"),
    ({"metadata": {"a": None}}, "metadata.a", "must be a string, a number or a boolean"),
    ({"metadata": {"a": [1]}}, "metadata.a", "must be a string, a number or a boolean"),
    # pydantic itself writes the bad key in the location as U+FFFD, one per byte
    ({"metadata": {"k" + LONE: 1}}, "metadata.k\ufffd\ufffd\ufffd.[key]",
     "\\ud800 at position 1"),
])
def test_poison_is_refused_naming_the_field(fields, field, words):
    with pytest.raises(InvalidMessage) as info:
        parse_request({**BASE, **fields})
    assert info.value.field == field
    assert words in info.value.reason, info.value.reason
    assert str(info.value).encode()  # the refusal itself must be printable as UTF-8
    assert info.value.__cause__ is None  # the pydantic error would carry the whole input


def test_a_request_built_without_validation_is_refused_by_the_job():
    req = SendRequest.model_construct(**BASE, metadata={"a": NAN})
    with pytest.raises(InvalidMessage) as info:
        build_job(req, SETTINGS)
    assert info.value.field == "metadata.a" and "finite" in info.value.reason


def _job_data(**overrides: Any) -> dict[str, Any]:
    job = build_job(parse_request({**BASE, "metadata": {"order": 42}}), SETTINGS, now=1.7e9)
    return {**job.model_dump(mode="json"), **overrides}


@pytest.mark.parametrize(("overrides", "field"), [
    ({"created_at": NAN}, "created_at"),
    ({"valid_until": INF}, "valid_until"),
    ({"send_at": -INF}, "send_at"),
    ({"metadata": {"order": NAN}}, "metadata.order"),
    ({"metadata": {"order": None}}, "metadata.order"),  # what pydantic wrote for NaN before
    ({"metadata": {LONE: 1}}, "metadata"),
    ({"text": "x" + LONE}, "text"),
    ({"to": None, "group": LONE}, "group"),
    ({"source": LONE}, "source"),
    ({"idempotency_key": LONE}, "idempotency_key"),
    ({"callback_url": "https://x/" + LONE}, "callback_url"),
])
def test_a_foreign_job_the_json_cannot_carry_is_refused_at_decode(overrides, field):
    # json.dumps writes NaN as a foreign Python Celery client would; kombu's json.loads
    # hands the worker what Job.model_validate then sees.
    raw = json.dumps(_job_data(**overrides))
    with pytest.raises(ValidationError) as info:
        Job.model_validate(json.loads(raw))
    assert ".".join(map(str, info.value.errors()[0]["loc"])).startswith(field)
    with pytest.raises(ValidationError):
        Job.model_validate_json(raw)  # a stored record's `job` field


def test_the_job_json_shape_is_unchanged():
    data = _job_data()
    assert list(data) == ["v", "id", "channel", "to", "group", "text", "encoding", "parts",
                          "text_hash", "created_at", "valid_until", "send_at", "callback_url",
                          "metadata", "source", "idempotency_key"]
    assert data["v"] == 1 and data["metadata"] == {"order": 42}
    props = Job.model_json_schema()["properties"]
    assert props["created_at"] == {"title": "Created At", "type": "number"}
    assert props["metadata"]["additionalProperties"] == {"anyOf": [
        {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}]}


# Text that includes lone surrogates and every other plane.
texts = st.one_of(st.text(max_size=12), st.lists(st.one_of(
    st.characters(), st.characters(categories=["Cs"]), st.characters(codec="utf-8")),
    max_size=8).map("".join))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63),
                    st.sampled_from([10**400, -(10**600), 2**64]), st.floats(), texts,
                    st.binary(max_size=6))
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=2)
                        | st.dictionaries(texts, inner, max_size=2), max_leaves=4)
plausible: dict[str, st.SearchStrategy[Any]] = {
    "channel": st.sampled_from(["sms", "wa", "otp"]),
    "to": st.sampled_from(["081234567890", "+62 812-3456-7890", "6281234567890"]),
    "group": st.sampled_from(["VIP", "Pelanggan"]) | texts,
    "text": st.sampled_from(["halo", "Kode 123456", "Terima kasih 🙏"]) | texts,
    "idempotency_key": texts,
    "callback_url": texts.map(lambda t: "https://example.com/" + t),
    "send_at": st.floats() | st.integers(),
    "otp_validity_s": st.integers(0, 4000) | st.floats(),
    "metadata": st.dictionaries(texts, st.one_of(scalars, st.integers(), st.floats()),
                                max_size=4),
}
requests = st.builds(
    lambda base, changes: {**base, **changes},
    st.fixed_dictionaries({name: plausible[name] for name in ("channel", "to", "text")}),
    st.fixed_dictionaries({}, optional={name: st.one_of(strategy, strategy, strategy, anything)
                                        for name, strategy in plausible.items()}))


PROPERTY = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(request=requests)
def test_every_accepted_request_makes_a_job_that_survives_its_json(request):
    try:
        job = build_job(parse_request(request), SETTINGS, source="api")
    except InvalidMessage as exc:
        assert str(exc).encode() and exc.field
        return
    job_json = job.model_dump_json()
    assert Job.model_validate_json(job_json.encode()) == job  # the record's `job` field
    assert fingerprint(job)  # hashed from the job's JSON for idempotency
    message = json.loads(build_send_task(job, job_json, "tok"))  # the task on the queue list
    args, _, _ = json.loads(base64.b64decode(message["body"]))
    assert Job.model_validate(args[0]) == job  # what the worker decodes


json_safe_texts = st.text(st.characters(codec="utf-8"), max_size=12)
json_safe_scalars = st.one_of(
    st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=10**300),
    st.floats(allow_nan=False, allow_infinity=False), json_safe_texts)


@PROPERTY
@given(metadata=st.dictionaries(json_safe_texts, json_safe_scalars, max_size=6))
def test_metadata_json_can_carry_is_accepted_and_read_back_exactly(metadata):
    job = build_job(parse_request({**BASE, "metadata": metadata}), SETTINGS)
    back = Job.model_validate_json(job.model_dump_json()).metadata
    # Types too: True must not come back as 1, nor 1.0 as 1.
    assert [(k, type(v), v) for k, v in back.items()] == \
        [(k, type(v), v) for k, v in metadata.items()]
