"""Which circuit a provider pause opens, by scope and lane (producer.core.routing)."""

from __future__ import annotations

from producer.core.contract import Channel
from producer.core.routing import LANE_CIRCUITS, Circuit, circuit_for


def test_a_refused_whatsapp_sender_stops_the_wa_lane_and_not_sms() -> None:
    assert circuit_for("sender", Channel.WA) == Circuit.WA
    assert Circuit.WA in LANE_CIRCUITS[Channel.WA]
    assert Circuit.WA not in LANE_CIRCUITS[Channel.SMS]
    assert Circuit.WA not in LANE_CIRCUITS[Channel.OTP]


def test_the_sms_sender_and_wallets_keep_their_circuits() -> None:
    assert circuit_for("sender", Channel.SMS) == Circuit.SENDER
    assert circuit_for("sender", Channel.OTP) == Circuit.SENDER
    assert circuit_for("product", Channel.WA) == Circuit.WA
    assert circuit_for("product", Channel.OTP) == Circuit.SMS
    assert circuit_for("otp_route", Channel.OTP) == Circuit.OTP
    assert circuit_for("account", Channel.WA) == Circuit.ACCOUNT
