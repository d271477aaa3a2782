"""One error shape for the /v1 API, and the handlers that map every failure to it.

`{"error": {"code", "field", "message"}}`. Bad input is 4xx, never 500; Redis down is 503.
"""

from __future__ import annotations

import math
import time
from typing import Any

import redis as redis_lib
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from producer.core.durability import NotReplicated
from producer.core.errors import (
    IdempotencyConflict,
    InvalidMessage,
    KirimError,
    MessageNotFound,
    RecipientLimited,
    StoreUnavailable,
    TextErased,
)
from producer.core.jobs import field_name, printable

log = structlog.get_logger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    """An error reply decided by a route: HTTP status, code, field and message."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.code = code
        self.field = field
        self.message = message
        self.headers = headers
        super().__init__(message)


def error_response(request: Request | None, status: int, code: str, message: str,
                   field: str | None = None, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    """The JSON error reply; notes the code for the request counter."""
    if request is not None:
        request.state.outcome = code
    body = {"error": {"code": code, "field": field, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def kirim_error_detail(exc: KirimError) -> tuple[int, str, str | None, str]:
    """(status, code, field, message) of one of our own errors; shared with the batch route."""
    if isinstance(exc, InvalidMessage):
        return 422, "invalid_message", exc.field, f"{exc.field}: {exc.reason}"
    if isinstance(exc, IdempotencyConflict):
        return 409, "idempotency_conflict", "idempotency_key", str(exc)
    if isinstance(exc, RecipientLimited):
        return 429, "recipient_limited", "to", (
            f"to: {exc}; an OTP is refused rather than delayed: try again after Retry-After")
    if isinstance(exc, MessageNotFound):
        return 404, "not_found", None, str(exc)
    if isinstance(exc, NotReplicated):  # written on the master: the message says what to do
        return 503, "store_unavailable", None, str(exc)
    if isinstance(exc, StoreUnavailable):
        return 503, "store_unavailable", None, f"{exc}; nothing was written, retry shortly"
    if isinstance(exc, TextErased):
        return 409, "text_erased", None, str(exc)
    return 500, "internal_error", None, str(exc)


def retry_after_s(retry_at: float) -> str:
    """Retry-After in whole seconds, at least 1."""
    return str(max(1, math.ceil(retry_at - time.time())))


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.code, exc.message, exc.field, exc.headers)


async def _on_kirim_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KirimError)
    status, code, field, message = kirim_error_detail(exc)
    headers = {"Retry-After": retry_after_s(exc.retry_at)} \
        if isinstance(exc, RecipientLimited) else None
    if status >= 500:
        log.warning("api_error", code=code, error=type(exc).__name__)
    return error_response(request, status, code, message, field, headers)


async def _on_redis_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("api_redis_unavailable", error=type(exc).__name__)
    return error_response(request, 503, "store_unavailable",
                          f"Redis unavailable ({type(exc).__name__}); retry shortly")


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    refusal = await _auth_refusal(request)
    if refusal is not None:  # FastAPI parses the body before dependencies: 401 comes first
        return await _on_api_error(request, refusal)
    err: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
    if err.get("type") == "json_invalid":
        return error_response(request, 422, "invalid_json", "body is not valid JSON: "
                              f"{err.get('ctx', {}).get('error', 'parse error')}", "body")
    loc = list(err.get("loc", ()))
    if loc and loc[0] in ("body", "query", "header", "path"):
        loc = loc[1:]  # where FastAPI read it; the rest is the field (a key may be "body")
    field = field_name(loc)
    msg = printable(err.get("msg", "invalid"))
    if err.get("type") == "missing":
        msg = "is required"
    return error_response(request, 422, "invalid_request", f"{field}: {msg}", field)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = str(exc.detail)
    if exc.status_code == 400:  # FastAPI's "error parsing the body": not UTF-8, not JSON
        return error_response(request, 422, "invalid_json",
                              "body is not valid JSON in UTF-8; send Content-Type:"
                              " application/json with a UTF-8 JSON object", "body")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}; see /docs"
    return error_response(request, exc.status_code, code, message,
                          headers=getattr(exc, "headers", None))


async def _auth_refusal(request: Request) -> ApiError | None:
    from producer.api.auth import authenticate  # auth imports this module

    if not request.url.path.startswith("/v1/"):
        return None
    try:
        await authenticate(request)
    except ApiError as exc:
        return exc
    return None


def install(app: FastAPI) -> None:
    """Register every handler on the app."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(KirimError, _on_kirim_error)
    app.add_exception_handler(redis_lib.RedisError, _on_redis_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
