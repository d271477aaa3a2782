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

    def by_provider_id(self, provider_id: str) -> str:
        """String: kirim message id for a NusaSMS messageid (for DR callbacks)."""
        return f"{self.prefix}:pid:{provider_id}"

    def guard_text(self, route: str, recipient: str, text_hash: str) -> str:
        """Sorted set: sends of one text to one recipient on a route in the rolling window."""
        return f"{self.prefix}:guard:t:{route}:{recipient}:{text_hash}"

    def guard_recipient(self, route: str, recipient: str) -> str:
        """Sorted set: sends to one recipient on a route in the rolling window."""
        return f"{self.prefix}:guard:r:{route}:{recipient}"

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

    @property
    def held(self) -> str:
        """Set: ids held while the account is paused."""
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
    def account(self) -> str:
        """Hash: account circuit (paused, reason, since)."""
        return f"{self.prefix}:account"

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
        """Hash: last CREDITS reading."""
        return f"{self.prefix}:credits"
