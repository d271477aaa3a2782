"""API v1.0 under the `v1_prefix` knob (default `/nusasms_api/1.0`, spec §2): key, faults, routing.

Every request: the `down` knob aborts it; then the `APIKey` header is checked (missing: 403
`{"detail":"Not authenticated"}`, FastAPI's APIKeyHeader; wrong: 401 `Invalid API Key`
[decision]); a body that is not a JSON object is FastAPI's 422; then one global fault is
drawn as on the legacy routes (5xx HTML page, hang then close, a cut or HTML 200, 429 with
`Retry-After: 1`, drop after processing); then the route (sandbox/v1_routes.py). Latency is
added after processing. Unknown paths answer FastAPI's 404, wrong methods its 405.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox import v1_routes
from sandbox.faults import hang_then_close, too_many_requests
from sandbox.http import Reply, Request
from sandbox.replies import dumps
from sandbox.v1_routes import Body, V1Answer

if TYPE_CHECKING:
    from sandbox.app import Sandbox

Route = Callable[["Sandbox", Body], V1Answer]
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/auth/api_key"): v1_routes.auth_api_key,
    ("GET", "/balance"): v1_routes.balance,
    ("POST", "/whatsapp/message"): v1_routes.whatsapp_message,
    ("POST", "/whatsapp/media"): v1_routes.whatsapp_media,
}
STATUS_PREFIX = "/whatsapp/status/"
SENDS = ("/whatsapp/message", "/whatsapp/media")


def handles(sb: Sandbox, path: str) -> bool:
    """True for a path under the v1.0 prefix."""
    prefix = sb.config.v1_prefix
    return path == prefix or path.startswith(prefix + "/")


def handle(sb: Sandbox, request: Request) -> Reply:
    """One v1.0 request, start to end."""
    arrived, stats = time.time(), sb.state.stats
    stats.requests += 1
    path = request.path[len(sb.config.v1_prefix):]
    route = _route(request.method, path)
    if isinstance(route, Reply):
        return route
    body = _body(request)
    gsm = str(body.get("destination", "")) if isinstance(body, dict) else None
    if sb.config.down:
        _log(sb, arrived, request, gsm, None, "down")
        return Reply(abort=True)
    refused = _key_refusal(sb, request) or (body if isinstance(body, V1Answer) else None)
    if refused is not None:
        _log(sb, arrived, request, gsm, refused.log_status, None)
        return _reply(refused)
    assert isinstance(body, dict)
    fault = sb.faults.draw(sb.config)
    stats.faults.update([fault] if fault else [])
    latency_s = sb.faults.latency_s(sb.config)
    if fault in ("5xx", "timeout", "malformed", "429"):
        _log(sb, arrived, request, gsm, None, fault)
        return _refused(sb, str(fault), latency_s)
    answer = route(sb, body)
    if path in SENDS:
        stats.by_status[answer.log_status] += 1
    magic = "magic_drop" if answer.abort else ("magic_delay" if answer.delay_s else None)
    _log(sb, arrived, request, gsm, answer.log_status, fault or magic)
    reply = _reply(answer)
    reply.delay_s = latency_s + answer.delay_s
    reply.abort = answer.abort or fault == "drop_after_accept"
    return reply


def _route(method: str, path: str) -> Route | Reply:
    if path.startswith(STATUS_PREFIX) and len(path) > len(STATUS_PREFIX):
        ref_no = path[len(STATUS_PREFIX):]
        if method != "GET":
            return _not_allowed("GET")
        return lambda sb, _body: v1_routes.whatsapp_status(sb, ref_no)
    route = ROUTES.get((method, path))
    if route is not None:
        return route
    methods = sorted(m for m, p in ROUTES if p == path)
    if methods:
        return _not_allowed(", ".join(methods))
    return Reply(404, dumps({"detail": "Not Found"}))


def _not_allowed(allow: str) -> Reply:
    return Reply(405, dumps({"detail": "Method Not Allowed"}), headers=[("Allow", allow)])


def _body(request: Request) -> Body | V1Answer:
    """The JSON object body ({} when empty), or FastAPI's 422 for anything else."""
    if not request.body:
        return {}
    try:
        data: Any = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return V1Answer(422, {"detail": [{"loc": ["body", 0], "msg": "JSON decode error",
                                          "type": "value_error.jsondecode"}]}, "422")
    if not isinstance(data, dict):
        return V1Answer(422, {"detail": [{"loc": ["body"], "msg": "value is not a valid dict",
                                          "type": "type_error.dict"}]}, "422")
    return data


def _key_refusal(sb: Sandbox, request: Request) -> V1Answer | None:
    key = request.headers.get("apikey")
    if key is None:
        return V1Answer(403, {"detail": "Not authenticated"}, "403")
    return None if key == sb.config.api_key else v1_routes.error(401, "Invalid API Key")


def _reply(answer: V1Answer) -> Reply:
    return Reply(answer.status, dumps(answer.doc))


def _refused(sb: Sandbox, fault: str, latency_s: float) -> Reply:
    if fault == "timeout":
        return hang_then_close(sb.config.hang_s)
    if fault == "5xx":
        reply = sb.faults.server_error()
    elif fault == "429":
        reply = too_many_requests()
    else:  # what an accepted reply looks like, cut off: the id is never stored
        proper = v1_routes.ok("WA send message", {"ref_no": sb.ids.new()})
        reply = sb.faults.malformed(_reply(proper))
    reply.delay_s = latency_s
    return reply


def _log(sb: Sandbox, arrived: float, request: Request, gsm: str | None, status: str | None,
         fault: str | None) -> None:
    sb.state.log(arrived, request.method, request.path, gsm or None, None, status, fault)
