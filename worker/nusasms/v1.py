"""The NusaSMS API v1.0 client ("New WA API"): typed calls over an injected `httpx.Client`.

Header `APIKey`, JSON bodies, the `{error, error_code, message, data}` envelope and real HTTP
statuses (docs/nusasms-api.md §2). Used for WhatsApp and balances; SMS and OTP stay on the
legacy client (`worker.nusasms.client`). Same rules as that client: timeouts and pool come
from the injected httpx client (`build_http_client`), redirects are never followed, httpx
errors become our errors at one boundary (`transport.httpx_errors`), and the key is never in
a repr, a log line or an error message.

A send's error reply is a result (`SendResult.status`, from the v1 table in `v1_status`);
429, 408 and 5xx raise `ProviderHTTPError` (`ProviderThrottled` with `.retry_after_s`).
A query's error reply raises `ProviderRejected` (its `.status.scope` says how far it reaches).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from worker.nusasms.errors import scrub
from worker.nusasms.results import SendResult
from worker.nusasms.status import Action, Scope
from worker.nusasms.transport import error_for_status, httpx_errors
from worker.nusasms.v1_replies import (
    ApiKeyInfo,
    Balances,
    Envelope,
    WAStatus,
    api_key_info_from,
    balances_from,
    parse_v1_query,
    parse_v1_send,
    wa_status_from,
)
from worker.nusasms.v1_status import V1_HTTP_STATUSES

DEFAULT_V1_URL = "https://api.nusasms.com/nusasms_api/1.0"
AUTH_PATH = "/auth/api_key"
BALANCE_PATH = "/balance"
WA_MESSAGE_PATH = "/whatsapp/message"
WA_MEDIA_PATH = "/whatsapp/media"
WA_STATUS_PATH = "/whatsapp/status/"  # + the ref_no
MAX_MEDIA_BYTES = 512 * 1024  # the decoded media_base64 file (§2: "max 512 KB")
API_KEY_HEADER = "APIKey"

__all__ = [
    "DEFAULT_V1_URL",
    "MAX_MEDIA_BYTES",
    "ApiKeyInfo",
    "Balances",
    "NusaSMSV1Client",
    "V1Config",
    "WAStatus",
]


@dataclass(frozen=True)
class V1Config:
    """Where and with which key to call API v1.0; the key never appears in repr."""

    base_url: str
    api_key: str = field(repr=False)
    sender: str | None = None  # the default WhatsApp sender; a message's own wins

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"the v1.0 base URL must be an http(s) URL, got {parts.scheme or 'no'} scheme"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("the v1.0 base URL must not carry credentials, a query or a fragment")
        if not self.api_key or not self.api_key.strip():
            raise ValueError("the NusaSMS API key is empty: set KIRIM_NUSASMS_API_KEY")
        object.__setattr__(self, "sender", (self.sender or "").strip() or None)
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))


class NusaSMSV1Client:
    """Typed calls to NusaSMS API v1.0; knows nothing of Celery or Redis."""

    def __init__(self, config: V1Config, http: httpx.Client) -> None:
        self._config = config
        self._http = http
        self._secrets = (config.api_key,)

    def __repr__(self) -> str:
        return f"NusaSMSV1Client(base_url={self._config.base_url!r})"

    @property
    def config(self) -> V1Config:
        """The configuration this client sends with."""
        return self._config

    def check_key(self) -> ApiKeyInfo:
        """`GET /auth/api_key`: a cheap check that the key works (ProviderRejected if not)."""
        data, raw = self._query("check_key", AUTH_PATH)
        return api_key_info_from(data, raw)

    def balance(self) -> Balances:
        """`GET /balance`: the SMS and WhatsApp balances and their expiry dates."""
        data, raw = self._query("balance", BALANCE_PATH)
        return balances_from(data, raw)

    def send_wa(self, destination: str, message: str, sender: str | None = None) -> SendResult:
        """`POST /whatsapp/message`: one WhatsApp text."""
        body = {"destination": destination, "message": message} | self._sender(sender)
        return self._send("send_wa", WA_MESSAGE_PATH, body, destination, self._own(sender))

    def send_wa_media(
        self,
        destination: str,
        caption: str,
        sender: str | None = None,
        *,
        media_url: str | None = None,
        media_base64: str | None = None,
        file_name: str | None = None,
    ) -> SendResult:
        """`POST /whatsapp/media`: one file with a caption, by URL or inline (base64 +
        file name, at most 512 KB decoded: the provider refuses more, and the message dies)."""
        if (media_url is None) == (media_base64 is None):
            raise ValueError("give exactly one of media_url and media_base64")
        if media_base64 is not None and not file_name:
            raise ValueError("media_base64 needs a file_name")
        body: dict[str, str] = {"destination": destination, "caption": caption}
        if media_url is not None:
            body["media_url"] = media_url
        else:
            body |= {"media_base64": media_base64 or "", "file_name": file_name or ""}
        return self._send("send_wa_media", WA_MEDIA_PATH, body | self._sender(sender),
                          destination, self._own(sender))

    def wa_status(self, ref_no: str) -> WAStatus:
        """`GET /whatsapp/status/{ref_no}`: sent, delivered and read dates of one message."""
        if not ref_no or not ref_no.strip():
            raise ValueError("wa_status needs a ref_no")
        path = WA_STATUS_PATH + quote(ref_no.strip(), safe="")
        data, raw = self._query("wa_status", path)
        return wa_status_from(data, ref_no.strip(), raw)

    def _own(self, sender: str | None) -> bool:
        """True when the message names a sender of its own, not the configured default."""
        chosen = (sender or "").strip()
        return bool(chosen) and chosen != self._config.sender

    def _sender(self, sender: str | None) -> dict[str, str]:
        chosen = (sender or "").strip() or self._config.sender
        return {"sender": chosen} if chosen else {}

    def _headers(self) -> dict[str, str]:
        return {API_KEY_HEADER: self._config.api_key, "Accept": "application/json"}

    def _send(self, operation: str, path: str, body: dict[str, str], destination: str,
              own_sender: bool) -> SendResult:
        started = time.perf_counter()
        response = self._call(operation, "POST", path, body, is_send=True)
        result = parse_v1_send(response.status_code, response.text, destination=destination,
                               operation=operation, secrets=self._secrets)
        if own_sender and result.status.scope == Scope.SENDER:
            # The sender this message named (its producer's choice) is refused: this message
            # dies; the lane pauses only when the account's default sender is refused.
            result = replace(result, status=replace(
                result.status, action=Action.DEAD, scope=Scope.NONE,
                meaning=result.status.meaning + " (the sender this message named)"))
        return replace(result, elapsed_s=time.perf_counter() - started)

    def _query(self, operation: str, path: str) -> tuple[Envelope, str]:
        response = self._call(operation, "GET", path, None, is_send=False)
        text = response.text
        data = parse_v1_query(response.status_code, text, operation=operation,
                              secrets=self._secrets)
        return data, scrub(text, self._secrets)

    def _call(self, operation: str, method: str, path: str, body: dict[str, Any] | None,
              *, is_send: bool) -> httpx.Response:
        """One request; a non-2xx status outside the v1 table (429, 408, 5xx, 3xx, …) raises."""
        with httpx_errors(operation, is_send=is_send, secrets=self._secrets):
            response = self._http.request(
                method, self._config.base_url + path, json=body, headers=self._headers(),
                follow_redirects=False,
            )
            response.read()
        code = response.status_code
        if not 200 <= code < 300 and code not in V1_HTTP_STATUSES:
            raise error_for_status(operation, response, is_send=is_send, secrets=self._secrets)
        return response
