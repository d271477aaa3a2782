"""NusaSMS-compatible drop-in: existing NusaSMS client code only changes its base URL.

Same paths, parameters, credentials and reply shapes as the provider (docs/nusasms-api.md
§1.1–1.8), always HTTP 200 with the outcome in `status`:

- credentials: `user` (SMS) or `username` (WA) with `password`, as query or form fields, or
  HTTP Basic auth (NusaSMS's own Python sample). The user is the kirim API key's name and the
  password is the key itself.
- `messageid` is 18 digits, as NusaSMS's are (producer/core/aliases.py): kirim keeps it with
  the message and maps it both ways, so `cmd=DR&ref_no=…`, `GET /v1/messages/{id}` and
  `kirim status` take it.
- `/api/v3/sendsms/group` sends to an address-book group the key may use (`-55` otherwise).
- `cmd=DR` answers the report (`ref_no`, `status` letter, `sent_date`, `err_code`) built
  from kirim's record of the message; `cmd=CREDITS` the last polled balance of `type` (sms,
  wa). A key with a `dr_callback_url` in its policy gets NusaSMS's DR callback (a GET).

Refusals map to the provider code a NusaSMS client already handles:
-3 a destination country the key may not send to, -5 bad credentials or scope, -6 no GSM,
-12 no text, -13 bad number, -22 any other invalid input (and a DR for an id the key does
not own), -55 a group the key may not use, -77 / -78 the recipient guard refuses an OTP now,
-26 transient (Redis unavailable, the key over its rate, the address waiting out failed
logins): a client retries. Non-OTP messages over a guard limit are accepted and deferred.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import redis as redis_lib
import structlog
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from producer.api.auth import Caller, client_address
from producer.api.dropin_replies import flat, results
from producer.api.errors import ApiError
from producer.api.messages import stored_credits
from producer.api.runtime import Runtime
from producer.core.aliases import is_alias, new_alias
from producer.core.contract import Channel
from producer.core.errors import (
    AliasTaken,
    InvalidMessage,
    KirimError,
    RecipientLimited,
    StoreUnavailable,
)
from producer.core.nusasms_report import report_fields
from producer.core.records import Admit
from producer.core.tenants import NotAllowed, Scope

log = structlog.get_logger(__name__)
router = APIRouter(tags=["NusaSMS drop-in"])

_GUARD_CODES = {"same_text": "-77", "per_recipient": "-78", "blocked": "-78"}
_METHODS = ["GET", "POST"]
_PARAMS_DOC = (" Parameters as query string or form fields (POST): `user`/`username` and"
               " `password` (or HTTP Basic auth), `output` (xml default, json). Reply shapes"
               " as NusaSMS §1.4.")
_ALIAS_TRIES = 3  # fresh 18-digit ids drawn before giving up (a clash is ~1 in 10^10)


@router.api_route("/api/v3/sendsms/plain", methods=_METHODS, summary="NusaSMS-compatible SMS",
                  response_class=Response, description="`GSM`, `SMSText`, `otp=Y` for the OTP"
                  " lane, `unicode` (accepted; the encoding is computed)." + _PARAMS_DOC)
async def send_sms(request: Request) -> Response:
    """Enqueue an SMS (or OTP) the way NusaSMS's send endpoint takes it."""
    params = await _params(request)
    channel = Channel.OTP if params.get("otp", "").upper() == "Y" else Channel.SMS
    return await _send(request, params, channel, params.get("SMSText", ""))


@router.api_route("/api/v3/sendwa/plain", methods=_METHODS, response_class=Response,
                  summary="NusaSMS-compatible WhatsApp", description="`GSM`, `text` (at most"
                  " 1000 characters)." + _PARAMS_DOC)
async def send_wa(request: Request) -> Response:
    """Enqueue a WhatsApp message the way NusaSMS's endpoint takes it."""
    params = await _params(request)
    return await _send(request, params, Channel.WA, params.get("text", ""))


@router.api_route("/api/v3/sendsms/group", methods=_METHODS, response_class=Response,
                  summary="NusaSMS-compatible group send", description="`group` (a NusaSMS"
                  " address-book group the key may use), `SMSText`. Answers `status`,"
                  " `campaign_name`, `group`; -55 for a group the key may not use." + _PARAMS_DOC)
async def send_group(request: Request) -> Response:
    """Enqueue one SMS to an address-book group, answered as NusaSMS's group route."""
    params = await _params(request)
    rt: Runtime = request.app.state.runtime
    group = params.get("group", "")

    def reply(status: str, campaign: str = "") -> Response:
        return results(request, params, {"status": status, "campaign_name": campaign,
                                         "group": group})

    if not rt.settings.api_dropin_enabled:
        return reply("-22")
    caller = await _authorised(request, rt, params)
    if isinstance(caller, str):
        return reply(caller)
    text = params.get("SMSText", "")
    if not group.strip() or not caller.policy.allows_group(group):
        return reply("-55")  # kirim cannot see NusaSMS's groups: not this key's is absent
    if not text.strip():
        return reply("-12")
    status, _ = await _enqueue(rt, caller, {"channel": Channel.SMS, "group": group,
                                            "text": text})
    return reply(status, f"Group-Api-Campaign-{int(time.time())}" if status == "0" else "")


@router.api_route("/api/command", methods=_METHODS, response_class=Response,
                  summary="NusaSMS-compatible commands", description="`cmd=CREDITS` with"
                  " `type` (sms default, wa) answers `{\"value\", \"expiredDate\"}` from the"
                  " last polled balance (not a live call). `cmd=DR` with `ref_no` (the 18-digit"
                  " messageid) answers `{\"ref_no\", \"status\", \"sent_date\", \"err_code\"}`"
                  " from kirim's record; -22 for an id the key does not own." + _PARAMS_DOC)
async def command(request: Request) -> Response:
    """The provider's command endpoint: CREDITS and DR."""
    params = await _params(request)
    rt: Runtime = request.app.state.runtime
    caller = await _authorised(request, rt, params, Scope.READ)
    if isinstance(caller, str):
        return _reply(request, params, caller, "", "")
    cmd = params.get("cmd", "").upper()
    try:
        if cmd == "CREDITS":
            return await _credits(request, params, rt)
        if cmd == "DR":
            return await _report(request, params, rt, caller)
    except (StoreUnavailable, redis_lib.RedisError) as exc:
        return _store_down(request, params, exc)
    return _reply(request, params, "-22", "", "")


async def _credits(request: Request, params: dict[str, str], rt: Runtime) -> Response:
    product = (params.get("type") or "sms").lower()
    if product not in ("sms", "wa"):
        return _reply(request, params, "-22", "", "")
    reading = await run_in_threadpool(stored_credits, rt, product)
    if reading is None:
        return _reply(request, params, "-26", "", "")
    return flat(request, params, {"value": reading.value, "expiredDate": reading.expires or ""})


async def _report(request: Request, params: dict[str, str], rt: Runtime,
                  caller: Caller) -> Response:
    ref_no = params.get("ref_no", "").strip()
    record = await run_in_threadpool(rt.kirim.store.get, ref_no) if is_alias(ref_no) else None
    if record is None or not caller.owns(record.fields.get("source")) \
            or record.fields.get("nusasms_id") != ref_no:
        return _reply(request, params, "-22", "", "")  # unknown, or another key's
    return flat(request, params, report_fields(record, ref_no))


async def _params(request: Request) -> dict[str, str]:
    """Query and form fields (the form wins), with Basic auth credentials if none given."""
    params = dict(request.query_params)
    if request.method == "POST":
        form: FormData = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and not params.get("password"):
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).decode(
                ).partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            user = password = ""
        params.update(user=params.get("user") or params.get("username") or user,
                      password=password)
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
    status, accepted = await _enqueue(rt, caller, {"channel": channel, "to": gsm, "text": text})
    if accepted is None:
        return _reply(request, params, status, "", gsm)
    return _reply(request, params, "0", accepted[0], accepted[1] or gsm)


async def _enqueue(rt: Runtime, caller: Caller, body: dict[str, Any]
                   ) -> tuple[str, tuple[str, str | None] | None]:
    """Accept one drop-in message: ("0", (its 18-digit id, its number)), or (status, None)."""
    try:
        await rt.quota.take(caller, 1)
        for _ in range(_ALIAS_TRIES):
            admit: Admit = rt.kirim.enqueuer.prepare(body, caller.name, caller.policy,
                                                     alias=new_alias())
            outcome = await rt.commits.commit(admit)
            if not isinstance(outcome, AliasTaken):
                break
        if isinstance(outcome, KirimError):
            raise outcome
    except ApiError:  # over the key's rate: transient, as NusaSMS's own -26
        return "-26", None
    except NotAllowed as exc:  # a country not covered for this key: NusaSMS's -3
        return ("-3" if exc.rule == "countries" else "-55" if exc.rule == "groups"
                else "-22"), None
    except InvalidMessage as exc:
        return ("-13" if exc.field == "to" else "-22"), None
    except RecipientLimited as exc:
        return _GUARD_CODES.get(exc.reason, "-78"), None
    except (StoreUnavailable, AliasTaken, redis_lib.RedisError) as exc:
        log.warning("dropin_store_unavailable", error=type(exc).__name__)
        return "-26", None
    return "0", (admit.job.alias or outcome.id, outcome.to)


def _store_down(request: Request, params: dict[str, str], exc: Exception,
                gsm: str = "") -> Response:
    log.warning("dropin_store_unavailable", error=type(exc).__name__)
    return _reply(request, params, "-26", "", gsm)


def _reply(request: Request, params: dict[str, str], status: str, message_id: str,
           destination: str) -> Response:
    """The provider's §1.4 reply: XML by default, JSON with output=json; always HTTP 200."""
    return results(request, params, {"status": status, "messageid": message_id,
                                     "destination": destination})
