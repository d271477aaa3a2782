"""Queue and task names: the documented Celery contract shared by producers and workers.

A Celery client in any language can enqueue `kirim.send` on the queue for its channel with
the JSON job described in `producer.contract.Job`.
"""

from __future__ import annotations

from producer.contract import Channel


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
