"""The NusaSMS client's errors (httpx's errors become these in `transport.httpx_errors` only).

Every error carries `.action` (what the caller does next) and `.operation` (which call
failed). Decide from `.action`, never from the message text or a status code.

NusaSMSError                      root (never raised itself)
 ├── RequestNotSent        RETRY    the request never reached NusaSMS: connect error or
 │                                  timeout, pool timeout, a write that did not finish
 ├── OutcomeUnknown        UNKNOWN  a send went out and no readable reply came back: read
 │                                  timeout, connection dropped mid-reply. NEVER resend blindly
 ├── ReplyLost             RETRY    the same for CREDITS / DR queries: asking again is harmless
 ├── ClientMisconfigured   PAUSE    it cannot be sent as configured: bad URL or scheme, the
 │                                  proxy refused the tunnel, a redirect loop
 ├── ProviderHTTPError     RETRY    HTTP 5xx and 408 (a 504 on a send: UNKNOWN)
 │    │                    PAUSE    3xx and other 4xx: base URL, proxy or auth is wrong
 │    └── ProviderThrottled RETRY   HTTP 429; `.retry_after_s` from Retry-After when given
 ├── ProtocolError         UNKNOWN  a 2xx whose body is not a reply (empty, HTML, truncated)
 │                                  on a send; RETRY on CREDITS / DR
 └── ProviderRejected      (table)  CREDITS / DR answered with a status code such as -5.
                                    A send's status code is a result, not an error.

No message contains the password or the v1.0 API key: every text that came from outside
goes through `scrub`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, quote_plus

from worker.nusasms.status import Action, StatusInfo

EXCERPT_CHARS = 200

# A reply that echoes the request would carry the password under its field name.
_KEYED_SECRET = re.compile(
    r"(?i)((?:password|passwd|pwd|api_?key)\"?\s*[=:]\s*\"?)[^&\s\"'<,}]*"
)
_XML_SECRET = re.compile(r"(?i)(<(password|passwd|pwd|api_?key)>)[^<]*")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every known secret (raw or URL-encoded) and any password=… value masked."""
    for secret in secrets:
        if secret:
            for form in {secret, quote_plus(secret), quote(secret, safe="")}:
                text = text.replace(form, "***")
    return _XML_SECRET.sub(r"\1***", _KEYED_SECRET.sub(r"\1***", text))


def excerpt(text: str, secrets: tuple[str, ...] = (), limit: int = EXCERPT_CHARS) -> str:
    """A short one-line, scrubbed start of `text` for an error message."""
    # Scrub before cutting, so a secret split by the cut cannot leak its first half.
    flat = " ".join(scrub(text, secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _rebuild(cls: type[NusaSMSError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class NusaSMSError(Exception):
    """Root of the client's errors; `.action` says what to do with the message."""

    action: Action = Action.UNKNOWN

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail
        super().__init__(f"NusaSMS {operation}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive pickle's default (args-only) rebuild.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class RequestNotSent(NusaSMSError):
    """The request never reached NusaSMS: sending it again is safe."""

    action = Action.RETRY

    def __init__(self, operation: str, cause: str) -> None:
        super().__init__(operation, f"the request never reached NusaSMS ({cause}); safe to retry")


class OutcomeUnknown(NusaSMSError):
    """A send went out but no reply was read: NusaSMS may have the message. Never resend."""

    action = Action.UNKNOWN

    def __init__(self, operation: str, cause: str) -> None:
        super().__init__(
            operation,
            f"the request was sent but no reply was read ({cause}); NusaSMS may have accepted"
            " the message: do not resend it, settle it from delivery reports or by an operator",
        )


class ReplyLost(NusaSMSError):
    """A CREDITS or DR query went out but no reply was read: asking again is harmless."""

    action = Action.RETRY

    def __init__(self, operation: str, cause: str) -> None:
        super().__init__(operation, f"the query was sent but no reply was read ({cause})")


class ClientMisconfigured(NusaSMSError):
    """The request cannot be sent as configured; resending will not help until it is fixed."""

    action = Action.PAUSE

    def __init__(self, operation: str, cause: str) -> None:
        super().__init__(
            operation, f"cannot send as configured ({cause}); check the base URL and proxy"
        )


_HTTP_HINTS = {
    Action.RETRY: "NusaSMS or a gateway before it is failing; retry later",
    Action.PAUSE: "check the base URL, proxy and credentials; stop the account until fixed",
    Action.UNKNOWN: "a gateway gave up waiting for NusaSMS, which may still have taken the"
    " message: do not resend it",
}


class ProviderHTTPError(NusaSMSError):
    """NusaSMS (or something in front of it) answered with a non-2xx HTTP status."""

    def __init__(
        self,
        operation: str,
        status_code: int,
        *,
        action: Action,
        retry_after_s: float | None = None,
        excerpt: str = "",
    ) -> None:
        self.status_code = status_code
        self.action = action
        self.retry_after_s = retry_after_s
        self.excerpt = excerpt
        wait = f"; Retry-After {retry_after_s:g}s" if retry_after_s is not None else ""
        body = f"; body starts {excerpt!r}" if excerpt else ""
        super().__init__(operation, f"HTTP {status_code}{wait}: {_HTTP_HINTS[action]}{body}")


class ProviderThrottled(ProviderHTTPError):
    """HTTP 429: too many requests; wait `retry_after_s` (when given) before the next."""


class ProtocolError(NusaSMSError):
    """A 2xx reply whose body is not a NusaSMS reply (empty, HTML, truncated, wrong shape)."""

    def __init__(self, operation: str, reason: str, excerpt: str, *, action: Action) -> None:
        self.reason = reason
        self.excerpt = excerpt
        self.action = action
        hint = (
            "; NusaSMS answered, so it may have taken the message: do not resend it"
            if action is Action.UNKNOWN
            else ""
        )
        super().__init__(operation, f"unreadable reply: {reason}{hint}; body starts {excerpt!r}")


class ProviderRejected(NusaSMSError):
    """A CREDITS or DR command answered with a status code; `.status` is its table row."""

    def __init__(self, operation: str, status: StatusInfo) -> None:
        self.status = status
        self.action = status.action
        super().__init__(operation, f"status {status.code} {status.name}: {status.meaning}")
