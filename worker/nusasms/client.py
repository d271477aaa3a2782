"""The NusaSMS v3 HTTP client: typed calls over an injected HTTP client (`httpx.Client`, or
the lean `wire.WireClient` the worker's send path uses: `build_send_client`).

Every call POSTs form fields (credentials never go into a URL, where proxies and access logs
keep them) and asks for `output=json`. Timeouts and pool limits belong to the injected
client: the caller must set explicit connect and read timeouts (both builders do).
A send's well-formed status code is a result (`result.status.action`); everything else that
goes wrong is a `NusaSMSError` whose `.action` says what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit

import httpx

from worker.nusasms.errors import NusaSMSError, OutcomeUnknown
from worker.nusasms.gsm7 import needs_unicode
from worker.nusasms.replies import (
    parse_credits,
    parse_delivery_report,
    parse_group_reply,
    parse_send_reply,
)
from worker.nusasms.results import Credits, DeliveryReport, GroupResult, SendResult
from worker.nusasms.transport import check_response, httpx_errors, translate_httpx_error
from worker.nusasms.wire import Outcome, WireClient, WireResponse, needs_httpx

SEND_SMS_PATH = "/api/v3/sendsms/plain"
SEND_WA_PATH = "/api/v3/sendwa/plain"
SEND_GROUP_PATH = "/api/v3/sendsms/group"  # not documented: docs/nusasms-api.md §1.3 decision
COMMAND_PATH = "/api/command"

USER_AGENT = "kirim-nusasms/0.1"

Form = dict[str, str]


@dataclass(frozen=True)
class NusaSMSConfig:
    """Where and as whom to call NusaSMS; the password never appears in repr."""

    base_url: str
    user: str
    password: str = field(repr=False)
    sender: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {parts.scheme or 'no'} scheme")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("base_url must not carry credentials, a query or a fragment")
        if not self.user or not self.password:
            raise ValueError("NusaSMS user and password must both be set")
        # Blank from an empty environment variable means "no sender", not an empty one.
        object.__setattr__(self, "sender", (self.sender or "").strip() or None)
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))


@dataclass(frozen=True)
class SendCall:
    """One send for `NusaSMSClient.send_many`: an SMS (an OTP when `otp`) or a WhatsApp text."""

    gsm: str
    text: str
    channel: Literal["sms", "wa"]
    otp: bool = False

    def __post_init__(self) -> None:
        if self.channel not in ("sms", "wa"):
            raise ValueError(f"channel must be 'sms' or 'wa', got {self.channel!r}")
        if self.otp and self.channel != "sms":
            raise ValueError("only an SMS can be an OTP")


def build_http_client(
    connect_timeout_s: float,
    read_timeout_s: float,
    pool_size: int,
    *,
    keepalive_expiry_s: float = 2.0,
) -> httpx.Client:
    """An httpx.Client with explicit timeouts and a bounded pool, for NusaSMSClient."""
    if connect_timeout_s <= 0 or read_timeout_s <= 0 or pool_size < 1 or keepalive_expiry_s < 0:
        raise ValueError("timeouts must be > 0 s and pool_size >= 1")
    # A form body of a few hundred bytes leaves in one write: a write (or a wait for a pooled
    # connection) that takes longer than a connect is stuck, and both are safe to retry.
    timeout = httpx.Timeout(
        connect=connect_timeout_s,
        read=read_timeout_s,
        write=connect_timeout_s,
        pool=connect_timeout_s,
    )
    # Dropping idle connections before the server does (Apache closes them after 5 s) narrows
    # the race where a reused connection dies under a send, which leaves its action unknown.
    limits = httpx.Limits(
        max_connections=pool_size,
        max_keepalive_connections=pool_size,
        keepalive_expiry=keepalive_expiry_s,
    )
    return httpx.Client(
        timeout=timeout, limits=limits, follow_redirects=False, headers={"User-Agent": USER_AGENT}
    )


def build_send_client(
    base_url: str, connect_timeout_s: float, read_timeout_s: float, pool_size: int, *,
    keepalive_expiry_s: float = 2.0,
) -> WireClient | httpx.Client:
    """The worker's client for NusaSMSClient: wire.WireClient (a quarter of httpx's CPU per
    call), or an httpx.Client when `base_url` needs a proxy or carries credentials."""
    if needs_httpx(base_url):
        return build_http_client(connect_timeout_s, read_timeout_s, pool_size,
                                 keepalive_expiry_s=keepalive_expiry_s)
    return WireClient(connect_timeout_s, read_timeout_s, pool_size,
                      keepalive_expiry_s=keepalive_expiry_s, user_agent=USER_AGENT)


class NusaSMSClient:
    """Typed calls to the NusaSMS v3 API; knows nothing of Celery or Redis."""

    def __init__(self, config: NusaSMSConfig, http: httpx.Client | WireClient) -> None:
        self._config = config
        self._http = http
        self._secrets = (config.password,)

    def __repr__(self) -> str:
        return f"NusaSMSClient(base_url={self._config.base_url!r}, user={self._config.user!r})"

    @property
    def config(self) -> NusaSMSConfig:
        """The configuration this client sends with."""
        return self._config

    def send_sms(
        self, gsm: str, text: str, *, otp: bool = False, unicode: bool | None = None
    ) -> SendResult:
        """Send one SMS (an OTP when `otp`); UCS-2 is chosen from the text unless given."""
        form = self._sms_form(gsm, text, otp, unicode)
        body, elapsed_s = self._post("send_sms", SEND_SMS_PATH, form, is_send=True)
        return self._send_result("send_sms", body, elapsed_s, gsm, otp)

    def send_wa(self, gsm: str, text: str) -> SendResult:
        """Send one WhatsApp text (the provider caps it at 1000 characters)."""
        body, elapsed_s = self._post("send_wa", SEND_WA_PATH, self._wa_form(gsm, text),
                                     is_send=True)
        return self._send_result("send_wa", body, elapsed_s, gsm, False)

    @property
    def sends_at_once(self) -> bool:
        """Whether `send_many` has its calls in flight together (not over a proxy)."""
        return isinstance(self._http, WireClient)

    def warm(self, n: int) -> None:
        """Have `n` connections to the provider open and idle before a send_many."""
        if isinstance(self._http, WireClient):
            self._http.warm(self._config.base_url + SEND_SMS_PATH, n)

    def send_many(self, calls: Sequence[SendCall], *, not_after: float | None = None,
                  before_write: Callable[[int], bool] | None = None
                  ) -> list[SendResult | NusaSMSError]:
        """Send every call at once (`WireClient.post_many`); per call, in order, what
        send_sms(gsm, text, otp=otp) or send_wa(gsm, text) would return or raise. Over an
        httpx.Client (a proxy) the calls go one after the other. A call not yet written by
        `not_after` (time.monotonic()) is not made: its error is PoolTimeout's (not sent);
        nor is call i when `before_write(i)`, asked just before its write, says False."""
        plans = [self._plan(call) for call in calls]
        if not isinstance(self._http, WireClient):
            return [self._send_one(call) if before_write is None or before_write(i)
                    else self._withdrawn(operation)
                    for i, (call, (operation, _, _)) in enumerate(zip(calls, plans, strict=True))]
        started = time.perf_counter()
        outcomes = self._http.post_many(
            [(self._config.base_url + path, form) for _, path, form in plans],
            not_after=not_after, before_write=before_write)
        results: list[SendResult | NusaSMSError] = []
        for call, (operation, _, _), outcome in zip(calls, plans, outcomes, strict=True):
            try:
                results.append(self._many_result(operation, call, outcome, started))
            except NusaSMSError as exc:
                results.append(exc)
            except Exception as exc:  # a reply we failed to read: only this call's is lost
                results.append(OutcomeUnknown(
                    operation, f"the reply could not be read ({type(exc).__name__})"))
        return results

    def send_group(self, group: str, text: str) -> GroupResult:
        """Send one SMS to a contact group kept in the NusaSMS web app."""
        form = self._credentials("user") | {"group": group, "SMSText": text}
        form |= self._sms_options(text, None)
        body, elapsed_s = self._post("send_group", SEND_GROUP_PATH, form, is_send=True)
        result = parse_group_reply(
            body, group=group, operation="send_group", secrets=self._secrets
        )
        return replace(result, elapsed_s=elapsed_s)

    def credits(self, kind: str = "sms") -> Credits:
        """The account's balance of `kind` (sms, wa, …) and when it expires."""
        form = self._credentials("user") | {"cmd": "CREDITS", "type": kind}
        body, _ = self._post("credits", COMMAND_PATH, form, is_send=False)
        return parse_credits(body, operation="credits", secrets=self._secrets)

    def delivery_report(self, ref_no: str) -> DeliveryReport:
        """Pull the delivery report of a sent message by its message id."""
        form = self._credentials("user") | {"cmd": "DR", "ref_no": ref_no}
        body, _ = self._post("delivery_report", COMMAND_PATH, form, is_send=False)
        return parse_delivery_report(
            body, ref_no=ref_no, operation="delivery_report", secrets=self._secrets
        )

    def _withdrawn(self, operation: str) -> NusaSMSError:
        """What post_many says of a call `before_write` withdrew: never written."""
        cause = httpx.PoolTimeout("not written: the caller withdrew it")
        error = translate_httpx_error(cause, operation, is_send=True, secrets=self._secrets)
        error.__cause__ = cause  # as httpx_errors chains it
        return error

    def _send_one(self, call: SendCall) -> SendResult | NusaSMSError:
        try:
            if call.channel == "wa":
                return self.send_wa(call.gsm, call.text)
            return self.send_sms(call.gsm, call.text, otp=call.otp)
        except NusaSMSError as exc:
            return exc

    def _plan(self, call: SendCall) -> tuple[str, str, Form]:
        """The operation, path and form send_sms or send_wa would post for `call`."""
        if call.channel == "wa":
            return "send_wa", SEND_WA_PATH, self._wa_form(call.gsm, call.text)
        return "send_sms", SEND_SMS_PATH, self._sms_form(call.gsm, call.text, call.otp, None)

    def _many_result(self, operation: str, call: SendCall, outcome: Outcome,
                     started: float) -> SendResult:
        """`_post`'s translation and checks, then send_sms's or send_wa's parse, of one
        post_many outcome."""
        with httpx_errors(operation, is_send=True, secrets=self._secrets):
            if not isinstance(outcome, WireResponse):
                raise outcome
        body = self._checked(operation, outcome, is_send=True)
        # The call's own duration, from its connection and write (a wave can start after the
        # batch did).
        elapsed_s = outcome.read_at - (outcome.call_started_at or started)
        return self._send_result(operation, body, elapsed_s, call.gsm, call.otp)

    def _send_result(self, operation: str, body: str, elapsed_s: float, gsm: str,
                     otp: bool) -> SendResult:
        result = parse_send_reply(
            body, destination=gsm, operation=operation, secrets=self._secrets, otp=otp
        )
        return replace(result, elapsed_s=elapsed_s)

    def _sms_form(self, gsm: str, text: str, otp: bool, unicode: bool | None) -> Form:
        form = self._credentials("user") | {"GSM": gsm, "SMSText": text}
        form |= self._sms_options(text, unicode)
        if otp:
            form["otp"] = "Y"
        return form

    def _wa_form(self, gsm: str, text: str) -> Form:
        # §1.2 documents `username` here (not `user`); the sandbox accepts both.
        return self._credentials("username") | {"GSM": gsm, "text": text}

    def _credentials(self, user_field: str) -> Form:
        return {user_field: self._config.user, "password": self._config.password, "output": "json"}

    def _sms_options(self, text: str, unicode: bool | None) -> Form:
        options: Form = {}
        if needs_unicode(text) if unicode is None else unicode:
            options["unicode"] = "True"
        if self._config.sender:
            options["sender"] = self._config.sender
        return options

    def _post(self, operation: str, path: str, form: Form, *, is_send: bool) -> tuple[str, float]:
        """POST `form` to `path`; the reply body and the seconds the call took."""
        started = time.perf_counter()
        with httpx_errors(operation, is_send=is_send, secrets=self._secrets):
            # Never follow a redirect: 301/302 turn the POST into a GET, and 307/308 would
            # re-post the credentials wherever the Location points.
            response = self._http.post(
                self._config.base_url + path, data=form, follow_redirects=False
            )
        elapsed_s = time.perf_counter() - started
        return self._checked(operation, response, is_send=is_send), elapsed_s

    def _checked(self, operation: str, response: httpx.Response | WireResponse, *,
                 is_send: bool) -> str:
        """The body of a 2xx response; ProviderHTTPError for any other status."""
        check_response(operation, response, is_send=is_send, secrets=self._secrets)
        return response.text
