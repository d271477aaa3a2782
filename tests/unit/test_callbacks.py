"""Pure parts of status callbacks (worker/callbacks.py): the Standard Webhooks signature and
headers, the key policy on a callback URL, the body, the backoff and reading a stream entry.
The drain itself runs in tests/integration/test_status_callbacks.py, test_callback_isolation.py,
test_callback_signatures.py and test_callback_ssrf.py, against real receivers."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from producer.core.tenants import KeyPolicy
from worker.callbacks import (
    attempt_count,
    backoff_s,
    callback_body,
    event_fields,
    policy_refusal,
    sign,
    webhook_headers,
)

# The Standard Webhooks specification's example (spec/standard-webhooks.md, "Signature
# scheme"), also the test vector of its reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NEW, OLD = b"n" * 32, b"o" * 32


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def test_signature_matches_the_standard_webhooks_spec_vector():
    key = base64.b64decode(SPEC_SECRET.removeprefix("whsec_"))
    assert sign([key], SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE


def test_headers_verify_with_the_reference_verifier_and_only_with_the_right_secret():
    body = callback_body({"id": "m1", "state": "sent", "from": "sending", "at": "1.5"})
    headers = webhook_headers([NEW], "1700000000000-0", body)
    assert headers["webhook-id"] == "1700000000000-0"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert json.loads(body) == Webhook(whsec(NEW)).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(OLD)).verify(body, headers)


def test_during_a_rotation_each_secret_signs_and_either_verifies():
    body = b'{"id":"m1"}'
    headers = webhook_headers([NEW, OLD], "1-0", body)
    parts = headers["webhook-signature"].split(" ")
    assert [p.partition(",")[0] for p in parts] == ["v1", "v1"] and parts[0] != parts[1]
    for key in (NEW, OLD):
        Webhook(whsec(key)).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(b"x" * 32)).verify(body, headers)


@pytest.mark.parametrize("change", ["body", "timestamp", "id"])
def test_a_changed_body_timestamp_or_id_does_not_verify(change):
    body = b'{"id":"m1","state":"sent"}'
    headers = webhook_headers([NEW], "1-0", body)
    if change == "body":
        body = b'{"id":"m1","state":"delivered"}'
    elif change == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)
    else:
        headers["webhook-id"] = "2-0"
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(NEW)).verify(body, headers)


def test_a_timestamp_older_than_five_minutes_is_refused_by_the_receiver():
    body = b"{}"
    stale = webhook_headers([NEW], "1-0", body, timestamp=int(time.time()) - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(whsec(NEW)).verify(body, stale)
    Webhook(whsec(NEW)).verify(body, webhook_headers([NEW], "1-0", body,
                                                     timestamp=int(time.time()) - 240))


def test_there_are_no_unsigned_headers():
    with pytest.raises(ValueError, match="unsigned"):
        webhook_headers([], "1-0", b"{}")


@pytest.mark.parametrize(("policy", "url", "refused"), [
    (KeyPolicy(), "https://hooks.example.com/k?t=1", None),
    (KeyPolicy(), "http://hooks.example.com/k", "http:// is not allowed for key 'shop'"),
    (KeyPolicy(callback_http=True), "http://hooks.example.com/k", None),
    (KeyPolicy(callback_hosts=["hooks.example.com"]), "https://HOOKS.example.com./k", None),
    (KeyPolicy(callback_hosts=["hooks.example.com"]), "https://evil.example.com/k",
     "evil.example.com is not on the callback_hosts of key 'shop'"),
    (KeyPolicy(callback_hosts=["hooks.example.com"]), "https://hooks.example.com.evil.io/",
     "is not on the callback_hosts"),
    (KeyPolicy(callback_hosts=["*.example.com"]), "https://a.b.example.com:8443/k", None),
    (KeyPolicy(callback_hosts=["*.example.com"]), "https://example.com.evil.io/k",
     "is not on the callback_hosts"),
    (KeyPolicy(callback_hosts=["xn--bcher-kva.example"]), "https://bücher.example/k", None),
])
def test_the_key_policy_on_a_callback_url(policy, url, refused):
    reason = policy_refusal(policy, "shop", url)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason
        assert "?" not in reason and "/k" not in reason  # never the URL's path or query


def test_callback_body_is_compact_json_in_a_fixed_order():
    body = callback_body({"at": "2", "state": "queued", "id": "m1", "extra": "dropped"})
    assert body == (b'{"id":"m1","state":"queued","from":null,"code":null,'
                    b'"provider_id":null,"at":2.0}')


def test_callback_body_uses_null_for_empty_fields():
    body = json.loads(callback_body({"id": "m1", "state": "queued", "from": "", "at": "2",
                                     "code": "", "provider_id": ""}))
    assert body["from"] is None and body["code"] is None and body["provider_id"] is None


@pytest.mark.parametrize("attempts", [1, 2, 5, 20])
def test_callback_backoff_grows_and_is_capped(attempts):
    ceiling = min(300.0, 2 ** (attempts - 1))
    assert ceiling / 2 <= backoff_s(attempts) <= ceiling


@pytest.fixture
def seeded() -> Iterator[None]:
    """The module random (backoff_s draws from it) seeded, and put back afterwards."""
    saved = random.getstate()
    random.seed(5)
    yield
    random.setstate(saved)


@pytest.mark.parametrize(("attempts", "ceiling"), [
    (0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 6.0), (30, 6.0),
])
def test_backoff_bounds_with_the_settings_base_and_cap(attempts, ceiling, seeded):
    delays = [backoff_s(attempts, base_s=0.5, max_s=6.0) for _ in range(300)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 4  # jittered, not one fixed wait


def entry(**fields: str) -> dict[bytes, bytes]:
    """A stream entry as a bytes-returning client reads it."""
    return {k.encode(): v.encode() for k, v in fields.items()}


GOOD = {"id": "m1", "state": "sent", "from": "sending", "at": "1700000000.5"}


def test_event_fields_reads_a_good_entry():
    assert event_fields(entry(**GOOD)) == GOOD


@pytest.mark.parametrize(("raw", "error"), [
    (entry(**{**GOOD, "id": ""}), ValueError),
    (entry(**{**GOOD, "state": "teleported"}), ValueError),
    (entry(**{**GOOD, "at": "nan"}), ValueError),
    (entry(**{**GOOD, "at": "soon"}), ValueError),
    (entry(id="m1", state="sent"), KeyError),
    ({**entry(**GOOD), b"id": b"\xff\xfe"}, UnicodeError),
])
def test_event_fields_refuses_garbage_with_a_data_error(raw, error):
    with pytest.raises(error):
        event_fields(raw)


@pytest.mark.parametrize(("raw", "count"), [(None, 0), (b"", 0), (b"3:1700000000", 3)])
def test_attempt_count_from_the_stored_n_colon_epoch(raw, count):
    assert attempt_count(raw) == count
