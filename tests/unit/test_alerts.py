"""Pure parts of alerts, credits levels and status-callback signing (no network, no Redis)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date
from decimal import Decimal

import pytest

from worker.alerts import Alert, sms_numbers
from worker.callbacks import backoff_s, callback_body, sign
from worker.credits import balance_level, expiry_level, usable
from worker.nusasms import Credits

TODAY = date(2025, 6, 10)


@pytest.mark.parametrize(("value", "level"), [
    ("20000", "ok"), ("10000", "ok"), ("9999.5", "warn"), ("1000", "warn"), ("999", "critical"),
    ("0", "critical"), ("-3", "critical"),
])
def test_balance_level(value, level):
    assert balance_level(Decimal(value), 10000, 1000) == level


@pytest.mark.parametrize(("expires", "level"), [
    (None, "ok"), (date(2025, 7, 1), "ok"), (date(2025, 6, 17), "ok"),
    (date(2025, 6, 16), "expiring"), (date(2025, 6, 10), "expiring"),
    (date(2025, 6, 9), "expired"),
])
def test_expiry_level_warns_within_the_days_and_the_last_day_is_usable(expires, level):
    assert expiry_level(expires, TODAY, 7) == level


@pytest.mark.parametrize(("value", "expires", "ok"), [
    ("1", None, True), ("0", None, False), ("500", date(2025, 6, 10), True),
    ("500", date(2025, 6, 9), False),
])
def test_usable_balance_is_positive_and_unexpired(value, expires, ok):
    assert usable(Credits(Decimal(value), expires, ""), TODAY) is ok


def test_alert_payload_is_slack_compatible_and_structured():
    alert = Alert("balance", "critical", "warn", "credits critical", {"balance": "12"})
    body = alert.payload()
    assert body["text"] == "[kirim] credits critical"
    assert body["kind"] == "balance" and body["level"] == "critical" and body["balance"] == "12"
    assert json.loads(json.dumps(body)) == body


def test_sms_numbers_split_and_trimmed():
    assert sms_numbers(" 0812 , 62813,,") == ["0812", "62813"]
    assert sms_numbers("") == []


def test_signature_is_hmac_sha256_of_the_raw_body():
    body = callback_body({"id": "m1", "state": "sent", "from": "sending", "at": "1.5",
                          "code": "0", "provider_id": "123"})
    want = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign(b"k", body) == f"sha256={want}"
    assert json.loads(body) == {"id": "m1", "state": "sent", "from": "sending", "code": "0",
                                "provider_id": "123", "at": 1.5}


def test_callback_body_uses_null_for_empty_fields():
    body = json.loads(callback_body({"id": "m1", "state": "queued", "from": "", "at": "2",
                                     "code": "", "provider_id": ""}))
    assert body["from"] is None and body["code"] is None and body["provider_id"] is None


@pytest.mark.parametrize("attempts", [1, 2, 5, 20])
def test_callback_backoff_grows_and_is_capped(attempts):
    ceiling = min(300.0, 2 ** (attempts - 1))
    assert ceiling / 2 <= backoff_s(attempts) <= ceiling
