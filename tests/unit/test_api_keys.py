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
from producer.core.tenants import DEFAULT_SCOPES, Scope, parse_key_entries

SHOP, BILLING = "shop-secret", "billing-secret"


def sha(secret: str) -> str:
    """The hex SHA-256 an operator puts in KIRIM_API_KEYS."""
    return hashlib.sha256(secret.encode()).hexdigest()


RAW = f" shop:{sha(SHOP)} ,, billing:{sha(BILLING).upper()},"
RING = KeyRing(parse_key_entries(RAW))


def test_parse_keeps_names_and_raw_digests_skipping_blanks_and_case():
    assert [k.name for k in RING.keys] == ["shop", "billing"]
    assert RING.keys[0].digest == hashlib.sha256(SHOP.encode()).digest()
    assert RING.keys[1].digest == hashlib.sha256(BILLING.encode()).digest()
    assert parse_key_entries("") == [] and parse_key_entries(" , ") == []
    assert all(k.scopes == DEFAULT_SCOPES for k in RING.keys)  # no scopes: send + read


@pytest.mark.parametrize(("suffix", "scopes"), [
    (":admin", {Scope.ADMIN}), (":read", {Scope.READ}), (":send+read", {Scope.SEND, Scope.READ}),
    (":send", {Scope.SEND}), ("", {Scope.SEND, Scope.READ}),
])
def test_an_entry_may_carry_scopes(suffix, scopes):
    [entry] = parse_key_entries(f"ops:{sha(SHOP)}{suffix}")
    assert entry.scopes == scopes


@pytest.mark.parametrize(("secret", "name"), [
    (SHOP, "shop"), (BILLING, "billing"), ("wrong", None), ("", None),
    (sha(SHOP), None),  # the hash itself is not the key
    (SHOP + " ", None),
])
def test_identify_names_the_key_whose_hash_matches(secret, name):
    found = RING.identify(secret)
    assert (found.name if found else None) == name


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
    assert RING.identify(SHOP).name == "shop"  # a match on the first key does not stop early
    assert len(compares) == 2 and all(len(a) == len(b) == 32 for a, b in compares)


@pytest.mark.parametrize(("name", "secret", "ok"), [
    ("shop", SHOP, True), ("billing", BILLING, True), ("shop", BILLING, False),
    ("nobody", SHOP, False), ("", "", False),
])
def test_check_is_the_named_key_only(name, secret, ok):
    found = RING.check(name, secret)
    assert (found is not None and found.name == name) is ok


def test_check_of_an_unknown_name_still_compares_once(compares):
    assert RING.check("nobody", SHOP) is None
    [(presented, against)] = compares  # against a dummy digest: costs what a wrong key costs
    assert presented == hashlib.sha256(SHOP.encode()).digest() and len(against) == 32
    assert against not in {k.digest for k in RING.keys}


@pytest.mark.parametrize("value", [
    "shop:s3cret-pasted-key",  # the key instead of its hash
    f"sh op:{sha(SHOP)}",  # a name with a space
    f"shop:{sha(SHOP)[:-1]}",  # 63 hex digits
    sha(SHOP),  # no name
    f"shop:{sha(SHOP)},billing",
    f"shop:{sha(SHOP)}:root",  # no such scope
])
def test_a_malformed_entry_is_refused_naming_the_variable_not_echoing_it(value):
    with pytest.raises(ConfigError) as caught:
        load_settings(api_keys=value)
    message = str(caught.value)
    assert "KIRIM_API_KEYS" in message
    assert "name:sha256hex" in message or "scopes" in message
    assert "s3cret" not in message and sha(SHOP)[:20] not in message  # no secret repeated


def test_well_formed_keys_load_and_parse():
    settings = load_settings(api_keys=RAW)
    ring = KeyRing.from_settings(settings)
    assert ring.identify(BILLING).name == "billing"


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


def test_kirim_keys_makes_entries_that_load_and_identify_their_key():
    import json

    from typer.testing import CliRunner

    from producer.cli import app
    from producer.core.tenants import decode_secret

    runner = CliRunner()
    made = json.loads(runner.invoke(app, ["keys", "new", "ops", "--scopes", "admin",
                                          "--json"]).output)
    shop = json.loads(runner.invoke(app, ["keys", "new", "shop", "--json"]).output)
    settings = load_settings(api_keys=f"{made['entry']},{shop['entry']}")
    ring = KeyRing.from_settings(settings)
    assert ring.identify(made["key"]).scopes == {Scope.ADMIN}
    assert ring.identify(shop["key"]).scopes == DEFAULT_SCOPES
    assert made["key"] not in made["entry"] and len(made["key"]) >= 40
    secret = runner.invoke(app, ["keys", "secret"]).output.strip()
    assert len(decode_secret(secret)) == 32
    assert load_settings(callback_secrets=f"shop:{secret}").callback_secrets_for("shop")
    token = runner.invoke(app, ["keys", "token"]).output.strip()
    assert load_settings(callback_token=token, hash_key=token).hash_key_bytes == token.encode()
    bad = runner.invoke(app, ["keys", "new", "shop", "--scopes", "root"])
    assert bad.exit_code == 2 and "scopes" in bad.output


def test_a_name_may_hold_two_keys_while_one_is_rotated():
    ring = KeyRing(parse_key_entries(f"shop:{sha(SHOP)},shop:{sha(BILLING)}"))
    assert ring.identify(SHOP).name == ring.identify(BILLING).name == "shop"
    assert ring.check("shop", BILLING) is not None and ring.check("shop", SHOP) is not None
    assert ring.check("shop", "other") is None
