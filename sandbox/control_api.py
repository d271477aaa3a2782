"""The control and inspection API under /_sandbox/ (JSON in, JSON out).

| route                    | does                                                          |
|--------------------------|---------------------------------------------------------------|
| GET  health              | {"ok": true}                                                  |
| POST reset               | all state and knobs back to the start configuration           |
| GET  config / POST config| the knobs / change some (JSON object), answers all of them    |
| GET  messages            | accepted messages (?gsm=, ?channel=, ?limit= last N)          |
| GET  requests            | provider requests, oldest first (?limit= last N)              |
| GET  stats               | counters, both credit pools, duplicates                       |
| GET  counts              | accepted count per (channel, gsm, text)                       |
| POST credits             | {"value"?, "expired_date"?: "YYYY-MM-DD", "product"?: sms|wa} |
| GET  clock / POST clock  | the sandbox clock / {"advance_s": seconds} moves it forward   |
| POST inbound             | {"originator", "msg", "gateway_number"?, "receive_date"?}: push |
| GET  pushes              | callbacks the sandbox made (DR and inbound), with results     |
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sandbox.config import KnobError
from sandbox.http import Reply, Request
from sandbox.state import REQUEST_FIELDS, provider_time

if TYPE_CHECKING:
    from sandbox.app import Sandbox

DEFAULT_GATEWAY = "6281100000000"
Route = Callable[["Sandbox", Request], "Reply | Awaitable[Reply]"]


def ok(data: Any, status: int = 200) -> Reply:
    """A JSON reply."""
    return Reply(status, json.dumps(data, ensure_ascii=False).encode())


def fail(status: int, error: str) -> Reply:
    """A JSON error reply."""
    return ok({"error": error}, status)


def body_json(request: Request) -> dict[str, Any]:
    """The request's JSON object body ({} if empty); ValueError if it is not one."""
    if not request.body:
        return {}
    data = json.loads(request.body)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def query(request: Request) -> dict[str, str]:
    """The query parameters."""
    return dict(parse_qsl(request.query))


def last(items: list[Any], limit: str | None) -> list[Any]:
    """The last `limit` items (all if no limit)."""
    return items[-int(limit):] if limit else items


def health(sb: Sandbox, request: Request) -> Reply:
    return ok({"ok": True})


def reset(sb: Sandbox, request: Request) -> Reply:
    sb.reset()
    return ok({"ok": True})


def get_config(sb: Sandbox, request: Request) -> Reply:
    return ok(sb.config.to_json())


def set_config(sb: Sandbox, request: Request) -> Reply:
    changes = body_json(request)
    sb.config.update(changes)
    if "seed" in changes:
        sb.faults.reseed(sb.config.seed)
    return ok(sb.config.to_json())


def messages(sb: Sandbox, request: Request) -> Reply:
    q, now_s = query(request), sb.state.clock.now()
    found = [m for m in sb.state.messages.values()
             if q.get("gsm") in (None, m.gsm) and q.get("channel") in (None, m.channel)]
    return ok({"messages": [m.to_json(now_s) for m in last(found, q.get("limit"))]})


def requests(sb: Sandbox, request: Request) -> Reply:
    entries = last(list(sb.state.request_log), query(request).get("limit"))
    return ok({"requests": [dict(zip(REQUEST_FIELDS, e, strict=True)) for e in entries]})


def stats(sb: Sandbox, request: Request) -> Reply:
    s, sms, wa = sb.state.stats, sb.state.account.sms, sb.state.account.wa
    return ok({
        "requests": s.requests, "accepted": s.accepted, "by_status": dict(s.by_status),
        "by_channel": dict(s.by_channel), "faults": dict(s.faults),
        "commands": dict(s.commands), "pushes": dict(s.pushes),
        "duplicates": s.duplicates, "duplicate_sends": s.duplicate_sends,
        "messages": len(sb.state.messages),
        # the SMS pool keeps the keys it had when there was one pool
        "credits": sms.credits, "expired_date": sms.expired_date.isoformat(),
        "wa_credits": wa.credits, "wa_expired_date": wa.expired_date.isoformat(),
        "clock_offset_s": sb.state.clock.offset_s,
    })


def counts(sb: Sandbox, request: Request) -> Reply:
    rows = [{"channel": c, "gsm": g, "text": t, "count": n}
            for (c, g, t), n in sb.state.stats.counts.items()]
    return ok({"counts": rows})


def set_credits(sb: Sandbox, request: Request) -> Reply:
    data = body_json(request)
    product = str(data.get("product") or "sms")
    pool = sb.state.account.pool(product)  # ValueError (a 400) for an unknown product
    value = int(data["value"]) if "value" in data else pool.credits
    expired = (date.fromisoformat(str(data["expired_date"])[:10]) if data.get("expired_date")
               else pool.expired_date)
    # parsed before either is set, so a bad body changes nothing
    pool.credits, pool.expired_date = value, expired
    return ok({"product": product, "value": pool.credits,
               "expired_date": pool.expired_date.isoformat()})


def clock(sb: Sandbox, request: Request) -> Reply:
    if request.method == "POST":
        sb.state.clock.advance(float(body_json(request).get("advance_s", 0)))
    return ok({"now": sb.state.clock.now(), "offset_s": sb.state.clock.offset_s})


def inbound(sb: Sandbox, request: Request) -> Awaitable[Reply] | Reply:
    data = body_json(request)
    if not sb.config.inbox_url:
        return fail(409, "inbox_url is not configured: POST /_sandbox/config first")
    if not data.get("originator") or "msg" not in data:
        return fail(400, "inbound needs originator and msg")
    form = {
        "id": str(next(sb.state.inbound_ids)),
        "gateway_number": str(data.get("gateway_number") or DEFAULT_GATEWAY),
        "originator": str(data["originator"]), "msg": str(data["msg"]),
        "receive_date": str(data.get("receive_date") or provider_time(sb.state.clock.now())),
    }
    return push_inbound(sb, sb.config.inbox_url, form)


async def push_inbound(sb: Sandbox, url: str, form: dict[str, str]) -> Reply:
    """Push the inbound SMS now and answer with the receiver's status code."""
    result = await sb.pusher.push_inbound(sb.state, url, form)
    return ok({**form, **result})


def pushes(sb: Sandbox, request: Request) -> Reply:
    return ok({"pushes": list(sb.state.push_log)})


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "health"): health, ("POST", "reset"): reset,
    ("GET", "config"): get_config, ("POST", "config"): set_config,
    ("GET", "messages"): messages, ("GET", "requests"): requests,
    ("GET", "stats"): stats, ("GET", "counts"): counts,
    ("POST", "credits"): set_credits, ("GET", "clock"): clock, ("POST", "clock"): clock,
    ("POST", "inbound"): inbound, ("GET", "pushes"): pushes,
}


def handle(sb: Sandbox, request: Request) -> Reply | Awaitable[Reply]:
    """Route a /_sandbox/ request; bad input answers 400 with the reason."""
    name = request.path.removeprefix("/_sandbox/").strip("/")
    route = ROUTES.get((request.method, name))
    if route is None:
        known = any(key[1] == name for key in ROUTES)
        return fail(405 if known else 404, f"no route {request.method} /_sandbox/{name}")
    try:
        return route(sb, request)
    except KnobError as exc:
        return fail(400, str(exc))
    except (ValueError, TypeError) as exc:
        return fail(400, f"bad request to /_sandbox/{name}: {exc}")
