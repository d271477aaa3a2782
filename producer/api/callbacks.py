"""Receivers for what NusaSMS pushes to us: delivery reports and inbound SMS (issue 5).

NusaSMS signs nothing (docs/nusasms-api.md §1.8): the secret is the `{token}` in the URL
registered with NusaSMS (at least 32 random characters: Settings refuses shorter), compared in
constant time with KIRIM_CALLBACK_TOKEN; with no token configured every push is refused. With
KIRIM_CALLBACK_ALLOWED_IPS set, a push must also come from one of those addresses or ranges
(the address uvicorn reports: behind a proxy, run the API with --proxy-headers). A wrong
token or address is a plain 404, so the route's existence is not confirmed; a refused
address is logged (never the token).

The receiver never imports `worker`: a DR is validated and published by name
(`kirim.apply_dr` on `reports`), and the worker applies it with the same code as polls,
except that a push never settles an `unknown` message by itself (worker/delivery.py: a DR
pull confirms it first). Task arguments that carry a phone number or a text are published
with a masked `argsrepr`, which is all Flower and `celery inspect` show of them.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import time
from functools import lru_cache
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Request
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from producer.api.errors import ApiError
from producer.api.runtime import Runtime, runtime
from producer.core.publisher import inbound_argsrepr
from producer.core.routing import Queues, Tasks

log = structlog.get_logger("kirim.callbacks")
router = APIRouter(prefix="/callbacks", tags=["provider callbacks"])
Rt = Annotated[Runtime, Depends(runtime)]

DR_FIELDS = ("ref_no", "status", "sent_date", "err_code")
INBOUND_FIELDS = ("id", "gateway_number", "originator", "msg", "receive_date")
INBOUND_MAXLEN = 1_000_000
INBOUND_DEDUP_S = 86400
_REF_NO = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LETTER = re.compile(r"[A-Za-z]{1,4}")
_LIMITS = {"sent_date": 40, "err_code": 16, "id": 64, "gateway_number": 20,
           "originator": 32, "msg": 4096, "receive_date": 40}


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def allowed_networks(raw: str) -> tuple[IpNetwork, ...]:
    """KIRIM_CALLBACK_ALLOWED_IPS as networks (checked when the settings were loaded)."""
    return tuple(ipaddress.ip_network(item, strict=False)
                 for item in filter(None, (v.strip() for v in raw.split(","))))


def address_allowed(address: str, networks: tuple[IpNetwork, ...]) -> bool:
    """Whether `address` is in one of `networks` (an IPv4-mapped IPv6 address as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False  # no IP address (a Unix socket, a test client): not on any list
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def _check_push(rt: Runtime, token: str, request: Request, route: str) -> None:
    """404 unless the token is right and, with an allowlist, the sender's address is on it."""
    expected = rt.settings.callback_token.get_secret_value()
    token_ok = bool(expected) and hmac.compare_digest(token.encode(), expected.encode())
    networks = allowed_networks(rt.settings.callback_allowed_ips)
    address = request.client.host if request.client else "unknown"
    if networks and not address_allowed(address, networks):
        # token_ok tells a leaked token (or NusaSMS pushing from a new address) from a scan.
        log.warning("callback_address_refused", address=address, route=route,
                    token_ok=token_ok,
                    hint="not in KIRIM_CALLBACK_ALLOWED_IPS; if NusaSMS pushes from a new"
                         " address, add it there")
        raise ApiError(404, "not_found", "no such callback")
    if not token_ok:
        raise ApiError(404, "not_found", "no such callback")


def _too_long(fields: dict[str, str]) -> str | None:
    return next((k for k, v in fields.items() if len(v) > _LIMITS.get(k, 64)), None)


def dr_fields(query: dict[str, str], body: bytes) -> dict[str, str]:
    """The report's fields from the query and/or a JSON body (the body wins); validated."""
    fields = {k: v for k, v in query.items() if k in DR_FIELDS}
    if body.strip():
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ApiError(422, "invalid_json", f"body is not valid JSON: {exc}", "body") from exc
        if not isinstance(data, dict):
            raise ApiError(422, "invalid_request", "body must be a JSON object", "body")
        fields |= {str(k).lower(): str(v) for k, v in data.items()
                   if str(k).lower() in DR_FIELDS and v is not None}
    if not _REF_NO.fullmatch(fields.get("ref_no", "")):
        raise ApiError(422, "invalid_request", "ref_no: 1-64 letters, digits, _ . -", "ref_no")
    if not _LETTER.fullmatch(fields.get("status", "")):
        raise ApiError(422, "invalid_request", "status: a delivery status letter", "status")
    if (name := _too_long(fields)) is not None:
        raise ApiError(422, "invalid_request", f"{name}: too long", name)
    return fields


@router.api_route("/{token}/dr", methods=["GET", "POST"], summary="NusaSMS delivery report")
async def delivery_report(token: str, request: Request, rt: Rt) -> dict[str, Any]:
    """A pushed delivery report: validated and handed to the reports queue."""
    _check_push(rt, token, request, "dr")
    fields = dr_fields(dict(request.query_params), await request.body())
    await run_in_threadpool(rt.kirim.celery.send_task, Tasks.APPLY_DR, args=[fields],
                            queue=Queues.REPORTS)
    return {"ok": True, "ref_no": fields["ref_no"]}


@router.post("/{token}/inbound", summary="NusaSMS inbound SMS (push inbox)")
async def inbound(token: str, request: Request, rt: Rt) -> dict[str, Any]:
    """An inbound SMS: appended to the inbound stream, then forwarded if configured."""
    _check_push(rt, token, request, "inbound")
    form = await request.form()
    event = {k: str(form.get(k) or "") for k in INBOUND_FIELDS}
    if not event["originator"] or not event["msg"]:
        raise ApiError(422, "invalid_request", "originator and msg are required", "originator")
    if (name := _too_long(event)) is not None:
        raise ApiError(422, "invalid_request", f"{name}: too long", name)
    event["received_at"] = f"{time.time():.3f}"
    added = await run_in_threadpool(record_inbound, rt, event)
    return {"ok": True, "duplicate": not added}


def record_inbound(rt: Runtime, event: dict[str, str]) -> bool:
    """XADD the event (once per provider id), then publish the configured forwards."""
    keys, redis = rt.kirim.keys, rt.kirim.redis
    if event["id"] and not redis.set(keys.inbound_seen(event["id"]), "1", nx=True,
                                     ex=INBOUND_DEDUP_S):
        return False
    try:
        fields: dict[Any, Any] = dict(event)
        redis.xadd(keys.inbound, fields, maxlen=INBOUND_MAXLEN, approximate=True)
    except RedisError:
        if event["id"]:  # let NusaSMS's next push of the same id through
            redis.delete(keys.inbound_seen(event["id"]))
        raise
    settings = rt.settings
    # Flower and `celery inspect` show argsrepr, never the args: no text, a masked number.
    masked = {"argsrepr": inbound_argsrepr(event), "kwargsrepr": "{}"}
    if settings.inbound_task:
        rt.kirim.celery.send_task(settings.inbound_task, args=[event], **masked)
    if settings.inbound_webhook_url:
        rt.kirim.celery.send_task(Tasks.FORWARD_INBOUND, args=[event], queue=Queues.REPORTS,
                                  **masked)
    log.info("inbound_received", id=event["id"], gateway_number=event["gateway_number"])
    return True
