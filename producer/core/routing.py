"""Queue and task names: the documented Celery contract shared by producers and workers.

A Celery client in any language can enqueue `kirim.send` on the queue for its channel with
the JSON job described in `producer.core.contract.Job`.
"""

from __future__ import annotations

from enum import StrEnum

from producer.core.contract import Channel


class Queues:
    """Queue names. Priority comes from separate queues and separate worker deployments."""

    OTP = "otp"
    SMS = "sms"
    WA = "wa"
    REPORTS = "reports"
    MAINTENANCE = "maintenance"

    SENDING = (OTP, SMS, WA)
    ALL = (OTP, SMS, WA, REPORTS, MAINTENANCE)


class Tasks:
    """Task names (explicit, stable across refactors)."""

    SEND = "kirim.send"
    # On sms/wa: several messages enqueued together, args [[[job, dispatch], ...]]; each is
    # claimed, marked and recorded on its own, exactly as kirim.send does (worker/batch.py).
    SEND_BATCH = "kirim.send_batch"
    RELEASE_DUE = "kirim.release_due"
    SWEEP_OUTBOX = "kirim.sweep_outbox"
    SWEEP_LEASES = "kirim.sweep_leases"
    POLL_CREDITS = "kirim.poll_credits"
    WATCH_ACCOUNT = "kirim.watch_account"
    DELIVER_ALERT = "kirim.deliver_alert"
    DRAIN_CALLBACKS = "kirim.drain_callbacks"
    POLL_DR = "kirim.poll_dr"  # beat, on `reports`: poll DR for due sent messages
    APPLY_DR = "kirim.apply_dr"  # on `reports`: a pushed DR, args [fields: dict of str]
    FORWARD_INBOUND = "kirim.forward_inbound"  # on `reports`: POST an inbound SMS to a webhook


_QUEUE_BY_CHANNEL = {Channel.OTP: Queues.OTP, Channel.SMS: Queues.SMS, Channel.WA: Queues.WA}


def queue_for(channel: Channel) -> str:
    """The sending queue for a channel: OTP has its own lane."""
    return _QUEUE_BY_CHANNEL[channel]


class Circuit(StrEnum):
    """The account's circuits: each stops the lanes that depend on it, for its own cause."""

    ACCOUNT = "account"  # credentials, IP, a malformed request (-5, -40, -22): every lane
    SMS = "sms"  # the SMS wallet is empty or expired (-2, -7 on SMS/OTP): sms and otp
    WA = "wa"  # the WhatsApp wallet is empty or expired (-2, -7 on WA): wa
    OTP = "otp"  # the account has no OTP route (-10 on an otp=Y send): otp
    SENDER = "sender"  # the configured sender is refused (-34): the lanes that send it


# What each lane depends on, in the order a claim checks them. The sender goes with SMS
# and OTP sends only: the legacy WhatsApp endpoint takes no sender.
LANE_CIRCUITS: dict[Channel, tuple[Circuit, ...]] = {
    Channel.OTP: (Circuit.ACCOUNT, Circuit.SMS, Circuit.OTP, Circuit.SENDER),
    Channel.SMS: (Circuit.ACCOUNT, Circuit.SMS, Circuit.SENDER),
    Channel.WA: (Circuit.ACCOUNT, Circuit.WA),
}

# The status table's pause scopes (worker.nusasms.Scope values) and the circuit each opens.
_SCOPE_CIRCUIT = {"account": Circuit.ACCOUNT, "otp_route": Circuit.OTP,
                  "sender": Circuit.SENDER}


def circuit_for(scope: str, channel: Channel) -> Circuit:
    """The circuit a pause of `scope` opens for a message of `channel`."""
    if scope == "product":
        return Circuit.WA if channel == Channel.WA else Circuit.SMS
    if scope == "sender" and channel == Channel.WA:
        # A WhatsApp sender refused (API v1.0) stops the WA lane that sends it; the sender
        # circuit is the SMS sender's, and SMS and OTP must go on.
        return Circuit.WA
    return _SCOPE_CIRCUIT.get(scope, Circuit.ACCOUNT)  # an unscoped pause stops everything
