"""The sandbox application: state, routing, and the global faults around provider calls.

Provider requests: the `down` knob aborts the connection without a reply; then one fault is
drawn (see `faults`); a request that no fault stops goes to its endpoint. Latency is added to
every provider reply, after processing: a client that gives up during the latency may have
had its message accepted, as with the real service.

Parameters come from the query string, overlaid by the body: a form
(application/x-www-form-urlencoded, also assumed when no Content-Type is given) or a JSON
object (any Content-Type containing "json"; a bad one answers -22). Multipart bodies are not
read [decision: no NusaSMS client sends them].
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_plus

from sandbox import control_api, endpoints, heap, replies, v1
from sandbox.config import Config
from sandbox.faults import Faults, hang_then_close, too_many_requests
from sandbox.http import Reply, Request
from sandbox.push import Pusher
from sandbox.state import Account, MessageIds, State

Endpoint = Callable[["Sandbox", endpoints.Params], endpoints.Answer]
ENDPOINTS: dict[str, Endpoint] = {
    "/api/v3/sendsms/plain": endpoints.send_sms,
    "/api/v3/sendwa/plain": endpoints.send_wa,
    "/api/v3/sendsms/group": endpoints.send_group,
    "/api/command": endpoints.command,
}
NOT_FOUND = b"<html><head><title>404 Not Found</title></head><body>Not Found</body></html>"


class Sandbox:
    """One NusaSMS twin: the start configuration, the live knobs and the state."""

    def __init__(self, config: Config, account: Account) -> None:
        self.start_config = config.copy()
        self.start_account = account.copy()
        self.ids = MessageIds()
        self.pusher = Pusher()
        self.config = config.copy()
        self.state = self.fresh_state()
        self.faults = Faults(self.config.seed)

    def fresh_state(self) -> State:
        """Empty state with the start balances."""
        return State(self.start_account.copy())

    def reset(self) -> None:
        """Everything back to the start configuration (message ids keep counting)."""
        self.pusher.cancel_all()
        self.config = self.start_config.copy()
        self.state = self.fresh_state()
        self.faults.reseed(self.config.seed)
        heap.thaw()

    def start_pushing(self) -> None:
        """Start the delivery-report push loop (needs a running event loop)."""
        self.pusher.start(lambda: self.state, lambda: self.config)

    def handle(self, request: Request) -> Reply | Awaitable[Reply]:
        """Route one HTTP request."""
        if request.path.startswith("/_sandbox/"):
            return control_api.handle(self, request)
        if v1.handles(self, request.path):  # API v1.0 (spec §2): sandbox/v1.py
            return v1.handle(self, request)
        endpoint = ENDPOINTS.get(request.path)
        if endpoint is None:
            return Reply(404, NOT_FOUND, "text/html")
        if request.method not in ("GET", "POST"):
            return Reply(405, b"method not allowed", "text/plain", [("Allow", "GET, POST")])
        return self.provider_call(request, endpoint)

    def provider_call(self, request: Request, endpoint: Endpoint) -> Reply:
        """Faults, then the endpoint; every call is counted and logged."""
        arrived, stats = time.time(), self.state.stats
        stats.requests += 1
        try:
            params = read_params(request)
        except ValueError:
            return self.bad_body(arrived, request)
        if self.config.down:
            self.log(arrived, request, params, None, "down")
            return Reply(abort=True)
        fault = self.faults.draw(self.config)
        stats.faults.update([fault] if fault else [])
        latency_s = self.faults.latency_s(self.config)
        if fault in ("5xx", "timeout", "malformed", "429"):
            self.log(arrived, request, params, None, fault)
            return self.refused(str(fault), params, latency_s)
        outcome = endpoint(self, params)
        if endpoint is not endpoints.command:
            stats.by_status[outcome.status] += 1
        self.log(arrived, request, params, outcome.status, fault or magic_fault(outcome))
        return Reply(body=outcome.body, content_type=replies.content_type(outcome.as_json),
                     delay_s=latency_s + outcome.delay_s,
                     abort=outcome.abort or fault == "drop_after_accept")

    def bad_body(self, arrived: float, request: Request) -> Reply:
        """-22 for a body that is not the JSON object it claims to be."""
        params = parse_form(request.query)
        self.log(arrived, request, params, "-22", "bad_body")
        as_json = replies.wants_json(params.get("output"))
        return Reply(body=replies.send_result(-22, "", "", as_json),
                     content_type=replies.content_type(as_json))

    def refused(self, fault: str, params: endpoints.Params, latency_s: float) -> Reply:
        """The reply of a fault that stops the request before it is processed."""
        if fault == "timeout":
            return hang_then_close(self.config.hang_s)
        if fault == "5xx":
            reply = self.faults.server_error()
        elif fault == "429":
            reply = too_many_requests()
        else:
            as_json = replies.wants_json(params.get("output"))
            # what an accepted reply looks like, cut off: the id is never stored
            body = replies.send_result(0, self.ids.new(), params.get("GSM", ""), as_json)
            reply = self.faults.malformed(Reply(body=body, content_type=replies.content_type(
                as_json)))
        reply.delay_s = latency_s
        return reply

    def log(self, arrived: float, request: Request, params: endpoints.Params,
            status: str | None, fault: str | None) -> None:
        """One entry of the request log."""
        self.state.log(arrived, request.method, request.path, params.get("GSM"),
                       params.get("cmd"), status, fault)


def magic_fault(outcome: endpoints.Answer) -> str | None:
    """The log's name for what a magic number did to an accepted reply."""
    if outcome.abort:
        return "magic_drop"
    return "magic_delay" if outcome.delay_s else None


def parse_form(text: str) -> dict[str, str]:
    """application/x-www-form-urlencoded (or a query string) → dict; the last value wins.

    A faster equivalent of dict(parse_qsl(text, keep_blank_values=True)) for the common case
    where nothing needs unquoting.
    """
    params: dict[str, str] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            name, value = unquote_plus(name), unquote_plus(value)
        params[name] = value
    return params


def read_params(request: Request) -> dict[str, str]:
    """Query parameters, overlaid by a form or JSON body, and HTTP Basic credentials when the
    request carries no password (spec §1.1: NusaSMS's own Python sample sends them that way);
    raises ValueError on a bad body."""
    params = _body_params(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and not params.get("password"):
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).decode(
                ).partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return params
        params.setdefault("user", user)
        params.setdefault("username", user)
        params["password"] = password
    return params


def _body_params(request: Request) -> dict[str, str]:
    params = parse_form(request.query)
    if not request.body:
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        data = json.loads(request.body)
        if not isinstance(data, dict):
            raise ValueError("JSON body is not an object")
        params.update({str(k): as_param(v) for k, v in data.items()})
    else:
        params.update(parse_form(request.body.decode("utf-8", errors="replace")))
    return params


def as_param(value: object) -> str:
    """A JSON value as the string a form would have carried."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
