"""kirim's producer side: the job contract, validation, and the client services use."""

from producer.client import KirimClient
from producer.core.contract import Channel, SendRequest, State
from producer.core.errors import (
    IdempotencyConflict,
    InvalidMessage,
    KirimError,
    MessageNotFound,
    RecipientLimited,
)

__all__ = [
    "Channel",
    "IdempotencyConflict",
    "InvalidMessage",
    "KirimClient",
    "KirimError",
    "MessageNotFound",
    "RecipientLimited",
    "SendRequest",
    "State",
]
