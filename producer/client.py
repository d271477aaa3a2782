"""The Python client: what a service needs to hand messages to kirim.

    from producer import KirimClient
    kirim = KirimClient.from_env()
    message_id = kirim.send_otp("0812-3456-7890", "Your code is 123456")
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from producer.core.broker import make_celery
from producer.core.contract import Channel, SendRequest
from producer.core.enqueue import Accepted
from producer.core.errors import InvalidMessage, KirimError, MessageNotFound
from producer.core.factory import build_core
from producer.core.media import read_media_file
from producer.core.records import MessageRecord
from producer.core.settings import Settings, load_settings


class KirimClient:
    """Validates, records and enqueues messages; reads their state back."""

    def __init__(self, settings: Settings, source: str = "python") -> None:
        self.settings = settings
        self.source = source
        self.celery = make_celery(settings)
        self.core = build_core(settings, self.celery)
        self.redis = self.core.redis
        self.keys = self.core.keys
        self.store = self.core.store
        self.publisher = self.core.requeuer.publisher
        self.requeuer = self.core.requeuer
        self.enqueuer = self.core.enqueuer

    @classmethod
    def from_env(cls, **overrides: Any) -> KirimClient:
        """A client configured from KIRIM_* variables (and .env)."""
        return cls(load_settings(**overrides))

    def send(self, channel: Channel | str, to: str, text: str, **options: Any) -> str:
        """Enqueue one message; returns its id. Raises InvalidMessage on bad input."""
        return self.submit({**options, "channel": channel, "to": to, "text": text}).id

    def submit(self, request: SendRequest | dict[str, Any]) -> Accepted:
        """Enqueue one message; returns all that kirim knows of it at once."""
        return self.enqueuer.submit(_revalidated(request), source=self.source)

    def send_sms(self, to: str, text: str, **options: Any) -> str:
        """Enqueue an SMS."""
        return self._send_as("send_sms", {"channel": Channel.SMS, "to": to, "text": text},
                             options)

    def send_wa(self, to: str, text: str, *, media_url: str | None = None,
                caption: str | None = None, sender: str | None = None,
                media_path: str | os.PathLike[str] | None = None, **options: Any) -> str:
        """Enqueue a WhatsApp message: text, or a file (`media_url`, or a local file at
        `media_path`, read and base64-encoded now, at most 512 KB) under `caption` (default:
        `text`), from the account's WhatsApp `sender` number (default: the account's).

        Files and senders go through NusaSMS API v1.0 (KIRIM_NUSASMS_API_KEY set)."""
        fixed: dict[str, Any] = {"channel": Channel.WA, "to": to, "text": text}
        for name, value in (("media_url", media_url), ("caption", caption), ("sender", sender)):
            if value is not None:
                fixed[name] = value
        if media_path is not None:
            if media_url is not None or "media_base64" in options:
                raise InvalidMessage("media_path", "give one file: media_path, media_url or"
                                     " media_base64, not several")
            fixed.update(read_media_file(media_path))
            if "file_name" in options:  # the caller names the file itself
                fixed["file_name"] = options.pop("file_name")
        return self._send_as("send_wa", fixed, options)

    def send_otp(self, to: str, text: str, validity_s: int | None = None, **options: Any) -> str:
        """Enqueue an OTP on its own lane; not sent at all after `validity_s`."""
        fixed: dict[str, Any] = {"channel": Channel.OTP, "to": to, "text": text}
        if validity_s is not None:
            fixed["otp_validity_s"] = validity_s
        return self._send_as("send_otp", fixed, options)

    def send_group(self, group: str, text: str, **options: Any) -> str:
        """Enqueue one SMS to a NusaSMS address-book group."""
        return self._send_as("send_group", {"channel": Channel.SMS, "group": group,
                                            "text": text}, options)

    def _send_as(self, method: str, fixed: dict[str, Any], options: dict[str, Any]) -> str:
        """Enqueue `fixed` plus `options`; a field given twice is an InvalidMessage."""
        # Forwarded as keywords, a clash would be Python's TypeError, not kirim's error.
        clash = next((name for name in options if name in fixed), None)
        if clash is not None:
            raise InvalidMessage(clash, f"{method}() already sets it from its own arguments;"
                                 " give it once (send() and submit() take every field)")
        return self.submit({**fixed, **options}).id

    def send_many(self, requests: Iterable[SendRequest | dict[str, Any]]
                  ) -> list[Accepted | KirimError]:
        """Enqueue many in one Redis pipeline; each item gets an Accepted or its error."""
        try:
            each = iter(requests)
        except TypeError as exc:
            raise InvalidMessage("requests", "must be an iterable of messages (dicts or"
                                 f" SendRequest), not {type(requests).__name__}") from exc
        return self.enqueuer.submit_many([_revalidated(r) for r in each], source=self.source)

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


def _revalidated(request: object) -> Any:
    """A SendRequest's fields as a dict, so they are validated again on the way in."""
    # A SendRequest can be changed after it was validated, or built without validation
    # (model_construct): the enqueuer trusts an instance, so the client hands it a dict.
    return dict(request) if isinstance(request, SendRequest) else request
