"""The Python client: what a service needs to hand messages to kirim.

    from producer import KirimClient
    kirim = KirimClient.from_env()
    message_id = kirim.send_otp("0812-3456-7890", "Your code is 123456")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis import Redis

from producer.broker import make_celery
from producer.contract import Channel, SendRequest
from producer.dispatch import Dispatcher
from producer.enqueue import Accepted, Enqueuer
from producer.errors import KirimError, MessageNotFound
from producer.guard import GuardLimits, RecipientGuard
from producer.keys import Keys
from producer.publisher import Publisher
from producer.records import MessageRecord, MessageStore
from producer.settings import Settings, load_settings


class KirimClient:
    """Validates, records and enqueues messages; reads their state back."""

    def __init__(self, settings: Settings, source: str = "python") -> None:
        self.settings = settings
        self.source = source
        self.redis = Redis.from_url(settings.redis_url, socket_timeout=10,
                                    socket_connect_timeout=5, health_check_interval=10)
        self.keys = Keys(settings.key_prefix)
        self.celery = make_celery(settings)
        self.store = MessageStore(self.redis, self.keys, settings.message_ttl_s)
        self.publisher = Publisher(self.celery)
        self.dispatcher = Dispatcher(self.store, self.publisher, settings.visibility_timeout_s)
        guard = RecipientGuard(self.redis, self.keys, GuardLimits(
            settings.guard_window_s, settings.guard_same_text_limit,
            settings.guard_per_recipient_limit)) if settings.guard_enabled else None
        self.enqueuer = Enqueuer(settings, self.redis, self.store, self.dispatcher, guard)

    @classmethod
    def from_env(cls, **overrides: Any) -> KirimClient:
        """A client configured from KIRIM_* variables (and .env)."""
        return cls(load_settings(**overrides))

    def send(self, channel: Channel | str, to: str, text: str, **options: Any) -> str:
        """Enqueue one message; returns its id. Raises InvalidMessage on bad input."""
        return self.submit(SendRequest.model_validate(
            {"channel": channel, "to": to, "text": text, **options})).id

    def submit(self, request: SendRequest | dict[str, Any]) -> Accepted:
        """Enqueue one message; returns all that kirim knows of it at once."""
        return self.enqueuer.submit(request, source=self.source)

    def send_sms(self, to: str, text: str, **options: Any) -> str:
        """Enqueue an SMS."""
        return self.send(Channel.SMS, to, text, **options)

    def send_wa(self, to: str, text: str, **options: Any) -> str:
        """Enqueue a WhatsApp message."""
        return self.send(Channel.WA, to, text, **options)

    def send_otp(self, to: str, text: str, validity_s: int | None = None, **options: Any) -> str:
        """Enqueue an OTP on its own lane; not sent at all after `validity_s`."""
        return self.send(Channel.OTP, to, text, otp_validity_s=validity_s, **options)

    def send_group(self, group: str, text: str, **options: Any) -> str:
        """Enqueue one SMS to a NusaSMS address-book group."""
        return self.submit({"channel": "sms", "group": group, "text": text, **options}).id

    def send_many(self, requests: Iterable[SendRequest | dict[str, Any]]
                  ) -> list[Accepted | KirimError]:
        """Enqueue many in one Redis pipeline; each item gets an Accepted or its error."""
        return self.enqueuer.submit_many(list(requests), source=self.source)

    def status(self, message_id: str) -> MessageRecord:
        """The message's record and timeline."""
        record = self.store.get(message_id)
        if record is None:
            raise MessageNotFound(f"no message {message_id!r} (unknown id, or older than"
                                  f" KIRIM_MESSAGE_TTL_S={self.settings.message_ttl_s})")
        return record

    def close(self) -> None:
        """Release connections."""
        self.redis.close()
        self.celery.close()

    def __enter__(self) -> KirimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
