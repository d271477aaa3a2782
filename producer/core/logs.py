"""Structured logs for every kirim process: structlog over stdlib logging, configured once.

JSON lines when stdout is not a terminal (or `KIRIM_LOG_FORMAT=json`), readable console lines
when it is. Celery's and uvicorn's own stdlib records go through the same processors, so they
are JSON too and are scrubbed too. A line about a message carries `message_id`, `channel` and
a masked `to` (bound per task with `message_context`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from producer.core.recipient import mask_recipient
from producer.core.settings import Settings

MASK = "***"
# Keys whose value is a phone number: masked if a raw number slipped into a log call.
_RECIPIENT_KEYS = frozenset({"to", "recipient", "gsm", "destination", "msisdn", "number"})
# A secret shorter than this would mask innocent words ("demo" is the sandbox's password
# and a common word in test logs, yet still masked: 4 is the floor).
_MIN_SECRET_CHARS = 4

# ProcessorFormatter's own bookkeeping keys (the LogRecord), removed before rendering.
_META = frozenset({"_record", "_from_structlog"})

_HANDLER_NAME = "kirim"
_configured = False


def secrets_of(settings: Settings) -> list[str]:
    """Every configured secret value a log line must never contain."""
    found = [
        settings.nusasms_password.get_secret_value() if settings.nusasms_password else "",
        settings.nusasms_api_key.get_secret_value() if settings.nusasms_api_key else "",
        settings.callback_token.get_secret_value(),
        settings.hash_key.get_secret_value(),
        unquote(urlsplit(settings.redis_url).password or ""),
        settings.redis_sentinel_password.get_secret_value(),
    ]
    for entry in settings.key_entries:
        found.append(entry.digest.hex())  # the stored hash is secret-ish too
    for item in settings.callback_secrets.get_secret_value().split(","):
        found.extend(s.strip() for s in item.partition(":")[2].split("|"))
    return sorted({s for s in found if len(s) >= _MIN_SECRET_CHARS}, key=len, reverse=True)


class SecretScrubber:
    """Processor: replaces every configured secret in every string of the event with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s for s in secrets if s]

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        if not self.secrets:
            return event
        return {key: value if key in _META else self._clean(value)
                for key, value in event.items()}

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, Mapping):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        # Anything else is rendered by its repr, which may hold a secret: scrub that text.
        return self._clean(repr(value))


def mask_recipients(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """Processor: a raw phone number under a recipient-like key is masked."""
    for key in _RECIPIENT_KEYS.intersection(event):
        value = event[key]
        if isinstance(value, str) and value.lstrip("+").isdigit():
            event[key] = mask_recipient(value.lstrip("+"))
    return event


def message_fields(raw: Any) -> dict[str, str]:
    """message_id, channel and masked `to` of a job (or a raw task payload) for log context."""
    get = raw.get if isinstance(raw, Mapping) else (lambda k, d=None: getattr(raw, k, d))
    fields = {"message_id": str(get("id", "") or "")}
    channel = get("channel", None)
    fields["channel"] = str(getattr(channel, "value", channel) or "")
    to, group = get("to", None), get("group", None)
    fields["to"] = mask_recipient(str(to)) if to else f"group:{group}" if group else ""
    return fields


@contextmanager
def message_context(raw: Any) -> Iterator[None]:
    """Every log line inside the block (this thread) carries the message's id, channel, to."""
    with structlog.contextvars.bound_contextvars(**message_fields(raw)):
        yield


def use_json(log_format: str, stream: Any = None) -> bool:
    """`json`/`console` as asked; `auto` means JSON unless the stream is a terminal."""
    if log_format in ("json", "console"):
        return log_format == "json"
    isatty = getattr(stream or sys.stdout, "isatty", None)
    return not (isatty and isatty())


def shared_processors(settings: Settings) -> list[Processor]:
    """Processors for structlog and stdlib records alike; the scrubber runs last."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_recipients,
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
        SecretScrubber(secrets_of(settings)),
    ]


def configure_logging(settings: Settings, level: int | str = logging.INFO,
                      stream: Any = None, force: bool = False) -> None:
    """Set up structlog and the stdlib root logger for this process (once, unless `force`)."""
    global _configured
    if _configured and not force:
        return
    shared = shared_processors(settings)
    renderer: Processor = (structlog.processors.JSONRenderer()
                           if use_json(settings.log_format, stream)
                           else structlog.dev.ConsoleRenderer(colors=False))
    formatter = structlog.stdlib.ProcessorFormatter(
        # No ExtraAdder: Celery's task-failure records carry the task's args as `extra`.
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace our own handler only: a host's (pytest's capture, say) stays.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through ours, as JSON
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    structlog.configure(
        # A line below the level is dropped first, before any processor works on it (a worker
        # at WARNING otherwise built, timestamped and scrubbed every INFO line it then dropped).
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _configured = True
