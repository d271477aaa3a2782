"""Pure parts of status callbacks (worker/callbacks.py): the signature, the body, the
backoff and reading a stream entry. The drain itself runs in tests/integration/
test_status_callbacks.py and test_callback_isolation.py, against real receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Iterator

import pytest

from worker.callbacks import attempt_count, backoff_s, callback_body, event_fields, sign

# RFC 4231, test case 2: HMAC-SHA-256 of "what do ya want for nothing?" under the key "Jefe".
RFC4231_KEY, RFC4231_DATA = b"Jefe", b"what do ya want for nothing?"
RFC4231_MAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_signature_matches_the_rfc_4231_vector():
    assert sign(RFC4231_KEY, RFC4231_DATA) == f"sha256={RFC4231_MAC}"


def test_signature_is_hmac_sha256_of_the_raw_body():
    body = callback_body({"id": "m1", "state": "sent", "from": "sending", "at": "1.5",
                          "code": "0", "provider_id": "123"})
    want = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign(b"k", body) == f"sha256={want}"
    assert json.loads(body) == {"id": "m1", "state": "sent", "from": "sending", "code": "0",
                                "provider_id": "123", "at": 1.5}


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
