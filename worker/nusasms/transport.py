"""The one boundary between httpx and the client: httpx errors and HTTP statuses in, our errors out.

Which httpx failure is safe to resend is decided in `HTTPX_STAGES`, class by class; a unit
test walks httpx's exception classes and fails when one is missing here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from types import MappingProxyType

import httpx

from worker.nusasms.errors import (
    ClientMisconfigured,
    NusaSMSError,
    OutcomeUnknown,
    ProviderHTTPError,
    ProviderThrottled,
    ReplyLost,
    RequestNotSent,
    excerpt,
)
from worker.nusasms.status import Action
from worker.nusasms.wire import WireResponse


def http_status_action(status_code: int, *, is_send: bool) -> Action:
    """What a non-2xx HTTP status means for the message (courier's rule, plus 504 on sends)."""
    if status_code == 504 and is_send:
        # A gateway timeout is our read timeout one hop further: NusaSMS got the request.
        return Action.UNKNOWN
    if status_code >= 500 or status_code in (408, 429):
        return Action.RETRY
    # 3xx/4xx: a wrong base URL, a proxy or auth problem; every message would fail the same.
    return Action.PAUSE


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def error_for_status(
    operation: str, response: httpx.Response | WireResponse, *, is_send: bool,
    secrets: tuple[str, ...] = ()
) -> ProviderHTTPError:
    """The error for a non-2xx response."""
    code = response.status_code
    try:
        body = response.text
    except httpx.ResponseNotRead:
        body = ""
    cls = ProviderThrottled if code == 429 else ProviderHTTPError
    return cls(
        operation,
        code,
        action=http_status_action(code, is_send=is_send),
        retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
        excerpt=excerpt(body, secrets),
    )


def check_response(
    operation: str, response: httpx.Response | WireResponse, *, is_send: bool,
    secrets: tuple[str, ...] = ()
) -> None:
    """Raise ProviderHTTPError unless the response is 2xx."""
    if not 200 <= response.status_code < 300:
        raise error_for_status(operation, response, is_send=is_send, secrets=secrets)


class Stage(Enum):
    """How far an httpx failure got: this alone decides which of our errors it becomes."""

    NOT_SENT = "not sent"  # no complete request left this process
    SENT = "sent"  # the request may have arrived; the reply was lost or unreadable
    MISCONFIGURED = "misconfigured"  # this configuration cannot send anything
    HTTP_STATUS = "http status"  # a response came back with an error status


_N, _S, _M = Stage.NOT_SENT, Stage.SENT, Stage.MISCONFIGURED

# Every httpx exception class, exactly (a test fails when httpx grows one this lacks).
# Abstract bases map to SENT: an unclassified failure must never cause a resend.
HTTPX_STAGES: Mapping[type[Exception], Stage] = MappingProxyType(
    {
        httpx.HTTPError: _S,
        httpx.RequestError: _S,
        httpx.TransportError: _S,
        httpx.TimeoutException: _S,
        httpx.ConnectTimeout: _N,
        httpx.ReadTimeout: _S,
        # A write failure means some bytes never reached the socket: the form body is sent
        # with Content-Length, so no server can hold a complete request to act on.
        httpx.WriteTimeout: _N,
        httpx.PoolTimeout: _N,
        httpx.NetworkError: _S,
        httpx.ConnectError: _N,
        httpx.ReadError: _S,
        httpx.WriteError: _N,
        httpx.CloseError: _S,  # raised after the reply was read: the request did arrive
        httpx.ProtocolError: _S,
        httpx.LocalProtocolError: _M,  # h11 refused to build our request
        # A stale keep-alive connection closed under us also lands here: it may have arrived.
        httpx.RemoteProtocolError: _S,
        httpx.ProxyError: _M,
        httpx.UnsupportedProtocol: _M,
        httpx.DecodingError: _S,  # a reply came back that we cannot decode
        httpx.TooManyRedirects: _M,
        httpx.HTTPStatusError: Stage.HTTP_STATUS,
        httpx.InvalidURL: _M,
    }
)


def stage_of(exc_type: type[Exception]) -> Stage:
    """The stage of an httpx exception class (a subclass inherits its parent's)."""
    for cls in exc_type.__mro__:
        if cls in HTTPX_STAGES:
            return HTTPX_STAGES[cls]
    return Stage.SENT


def translate_httpx_error(
    exc: Exception, operation: str, *, is_send: bool, secrets: tuple[str, ...] = ()
) -> NusaSMSError:
    """Our error for an httpx exception raised while calling NusaSMS."""
    stage = stage_of(type(exc))
    if stage is Stage.HTTP_STATUS and isinstance(exc, httpx.HTTPStatusError):
        return error_for_status(operation, exc.response, is_send=is_send, secrets=secrets)
    cause = f"{type(exc).__name__}: {excerpt(str(exc), secrets) or 'no detail'}"
    if stage is Stage.NOT_SENT:
        return RequestNotSent(operation, cause)
    if stage is Stage.MISCONFIGURED:
        return ClientMisconfigured(operation, cause)
    return OutcomeUnknown(operation, cause) if is_send else ReplyLost(operation, cause)


@contextmanager
def httpx_errors(
    operation: str, *, is_send: bool, secrets: tuple[str, ...] = ()
) -> Iterator[None]:
    """The boundary: any httpx error raised inside leaves as a NusaSMSError, chained."""
    try:
        yield
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise translate_httpx_error(exc, operation, is_send=is_send, secrets=secrets) from exc
