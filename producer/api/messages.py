"""The /v1 routes: send one or many, read a message, credits, dead letters, health."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response

from producer.api.auth import Caller, require
from producer.api.errors import ApiError, kirim_error_detail
from producer.api.runtime import Runtime, runtime
from producer.api.schemas import (
    AcceptedMessage,
    BatchRequest,
    BatchResult,
    Credits,
    DeadLetterList,
    DeadLetterOut,
    ErrorBody,
    Health,
    MessageStatus,
    Replayed,
    TimelineEntry,
)
from producer.core.contract import SendRequest, sent_api
from producer.core.deadletters import DeadLetter
from producer.core.enqueue import Accepted
from producer.core.errors import KirimError, MessageNotFound
from producer.core.records import Admit, MessageRecord
from producer.core.redis_text import text_map
from producer.core.tenants import Scope

Rt = Annotated[Runtime, Depends(runtime)]
Sender = Annotated[Caller, Depends(require(Scope.SEND))]
Reader = Annotated[Caller, Depends(require(Scope.READ))]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody} for s in (401, 503, *statuses)}


router = APIRouter()
v1 = APIRouter(prefix="/v1", tags=["messages"])


@v1.post("/messages", status_code=202, response_model=AcceptedMessage,
         summary="Enqueue one message", responses=_errors(409, 413, 422, 429),
         description="Validates, records and queues one SMS, WhatsApp or OTP. An OTP the"
         " recipient guard refuses now gets 429 with Retry-After; an SMS or WhatsApp is deferred"
         " instead. The same `Idempotency-Key` (header or body) with the same body returns the"
         " first message (`duplicate: true`); with a different body, 409.")
async def send_one(body: SendRequest, rt: Rt, caller: Sender,
                   idempotency_key: Annotated[str | None, Header(max_length=128)] = None
                   ) -> Response:
    """Enqueue one message: validated here, written by the group commit (commits.py)."""
    if idempotency_key is not None:
        if body.idempotency_key not in (None, idempotency_key):
            raise ApiError(422, "invalid_request", "idempotency_key: the body and the"
                           " Idempotency-Key header disagree; send one of them", "idempotency_key")
        body = body.model_copy(update={"idempotency_key": idempotency_key})
    await rt.quota.take(caller, 1)
    admit = rt.kirim.enqueuer.prepare(body, caller.name, caller.policy)
    outcome = await rt.commits.commit(admit)
    if isinstance(outcome, KirimError):
        raise outcome
    return _json(202, _accepted(outcome))


@v1.post("/messages/batch", response_model=BatchResult, summary="Enqueue many messages",
         responses={207: {"model": BatchResult, "description": "some items refused"},
                    **_errors(413, 422)},
         description="Each item has the shape of POST /v1/messages and gets its own result;"
         " valid items are accepted even when others are refused (one Redis round trip)."
         " 200 when every item was accepted, 207 when any was refused.")
async def send_batch(body: BatchRequest, rt: Rt, caller: Sender) -> Response:
    """Enqueue many messages: validated here in slices, written by the group commit."""
    limit = rt.settings.api_batch_max
    if not body.messages:
        raise ApiError(422, "invalid_request", "messages: must hold at least one message",
                       "messages")
    if len(body.messages) > limit:
        raise ApiError(422, "invalid_request", f"messages: {len(body.messages)} items; at most"
                       f" {limit} per request (KIRIM_API_BATCH_MAX): split the batch", "messages")
    await rt.quota.take(caller, len(body.messages))
    enqueuer = rt.kirim.enqueuer
    outcomes: list[Accepted | KirimError | None] = [None] * len(body.messages)
    staged: list[tuple[int, Admit]] = []
    for i, raw in enumerate(body.messages):
        try:
            staged.append((i, enqueuer.prepare(raw, caller.name, caller.policy)))
        except KirimError as exc:
            outcomes[i] = exc
        if i % _SLICE == _SLICE - 1:
            await asyncio.sleep(0)  # let other requests (an OTP) in between slices
    written = await rt.commits.commit_many([item for _, item in staged])
    for (i, _), outcome in zip(staged, written, strict=True):
        outcomes[i] = outcome
    results = [_batch_item(i, out) for i, out in enumerate(outcomes) if out is not None]
    accepted = sum(isinstance(out, Accepted) for out in outcomes)
    return _json(200 if accepted == len(results) else 207, {
        "accepted": accepted, "refused": len(results) - accepted, "results": results})


# Messages validated between two yields to the event loop (~5 ms of work).
_SLICE = 100


def _json(status: int, body: object) -> Response:
    """A JSON reply written directly (the response models above document the shapes; the
    dicts are built to match them, which tests check against the OpenAPI schema)."""
    return Response(json.dumps(body, separators=(",", ":")), status_code=status,
                    media_type="application/json")


def _accepted(a: Accepted) -> dict[str, Any]:
    """AcceptedMessage as a dict."""
    return {"id": a.id, "channel": a.channel, "to": a.to, "group": a.group,
            "encoding": a.encoding, "parts": a.parts, "state": a.state,
            "duplicate": a.duplicate, "release_at": a.release_at}


def _batch_item(index: int, outcome: Accepted | KirimError) -> dict[str, Any]:
    """BatchItem as a dict."""
    if isinstance(outcome, Accepted):
        item = _accepted(outcome)
        del item["group"]
        return {"index": index, "ok": True, **item, "error": None}
    _, code, field, message = kirim_error_detail(outcome)
    return {"index": index, "ok": False, **_NO_MESSAGE,
            "error": {"code": code, "field": field, "message": message}}


_NO_MESSAGE = dict.fromkeys(("id", "channel", "to", "encoding", "parts", "state", "duplicate",
                             "release_at"))


@v1.get("/messages/{message_id}", response_model=MessageStatus, summary="A message's state",
        responses=_errors(403, 404), description="State, delivery facts and the full timeline."
        " A key sees only the messages it created (an `admin` key sees all); any other id"
        " answers 404, as if it did not exist.")
def get_message(message_id: str, rt: Rt, caller: Reader) -> MessageStatus:
    """Read one message (the caller's own)."""
    record = rt.kirim.store.get(message_id)
    if record is None or not caller.owns(record.fields.get("source")):
        raise MessageNotFound(f"no message {message_id!r} (unknown id, or older than"
                              f" KIRIM_MESSAGE_TTL_S={rt.settings.message_ttl_s} s)")
    return _status(record)


def _status(record: MessageRecord) -> MessageStatus:
    f = record.fields
    created_at, metadata, unreadable, (sender, media) = _job_facts(record)
    return MessageStatus(
        id=record.id, state=record.state, channel=f.get("channel"), to=f.get("to") or None,
        group=f.get("group") or None, encoding=f.get("encoding"),
        parts=int(f["parts"]) if f.get("parts") else None, source=f.get("source"),
        attempts=record.attempts, created_at=created_at,
        provider_id=f.get("provider_id") or None, nusasms_id=f.get("nusasms_id") or None,
        last_code=f.get("last_code") or None,
        last_code_name=f.get("last_code_name") or None, reason=f.get("reason") or None,
        api=sent_api(f), sender=sender, media=media,
        sent_date=f.get("dr_sent_date") or None,
        delivered_date=f.get("dr_delivered_date") or None,
        read_date=f.get("dr_read_date") or None,
        metadata=metadata, unreadable=unreadable,
        timeline=[TimelineEntry(state=str(e.get("state")), at=float(e.get("at", 0)),
                                note=e.get("note") or None) for e in record.timeline])


def _job_facts(record: MessageRecord
               ) -> tuple[float | None, dict[str, Any], list[str], tuple[str | None, str | None]]:
    """(created_at, metadata, unreadable, (sender, media)) from the stored job, which may be
    unreadable; media is a WhatsApp file's URL or name, never its bytes."""
    try:
        job = record.job
    except (KeyError, ValueError):  # no job, or one stored before NaN was refused (null)
        accepted = next((e for e in record.timeline if e.get("state") == "accepted"), {})
        at = accepted.get("at")
        return (float(at) if isinstance(at, int | float) else None), {}, ["job"], (None, None)
    return job.created_at, dict(job.metadata), [], (job.sender, job.media_url or job.file_name)


@v1.get("/credits", response_model=Credits, summary="Account balance",
        responses=_errors(), description="The balance the credits poller last read from"
        " NusaSMS (this does not call the provider); 503 until a first reading exists.")
def credits(rt: Rt, caller: Reader) -> Credits:
    """The last CREDITS reading (SMS), with the WhatsApp wallet's under `wa`."""
    reading = stored_credits(rt)
    if reading is None:
        raise ApiError(503, "no_credits_reading", "no CREDITS reading yet: the credits poller"
                       " (celery beat with a worker) has not stored a balance; retry later")
    return reading.model_copy(update={"wa": stored_credits(rt, "wa")})


def stored_credits(rt: Rt, product: str = "sms") -> Credits | None:
    """A wallet's credits hash as a Credits, or None when the poller has not written it."""
    raw = rt.kirim.redis.hgetall(rt.kirim.keys.credits_for(product))
    f = text_map(raw)
    if not f.get("value"):
        return None
    value = _number(f["value"])
    read_at = float(f["read_at"]) if f.get("read_at") else None
    return Credits(value=value, expires=f.get("expires") or None, read_at=read_at,
                   age_s=round(time.time() - read_at, 3) if read_at else None,
                   product=product, api=f.get("api") or None)


def _number(raw: str) -> int | float | str:
    """The balance as the provider gave it: an int, a float, or (if neither) the raw text."""
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


dlq = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])


@dlq.get("", response_model=DeadLetterList, summary="List dead letters", responses=_errors(),
         description="Newest first; `code` keeps only one NusaSMS status code (e.g. -13). A key"
         " lists only its own messages' dead letters (an `admin` key lists all).")
def list_dead(rt: Rt, caller: Reader, code: str | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> DeadLetterList:
    """Dead letters (the caller's own)."""
    source = None if caller.admin else caller.name
    items = [_letter(d) for d in rt.dead_letters.list(limit, code=code, source=source)]
    return DeadLetterList(count=len(items), items=items)


@dlq.post("/{letter_id}/replay", response_model=Replayed, summary="Replay a dead letter",
          responses=_errors(403, 404, 409), description="By stream entry id or message id: the"
          " message goes back to `queued` and through the whole pipeline (guard included). A"
          " key replays only its own messages (needs the `send` scope; `admin` replays any).")
def replay_dead(letter_id: str, rt: Rt, caller: Sender) -> Replayed:
    """Send one dead message (the caller's own) again."""
    letter = rt.dead_letters.get(letter_id)
    if letter is None or not caller.owns(letter.job.get("source")):
        raise ApiError(404, "not_found", f"no dead letter {letter_id!r} (entry id or message"
                       " id); list them with GET /v1/dead-letters")
    if not rt.dead_letters.replay(letter):
        raise ApiError(409, "not_dead", f"message {letter.message_id} is no longer dead;"
                       " nothing was replayed")
    return Replayed(message_id=letter.message_id, entry_id=letter.entry_id, state="queued")


def _letter(d: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(entry_id=d.entry_id, message_id=d.message_id, reason=d.reason,
                         code=d.code, code_name=d.code_name, attempts=d.attempts,
                         last_reply=d.last_reply, at=d.at, channel=d.job.get("channel"),
                         to=d.job.get("to"))


@router.get("/healthz", response_model=Health, tags=["operations"], summary="Health",
            responses={503: {"model": ErrorBody}}, description="Pings Redis (no API key).")
def healthz(rt: Rt) -> Health:
    """200 when Redis answers, else 503."""
    rt.kirim.redis.ping()
    return Health(status="ok")


router.include_router(v1)
router.include_router(dlq)
