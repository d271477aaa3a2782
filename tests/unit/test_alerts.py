"""Pure parts of alerts and credits levels (no network, no Redis); status callbacks' are in
test_callbacks.py."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from worker.alerts import Alert, sms_numbers
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
