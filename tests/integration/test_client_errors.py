"""The Python client only ever raises kirim's errors, against a real Redis.

Whatever a caller passes to a `send_*` method, the call returns an id or raises a KirimError
(InvalidMessage naming the field for bad input); never pydantic's or Python's own error. Every
id it returns has a record whose job reads back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from producer.client import KirimClient
from producer.core.contract import SendRequest
from producer.core.enqueue import Accepted
from producer.core.errors import IdempotencyConflict, InvalidMessage, KirimError, RecipientLimited
from producer.core.settings import Settings

pytestmark = pytest.mark.timeout(120)

EXPECTED = (InvalidMessage, RecipientLimited, IdempotencyConflict)
FIELDS = ("channel", "to", "group", "text", "idempotency_key", "callback_url", "send_at",
          "otp_validity_s", "metadata")
# Each method: its positional parameters, then the keywords it takes besides the fields.
METHODS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "send": (("channel", "to", "text"), ()),
    "send_sms": (("to", "text"), ()),
    "send_wa": (("to", "text"), ()),
    "send_otp": (("to", "text"), ("validity_s",)),
    "send_group": (("group", "text"), ()),
}

texts = st.one_of(st.text(max_size=10), st.lists(st.one_of(
    st.characters(), st.characters(categories=["Cs"])), max_size=6).map("".join))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(
    [10**400, -(2**200), 2**64, math.nan, math.inf, -math.inf, 1e308]), st.floats(), texts,
    st.binary(max_size=6))
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=2)
                        | st.dictionaries(texts, inner, max_size=2), max_leaves=4)
plausible: dict[str, st.SearchStrategy[Any]] = {
    "channel": st.sampled_from(["sms", "wa", "otp"]),
    "to": st.sampled_from(["081234567890", "+62 812-3456-7891", "6281234567892"]),
    "group": st.sampled_from(["VIP", "Pelanggan"]),
    "text": st.sampled_from(["halo", "Kode 123456", "Terima kasih 🙏"]),
    "idempotency_key": st.sampled_from(["k1", "k2"]),
    "callback_url": st.just("https://example.com/cb"),
    "send_at": st.floats(0, 2e9),
    "otp_validity_s": st.integers(0, 4000),
    "validity_s": st.integers(0, 4000),
    "metadata": st.dictionaries(texts, scalars, max_size=3),
}


def value_for(name: str) -> st.SearchStrategy[Any]:
    """A plausible value for `name` (so some calls get through), or anything at all."""
    return st.one_of(plausible[name], plausible[name], anything)


def some_of(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Up to three of `names` as keywords, each with a value from `value_for`."""
    return st.lists(st.sampled_from(names), max_size=3, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({name: value_for(name) for name in chosen}))


@pytest.fixture
def client(redis_url: str) -> Iterator[KirimClient]:
    """A client on the test Redis (no sandbox or worker needed: nothing is sent)."""
    with KirimClient(Settings(redis_url=redis_url), source="test") as kirim:
        yield kirim


def assert_kirim_outcome(client: KirimClient, call: Any) -> None:
    """`call()` returns an id whose record's job reads back, or raises one of our errors."""
    try:
        message_id = call()
    except EXPECTED as exc:
        event(f"{type(exc).__name__} {getattr(exc, 'field', '')}")
        if isinstance(exc, InvalidMessage):
            assert exc.field and str(exc).encode()  # names the field; printable as UTF-8
        return
    event("accepted")
    assert isinstance(message_id, str)
    assert client.status(message_id).job.id == message_id


@pytest.mark.parametrize("method", sorted(METHODS))
def test_send_methods_raise_only_kirim_errors(client, method):
    positional, own = METHODS[method]
    keywords = [name for name in (*FIELDS, *own) if name not in positional]

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(args=st.tuples(*(value_for(name) for name in positional)),
           options=some_of(keywords))
    def check(args: tuple[Any, ...], options: dict[str, Any]) -> None:
        assert_kirim_outcome(client, lambda: getattr(client, method)(*args, **options))

    check()


def test_submit_and_send_many_raise_only_kirim_errors(client):
    messages = st.builds(lambda base, more: {**base, **more}, st.fixed_dictionaries(
        {"channel": plausible["channel"], "to": plausible["to"], "text": plausible["text"]}),
        some_of([k for k in FIELDS if k not in ("channel", "to", "text")]))
    requests = st.one_of(messages, messages, anything)

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(requests, max_size=4))
    def check(batch: list[Any]) -> None:
        for request in batch:
            assert_kirim_outcome(client, lambda r=request: client.submit(r).id)
        results = client.send_many(batch)
        assert len(results) == len(batch)
        for result in results:
            assert isinstance(result, (Accepted, *EXPECTED)), repr(result)

    check()


@pytest.mark.parametrize(("call", "field", "words"), [
    (lambda c: c.send_otp("081234567890", "Kode 1", validity_s=5), "otp_validity_s", "10"),
    (lambda c: c.send_sms("081234567890", "hi", bogus=1), "bogus", "not permitted"),
    (lambda c: c.send_sms("081234567890", "hi", channel="wa"), "channel", "send_sms()"),
    (lambda c: c.send_otp("081234567890", "Kode 1", validity_s=30, otp_validity_s=60),
     "otp_validity_s", "give it once"),
    (lambda c: c.send_group("VIP", "hi", channel="otp"), "channel", "send_group()"),
    (lambda c: c.send_wa("081234567890", "hi", metadata={"a": math.nan}), "metadata.a",
     "finite number, not nan"),
    (lambda c: c.send("sms", "081234567890", "hi\ud800"), "text", "lone surrogate"),
    (lambda c: c.send_sms("081234567890", "hi", send_at=math.inf), "send_at", "finite"),
    (lambda c: c.submit(["not", "a", "message"]), "body", "dictionary"),
    (lambda c: c.send_many(42), "requests", "iterable"),
])
def test_bad_calls_are_invalid_message_naming_the_field(client, call, field, words):
    with pytest.raises(InvalidMessage) as info:
        call(client)
    assert info.value.field == field and field in str(info.value)
    assert words in str(info.value), str(info.value)
    assert client.redis.dbsize() == 0  # nothing was written


def test_a_request_changed_or_built_without_validation_is_validated_again(client):
    changed = SendRequest(channel="sms", to="081234567890", text="hi")
    changed.metadata = {"a": math.inf}
    unchecked = SendRequest.model_construct(channel="sms", to="081234567890", text=None)
    with pytest.raises(InvalidMessage, match=r"metadata\.a: must be a finite number"):
        client.submit(changed)
    results = client.send_many([changed, unchecked, {"channel": "sms", "to": "081234567890",
                                                     "text": "fine"}])
    assert [type(r) for r in results] == [InvalidMessage, InvalidMessage, Accepted]
    assert [getattr(r, "field", None) for r in results] == ["metadata.a", "text", None]
    assert isinstance(results[0], KirimError)
