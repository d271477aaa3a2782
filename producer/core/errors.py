"""kirim's exception root and the errors a producer sees.

KirimError
 ├── ConfigError            a setting is missing or invalid (names the variable)
 ├── InvalidMessage         a request failed validation (names the field and why)
 ├── IdempotencyConflict    same idempotency key, different body
 ├── RecipientLimited       the recipient guard refuses an OTP now (says when it could go)
 ├── MessageNotFound        no record for that id
 ├── StoreUnavailable       Redis cannot be reached; nothing was written
 └── TextErased             a dead OTP cannot be replayed: its text was erased when it died
"""

from __future__ import annotations


class KirimError(Exception):
    """Root of every error kirim raises on purpose."""


class ConfigError(KirimError):
    """A setting is missing or invalid; the message names the environment variable."""


class InvalidMessage(KirimError, ValueError):
    """A message failed validation; `field` names what was wrong."""

    def __init__(self, field: str, reason: str, value: object = None) -> None:
        self.field = field
        self.reason = reason
        self.value = value
        super().__init__(f"{field}: {reason}")


class IdempotencyConflict(KirimError):
    """The idempotency key was used before with a different body."""

    def __init__(self, key: str, first_id: str) -> None:
        self.key = key
        self.first_id = first_id
        super().__init__(
            f"idempotency key {key!r} was already used for message {first_id} with a different"
            " body; use a new key for a new message"
        )


class RecipientLimited(KirimError):
    """The recipient guard refuses this message now; `retry_at` says when it could be sent."""

    def __init__(self, reason: str, retry_at: float) -> None:
        self.reason = reason
        self.retry_at = retry_at
        super().__init__(f"recipient limit reached ({reason}); it could be sent at {retry_at:.0f}")


class MessageNotFound(KirimError, LookupError):
    """No message record has that id (it never existed or its TTL ran out)."""


class StoreUnavailable(KirimError):
    """Redis could not be reached; nothing was written."""


class TextErased(KirimError):
    """A dead OTP cannot be sent again: its text was erased when it died (the code is a
    secret, not kept once it is of no use). The user requests a new code instead."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(
            f"message {message_id} is an OTP whose text was erased when it died, so it cannot"
            " be replayed; ask the user to request a new code")


class AliasTaken(KirimError):
    """The drop-in's freshly drawn 18-digit id is already in use (rare): nothing was written."""
