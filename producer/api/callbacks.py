"""Receivers for what NusaSMS pushes to us: delivery reports and inbound SMS (issue 5).

NusaSMS signs nothing (docs/nusasms-api.md §1.8): the secret is the `{token}` in the URL
registered with NusaSMS, compared in constant time with KIRIM_CALLBACK_TOKEN; with no token
configured every push is refused. A wrong token is a plain 404, so the route's existence
is not confirmed. The receiver never imports `worker`: a DR is validated and published by
name (`kirim.apply_dr` on `reports`), and the worker applies it with the same code as polls.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Request
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from producer.api.errors import ApiError
from producer.api.runtime import Runtime, runtime
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


def _check_token(rt: Runtime, token: str) -> None:
    expected = rt.settings.callback_token.get_secret_value()
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
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
    _check_token(rt, token)
    fields = dr_fields(dict(request.query_params), await request.body())
    await run_in_threadpool(rt.kirim.celery.send_task, Tasks.APPLY_DR, args=[fields],
                            queue=Queues.REPORTS)
    return {"ok": True, "ref_no": fields["ref_no"]}


@router.post("/{token}/inbound", summary="NusaSMS inbound SMS (push inbox)")
async def inbound(token: str, request: Request, rt: Rt) -> dict[str, Any]:
    """An inbound SMS: appended to the inbound stream, then forwarded if configured."""
    _check_token(rt, token)
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
    if settings.inbound_task:
        rt.kirim.celery.send_task(settings.inbound_task, args=[event])
    if settings.inbound_webhook_url:
        rt.kirim.celery.send_task(Tasks.FORWARD_INBOUND, args=[event], queue=Queues.REPORTS)
    log.info("inbound_received", id=event["id"], gateway_number=event["gateway_number"])
    return True
