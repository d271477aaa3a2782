"""NusaSMS-compatible drop-in: existing NusaSMS client code only changes its base URL.

Same paths, parameters and reply shapes as the provider (docs/nusasms-api.md §1.1–1.6), always
HTTP 200 with the outcome in `status`. `user` (or `username`) is the kirim API key's name and
`password` is the API key itself. `messageid` is kirim's message id (22 hex characters, not
NusaSMS's 18 digits): read it as an opaque string.

Refusals map to the provider code a NusaSMS client already handles:
-5 bad credentials, -6 no GSM, -12 no text, -13 bad number, -22 any other invalid input,
-77 / -78 the recipient guard refuses an OTP now (same text / per-number cap, as NusaSMS would
answer), -26 Redis unavailable (transient: a client retries). Non-OTP messages over a guard
limit are accepted and deferred, as on /v1.
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

import redis as redis_lib
import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from producer.api.auth import Caller, client_address
from producer.api.errors import ApiError
from producer.api.messages import stored_credits
from producer.api.runtime import Runtime
from producer.core.contract import Channel
from producer.core.errors import InvalidMessage, KirimError, RecipientLimited, StoreUnavailable
from producer.core.tenants import NotAllowed, Scope

log = structlog.get_logger(__name__)
router = APIRouter(tags=["NusaSMS drop-in"])

_GUARD_CODES = {"same_text": "-77", "per_recipient": "-78", "blocked": "-78"}
_METHODS = ["GET", "POST"]
_PARAMS_DOC = (" Parameters as query string or form fields (POST): `user`/`username`,"
               " `password`, `GSM`, `output` (xml default, json). Reply shapes as NusaSMS §1.4.")


@router.api_route("/api/v3/sendsms/plain", methods=_METHODS, summary="NusaSMS-compatible SMS",
                  response_class=Response, description="`SMSText`, `otp=Y` for the OTP lane,"
                  " `unicode` (accepted; the encoding is computed)." + _PARAMS_DOC)
async def send_sms(request: Request) -> Response:
    """Enqueue an SMS (or OTP) the way NusaSMS's send endpoint takes it."""
    params = await _params(request)
    channel = Channel.OTP if params.get("otp", "").upper() == "Y" else Channel.SMS
    return await _send(request, params, channel, params.get("SMSText", ""))


@router.api_route("/api/v3/sendwa/plain", methods=_METHODS, response_class=Response,
                  summary="NusaSMS-compatible WhatsApp", description="`text` (at most 1000"
                  " characters)." + _PARAMS_DOC)
async def send_wa(request: Request) -> Response:
    """Enqueue a WhatsApp message the way NusaSMS's endpoint takes it."""
    params = await _params(request)
    return await _send(request, params, Channel.WA, params.get("text", ""))


@router.api_route("/api/command", methods=_METHODS, response_class=Response,
                  summary="NusaSMS-compatible commands", description="`cmd=CREDITS` answers"
                  " `{\"value\", \"expiredDate\"}` from the last polled balance (not a live"
                  " call). Other commands answer status -22.")
async def command(request: Request) -> Response:
    """The provider's command endpoint (CREDITS only)."""
    params = await _params(request)
    rt: Runtime = request.app.state.runtime
    caller = await _authorised(request, rt, params, Scope.READ)
    if isinstance(caller, str):
        return _reply(request, params, caller, "", "", force_json=True)
    if params.get("cmd", "").upper() != "CREDITS":
        return _reply(request, params, "-22", "", "", force_json=True)
    try:
        reading = await run_in_threadpool(stored_credits, rt)
    except redis_lib.RedisError as exc:
        return _store_down(request, params, exc)
    if reading is None:
        return _reply(request, params, "-26", "", "", force_json=True)
    request.state.outcome = "0"
    return JSONResponse({"value": reading.value, "expiredDate": reading.expires or ""})


async def _params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    if request.method == "POST":
        form: FormData = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


async def _authorised(request: Request, rt: Runtime, params: dict[str, str],
                      scope: Scope = Scope.SEND) -> Caller | str:
    """The key named by user/username whose key is `password` and that holds `scope`, or
    the status to answer: -5 (bad credentials or scope), -26 (transient: this address is
    waiting out too many failures, or Redis is down). Failures count toward the address's
    limit (producer/api/auth.py)."""
    address = client_address(request)
    if rt.failed_auth.blocked_for(address):
        return "-26"
    user = params.get("user") or params.get("username") or ""
    entry = rt.keyring.check(user, params.get("password", ""))
    if entry is None:
        try:
            await run_in_threadpool(rt.failed_auth.failed, address)
        except redis_lib.RedisError:
            return "-26"
        return "-5"
    caller = rt.keyring.caller(entry)
    return caller if caller.scopes & {scope, Scope.ADMIN} else "-5"


async def _send(request: Request, params: dict[str, str], channel: Channel,
                text: str) -> Response:
    rt: Runtime = request.app.state.runtime
    gsm = params.get("GSM", "")
    if not rt.settings.api_dropin_enabled:
        return _reply(request, params, "-22", "", gsm)
    caller = await _authorised(request, rt, params)
    if isinstance(caller, str):
        return _reply(request, params, caller, "", gsm)
    if not gsm.strip():
        return _reply(request, params, "-6", "", gsm)
    if not text.strip():
        return _reply(request, params, "-12", "", gsm)
    body: dict[str, Any] = {"channel": channel, "to": gsm, "text": text}
    try:
        await run_in_threadpool(rt.quota.take, caller, 1)
        admit = rt.kirim.enqueuer.prepare(body, caller.name, caller.policy)
        outcome = await rt.commits.commit(admit)
        if isinstance(outcome, KirimError):
            raise outcome
        accepted = outcome
    except ApiError:  # over the key's rate: transient, as NusaSMS's own -26
        return _reply(request, params, "-26", "", gsm)
    except NotAllowed as exc:  # a country not covered for this key: NusaSMS's -3
        return _reply(request, params, "-3" if exc.rule == "countries" else "-22", "", gsm)
    except InvalidMessage as exc:
        return _reply(request, params, "-13" if exc.field == "to" else "-22", "", gsm)
    except RecipientLimited as exc:
        return _reply(request, params, _GUARD_CODES.get(exc.reason, "-78"), "", gsm)
    except (StoreUnavailable, redis_lib.RedisError) as exc:
        return _store_down(request, params, exc, gsm)
    return _reply(request, params, "0", accepted.id, accepted.to or gsm)


def _store_down(request: Request, params: dict[str, str], exc: Exception,
                gsm: str = "") -> Response:
    log.warning("dropin_store_unavailable", error=type(exc).__name__)
    return _reply(request, params, "-26", "", gsm)


def _reply(request: Request, params: dict[str, str], status: str, message_id: str,
           destination: str, force_json: bool = False) -> Response:
    """The provider's §1.4 reply: XML by default, JSON with output=json; always HTTP 200."""
    request.state.outcome = status
    if force_json or params.get("output", "xml").lower() == "json":
        return JSONResponse({"results": [{"status": status, "messageid": message_id,
                                          "destination": destination}]})
    xml = ('<?xml version="1.0" encoding="UTF-8"?><results><result>'
           f"<status>{escape(status)}</status><messageid>{escape(message_id)}</messageid>"
           f"<destination>{_xml_text(destination)}</destination></result></results>")
    return Response(xml, media_type="application/xml")


# Characters XML 1.0 cannot carry at all (escaping does not help): a refused GSM is echoed
# back as the caller sent it, and a control character in it made the reply unparseable.
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    """`value` escaped for XML, with characters XML cannot hold replaced by U+FFFD."""
    return escape(_XML_INVALID.sub("\ufffd", value))
