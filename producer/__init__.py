"""kirim's producer side: the job contract, validation, and the client services use."""

from producer.client import KirimClient
from producer.contract import Channel, SendRequest, State
from producer.errors import (
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
