"""Log setup: JSON or console, message context, masked recipients, secrets scrubbed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from producer.core.logs import (
    SecretScrubber,
    configure_logging,
    mask_recipients,
    message_context,
    message_fields,
    secrets_of,
    use_json,
)
from producer.core.settings import Settings

PASSWORD = "Nusa-Pw-unit-9c1e"
TOKEN = "cb-token-unit-0123456789abcdefghijkl"


def settings(**extra: object) -> Settings:
    base: dict[str, object] = {
        "redis_url": "redis://:Redis%2FPw-unit@127.0.0.1:6379/0",
        "nusasms_password": SecretStr(PASSWORD), "callback_token": SecretStr(TOKEN),
        "log_format": "json", **extra}
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(settings(), stream=out, force=True)
    yield out
    structlog.reset_defaults()
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "kirim"]


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_secrets_of_settings_include_the_url_password_decoded() -> None:
    found = secrets_of(settings())
    assert PASSWORD in found and "Redis/Pw-unit" in found and TOKEN in found
    assert "" not in found


def test_scrubber_reaches_nested_values_and_reprs() -> None:
    scrub = SecretScrubber([PASSWORD])

    class Leaky:
        def __repr__(self) -> str:
            return f"Leaky(password={PASSWORD})"

    event = scrub(None, "info", {"event": f"login {PASSWORD}", "form": {"password": PASSWORD},
                                 "args": [PASSWORD, 3], "obj": Leaky(), "n": 5, "ok": True})
    assert PASSWORD not in json.dumps(event)
    assert event["form"] == {"password": "***"} and event["n"] == 5 and event["ok"] is True


def test_raw_recipient_under_a_recipient_key_is_masked() -> None:
    event = mask_recipients(None, "info", {"to": "6281234567890", "gsm": "+6281234567890",
                                           "id": "6281234567890"})
    assert event["to"] == "628123****890" and event["gsm"] == "628123****890"
    assert event["id"] == "6281234567890"  # only recipient-like keys


def test_message_fields_from_a_raw_payload_or_a_group() -> None:
    assert message_fields({"id": "m1", "channel": "otp", "to": "6281234567890"}) == {
        "message_id": "m1", "channel": "otp", "to": "628123****890"}
    assert message_fields({"id": "m2", "channel": "sms", "group": "Pelanggan"})["to"] == (
        "group:Pelanggan")
    assert message_fields("garbage") == {"message_id": "", "channel": "", "to": ""}


def test_json_lines_carry_message_context_and_never_a_secret(stream: io.StringIO) -> None:
    log = structlog.get_logger("kirim.test")
    with message_context({"id": "m1", "channel": "sms", "to": "6281234567890"}):
        log.info("provider_reply", code=0)
        logging.getLogger("httpx").info("POST with password=%s", PASSWORD)
    log.info("outside")
    got = lines(stream)
    assert got[0]["event"] == "provider_reply" and got[0]["message_id"] == "m1"
    assert got[0]["to"] == "628123****890" and got[0]["channel"] == "sms"
    assert got[1]["logger"] == "httpx" and got[1]["message_id"] == "m1"
    assert got[1]["event"] == "POST with password=***"
    assert "message_id" not in got[2]
    assert PASSWORD not in stream.getvalue()


def test_exception_tracebacks_are_scrubbed(stream: io.StringIO) -> None:
    try:
        raise RuntimeError(f"auth failed for {PASSWORD}")
    except RuntimeError:
        logging.getLogger("celery.app.trace").exception("Task failed")
    assert "auth failed for ***" in stream.getvalue() and PASSWORD not in stream.getvalue()


@pytest.mark.parametrize(("fmt", "tty", "expected"), [
    ("json", True, True), ("console", False, False), ("auto", True, False), ("auto", False, True),
])
def test_format_follows_setting_then_terminal(fmt: str, tty: bool, expected: bool) -> None:
    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    assert use_json(fmt, Stream()) is expected
