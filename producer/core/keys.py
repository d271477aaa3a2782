"""Every Redis key kirim uses, in one place (prefix configurable)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix; methods take the variable part."""

    prefix: str = "kirim"

    def message(self, message_id: str) -> str:
        """Hash: the message record."""
        return f"{self.prefix}:msg:{message_id}"

    def timeline(self, message_id: str) -> str:
        """List: the message's transitions, oldest first."""
        return f"{self.prefix}:msg:{message_id}:timeline"

    def idempotency(self, api_key_name: str, key: str) -> str:
        """String: message id first created with that idempotency key."""
        return f"{self.prefix}:idem:{api_key_name}:{key}"

    def alias(self, nusasms_id: str) -> str:
        """String: kirim message id for the drop-in's 18-digit messageid (aliases.py)."""
        return f"{self.prefix}:nid:{nusasms_id}"

    def by_provider_id(self, provider_id: str) -> str:
        """String: kirim message id for a NusaSMS messageid (for DR callbacks)."""
        return f"{self.prefix}:pid:{provider_id}"

    def auth_failures(self, address: str) -> str:
        """String with TTL: failed API authentications from one client address this minute."""
        return f"{self.prefix}:authfail:{address}"

    def key_rate(self, key_name: str) -> str:
        """String: an API key's GCRA limiter (its theoretical arrival time, µs)."""
        return f"{self.prefix}:keyrate:{key_name}"

    def guard_recipient(self, route: str, recipient: str) -> str:
        """Sorted set: sends to one recipient on a route in the rolling window (member
        "<text_hash>:<message id>", or "<text_hash>:provider-77:<i>" after a -77; score: µs),
        both the recipient's window and each of its texts' (producer/core/guard.py)."""
        return f"{self.prefix}:guard:r:{route}:{recipient}"

    @property
    def guard_folded(self) -> str:
        """String: set once a pass of `guard.fold_text_windows` found nothing of the layout
        before to fold; starting workers then skip the scan."""
        return f"{self.prefix}:guard:folded"

    def guard_block(self, route: str, recipient: str) -> str:
        """String with TTL: recipient blocked after the provider itself answered -77/-78."""
        return f"{self.prefix}:guard:block:{route}:{recipient}"

    @property
    def rate_limit(self) -> str:
        """String: the GCRA theoretical arrival time of the account."""
        return f"{self.prefix}:rate"

    @property
    def outbox(self) -> str:
        """Sorted set: ids whose task may not have been published yet (score: when)."""
        return f"{self.prefix}:outbox"

    @property
    def deferred(self) -> str:
        """Sorted set: deferred and scheduled ids (score: when to release)."""
        return f"{self.prefix}:deferred"

    @property
    def sending(self) -> str:
        """Sorted set: ids being sent (score: when the sender's lease runs out)."""
        return f"{self.prefix}:sending"

    def held(self, circuit: str) -> str:
        """Set: ids held while one circuit (producer.core.routing.Circuit) is paused."""
        return f"{self.prefix}:held:{circuit}"

    @property
    def legacy_held(self) -> str:
        """Set: ids held by the one account-wide pause of versions before the circuits."""
        return f"{self.prefix}:held"

    @property
    def dr_pending(self) -> str:
        """Sorted set: sent ids awaiting a final delivery report (score: next poll)."""
        return f"{self.prefix}:dr"

    @property
    def unknown(self) -> str:
        """Sorted set: ambiguous ids for an operator (score: when)."""
        return f"{self.prefix}:unknown"

    @property
    def dead_letters(self) -> str:
        """Stream: dead letters."""
        return f"{self.prefix}:dlq"

    @property
    def alerts(self) -> str:
        """Hash: the current level of each alert kind (and notes for the next alert)."""
        return f"{self.prefix}:alerts"

    @property
    def dr_letters(self) -> str:
        """Hash: how many delivery reports came with each letter outside the known ones."""
        return f"{self.prefix}:dr:letters"

    @property
    def inbound(self) -> str:
        """Stream: inbound SMS pushed by NusaSMS."""
        return f"{self.prefix}:inbound"

    def inbound_seen(self, inbound_id: str) -> str:
        """String with TTL: an inbound SMS id already appended (NusaSMS may push twice)."""
        return f"{self.prefix}:inbound:seen:{inbound_id}"

    @property
    def redbeat(self) -> str:
        """Prefix of RedBeat's schedule and leader-lock keys."""
        return f"{self.prefix}:redbeat:"

    def circuit(self, name: str) -> str:
        """Hash: one circuit of the account (paused, reason, code, since)."""
        return f"{self.prefix}:circuit:{name}"

    @property
    def events(self) -> str:
        """Stream: state changes of messages that have a callback_url (for status callbacks)."""
        return f"{self.prefix}:events"

    @property
    def provider_codes(self) -> str:
        """Hash: how many replies of each provider status code (e.g. -77, -78) came back."""
        return f"{self.prefix}:codes"

    @property
    def credits(self) -> str:
        """Hash: last CREDITS reading of the SMS wallet."""
        return f"{self.prefix}:credits"

    def credits_for(self, product: str) -> str:
        """Hash: last CREDITS reading of one product's wallet (sms, wa)."""
        return self.credits if product == "sms" else f"{self.prefix}:credits:{product}"

    @property
    def dr_rate_limit(self) -> str:
        """String: the GCRA theoretical arrival time of DR pulls (their own rate slice)."""
        return f"{self.prefix}:dr:rate"

    @property
    def dr_pause(self) -> str:
        """Hash: DR polling paused account-wide (until, pause_s, reason, since)."""
        return f"{self.prefix}:dr:pause"

    @property
    def callback_lanes(self) -> str:
        """Hash: message id → its unfinished status-callback event ids, oldest first."""
        return f"{self.prefix}:callbacks:lanes"

    @property
    def callback_due(self) -> str:
        """Sorted set: message ids with status callbacks to POST (score: when next)."""
        return f"{self.prefix}:callbacks:due"

    @property
    def callback_attempts(self) -> str:
        """Hash: event id → failed POSTs so far and when the next may go ("n:epoch")."""
        return f"{self.prefix}:callbacks:attempts"

    @property
    def callback_stats(self) -> str:
        """Hash: finished status-callback events by result (delivered, dropped, poisoned…)."""
        return f"{self.prefix}:callbacks:stats"

    @property
    def callback_sweep(self) -> str:
        """String: where the next XAUTOCLAIM sweep of the callbacks group starts."""
        return f"{self.prefix}:callbacks:sweep"

    def callback_breaker(self, host: str) -> str:
        """Hash: the circuit breaker of one callback receiver host ("host:port")."""
        return f"{self.prefix}:callbacks:breaker:{host}"
