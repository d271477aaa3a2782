"""API keys (producer/api/auth.py): only hashes are configured, every key is compared in
constant time, and a bad KIRIM_API_KEYS is refused without echoing what was pasted."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from starlette.requests import Request

from producer.api import auth
from producer.api.auth import KeyRing, presented_key
from producer.core.errors import ConfigError
from producer.core.settings import load_settings

SHOP, BILLING = "shop-secret", "billing-secret"


def sha(secret: str) -> str:
    """The hex SHA-256 an operator puts in KIRIM_API_KEYS."""
    return hashlib.sha256(secret.encode()).hexdigest()


RAW = f" shop:{sha(SHOP)} ,, billing:{sha(BILLING).upper()},"
RING = KeyRing.parse(RAW)


def test_parse_keeps_names_and_raw_digests_skipping_blanks_and_case():
    assert [k.name for k in RING.keys] == ["shop", "billing"]
    assert RING.keys[0].digest == hashlib.sha256(SHOP.encode()).digest()
    assert RING.keys[1].digest == hashlib.sha256(BILLING.encode()).digest()
    assert KeyRing.parse("").keys == [] and KeyRing.parse(" , ").keys == []


@pytest.mark.parametrize(("secret", "name"), [
    (SHOP, "shop"), (BILLING, "billing"), ("wrong", None), ("", None),
    (sha(SHOP), None),  # the hash itself is not the key
    (SHOP + " ", None),
])
def test_identify_names_the_key_whose_hash_matches(secret, name):
    assert RING.identify(secret) == name


def test_no_keys_identifies_nobody():
    assert KeyRing([]).identify(SHOP) is None


@pytest.fixture
def compares(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every hmac.compare_digest call auth makes, recorded (the real compare still answers)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    return calls


def test_identify_compares_every_key_in_constant_time(compares):
    assert RING.identify(SHOP) == "shop"  # a match on the first key does not stop early
    assert len(compares) == 2 and all(len(a) == len(b) == 32 for a, b in compares)


@pytest.mark.parametrize(("name", "secret", "ok"), [
    ("shop", SHOP, True), ("billing", BILLING, True), ("shop", BILLING, False),
    ("nobody", SHOP, False), ("", "", False),
])
def test_check_is_the_named_key_only(name, secret, ok):
    assert RING.check(name, secret) is ok


def test_check_of_an_unknown_name_still_compares_once(compares):
    assert RING.check("nobody", SHOP) is False
    [(presented, against)] = compares  # against a dummy digest: costs what a wrong key costs
    assert presented == hashlib.sha256(SHOP.encode()).digest() and len(against) == 32
    assert against not in {k.digest for k in RING.keys}


@pytest.mark.parametrize("value", [
    "shop:s3cret-pasted-key",  # the key instead of its hash
    f"sh op:{sha(SHOP)}",  # a name with a space
    f"shop:{sha(SHOP)[:-1]}",  # 63 hex digits
    sha(SHOP),  # no name
    f"shop:{sha(SHOP)},billing",
])
def test_a_malformed_entry_is_refused_naming_the_variable_not_echoing_it(value):
    with pytest.raises(ConfigError) as caught:
        load_settings(api_keys=value)
    message = str(caught.value)
    assert "KIRIM_API_KEYS" in message and "name:sha256hex" in message
    assert "s3cret" not in message and sha(SHOP)[:20] not in message  # no secret repeated


def test_well_formed_keys_load_and_parse():
    settings = load_settings(api_keys=RAW)
    ring = KeyRing.parse(settings.api_keys.get_secret_value())
    assert ring.identify(BILLING) == "billing"


def request(*headers: tuple[str, str]) -> Request:
    """A request with only these headers (no app, no network)."""
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": b"",
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers]})


@pytest.mark.parametrize(("headers", "key"), [
    ((("Authorization", "Bearer abc"),), "abc"),
    ((("Authorization", "bearer  abc "),), "abc"),
    ((("X-API-Key", "xyz"),), "xyz"),
    ((("Authorization", "Bearer abc"), ("X-API-Key", "xyz")), "abc"),  # Bearer wins
    ((("Authorization", "Bearer "), ("X-API-Key", "xyz")), "xyz"),  # an empty Bearer
    ((("Authorization", "Basic abc"),), None),
    ((("X-API-Key", ""),), None),
    ((), None),
])
def test_presented_key_from_bearer_or_x_api_key(headers, key):
    assert presented_key(request(*headers)) == key
