"""The API v1.0 settings: which API WhatsApp uses, the key's secrecy, clear start-up errors."""

from __future__ import annotations

import pytest

from producer.core.errors import ConfigError
from producer.core.logs import secrets_of
from producer.core.settings import Settings, load_settings

KEY = "v1-Key-0123456789abcdef"
CREDS = {"nusasms_user": "u", "nusasms_password": "p"}


@pytest.mark.parametrize(("fields", "resolved"), [
    ({}, "v3"),
    ({"nusasms_api_key": KEY}, "v1"),
    ({"nusasms_api_key": "   "}, "v3"),
    ({"nusasms_api_key": KEY, "wa_api": "v3"}, "v3"),
    ({"nusasms_api_key": KEY, "wa_api": "v1"}, "v1"),
])
def test_wa_api_defaults_to_v1_when_a_key_is_set(fields: dict[str, str], resolved: str) -> None:
    assert Settings(**CREDS, **fields).wa_api_resolved == resolved


def test_wa_api_v1_without_a_key_stops_a_worker_saying_what_to_set() -> None:
    settings = Settings(**CREDS, wa_api="v1")
    with pytest.raises(ConfigError, match="KIRIM_WA_API=v1 but KIRIM_NUSASMS_API_KEY is not set"):
        settings.require_provider()


def test_a_bad_wa_api_or_v1_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIRIM_WA_API", "v2")
    with pytest.raises(ConfigError, match="KIRIM_WA_API"):
        load_settings()
    monkeypatch.setenv("KIRIM_WA_API", "v1")
    monkeypatch.setenv("KIRIM_NUSASMS_V1_URL", "api.nusasms.com/nusasms_api/1.0")
    with pytest.raises(ConfigError, match=r"KIRIM_NUSASMS_V1_URL: .*http"):
        load_settings()


def test_the_v1_url_defaults_to_the_provider_and_loses_a_trailing_slash() -> None:
    assert Settings().nusasms_v1_url == "https://api.nusasms.com/nusasms_api/1.0"
    assert Settings(nusasms_v1_url="http://x.test/1.0/").nusasms_v1_url == "http://x.test/1.0"


def test_the_key_is_secret_in_repr_and_masked_in_logs() -> None:
    settings = Settings(**CREDS, nusasms_api_key=KEY)
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert KEY in secrets_of(settings)
