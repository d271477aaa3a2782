"""Accept messages: validate, then record and queue (or defer) each in one atomic step.

`accept.lua` does everything for a message at once: the idempotency check, the guard's
read-only check, the record with its timeline, the outbox entry and, when it goes out now,
the Celery task message itself on its queue list (built by `envelope.py`). A message is
therefore never recorded without its task, nor queued without its record, and a batch costs
one pipelined round trip. The outbox entry is checked `recheck_after_s` later: if the task
vanished (a worker SIGKILLed between kombu's BRPOP and its unacked bookkeeping) and the
message is still unclaimed, `sweep_outbox` publishes it again.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import redis as redis_lib
import structlog
from redis import Redis

from producer.core.contract import Channel, Job, SendRequest, State
from producer.core.durability import NotReplicated
from producer.core.envelope import build_send_batch_task
from producer.core.errors import InvalidMessage, KirimError, StoreUnavailable
from producer.core.guard import RecipientGuard, route_for
from producer.core.jobs import build_job, parse_request
from producer.core.records import AcceptResult, Admit, MessageStore, Stored
from producer.core.requeue import Requeuer, new_dispatch_token
from producer.core.routing import queue_for
from producer.core.settings import Settings
from producer.core.tenants import KeyPolicy, policy_refusal

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Accepted:
    """An accepted message: its id and how it will travel."""

    id: str
    channel: str
    to: str | None
    group: str | None
    encoding: str
    parts: int
    state: str
    duplicate: bool = False
    release_at: float | None = None


class Enqueuer:
    """The one way messages enter kirim (Python client, HTTP API and CLI all use it)."""

    def __init__(self, settings: Settings, redis: Redis, store: MessageStore,
                 requeuer: Requeuer, guard: RecipientGuard | None) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.requeuer = requeuer
        self.guard = guard

    def submit(self, request: SendRequest | dict[str, object], source: str = "python") -> Accepted:
        """Accept one message, or raise InvalidMessage / RecipientLimited / conflict."""
        result = self.commit([self.prepare(request, source)])[0]
        if isinstance(result, KirimError):
            raise result
        return result

    def submit_many(self, requests: Sequence[SendRequest | dict[str, object]],
                    source: str = "python") -> list[Accepted | KirimError]:
        """Accept many messages with one Redis pipeline; each item gets its own result."""
        results: list[Accepted | KirimError] = []
        staged: list[tuple[int, Admit]] = []
        for i, request in enumerate(requests):
            try:
                staged.append((i, self.prepare(request, source)))
                results.append(_PENDING)
            except KirimError as exc:
                results.append(exc)
        for (i, _), result in zip(staged, self.commit([item for _, item in staged]),
                                  strict=True):
            results[i] = result
        return results

    def prepare(self, request: SendRequest | dict[str, object], source: str,
                policy: KeyPolicy | None = None, *, alias: str | None = None) -> Admit:
        """Validate one request into what `commit` writes (no I/O); raises InvalidMessage.

        `policy` is the calling API key's (countries, groups, callback hosts); the Python
        client runs inside a trusted service and passes none. Either way a callback needs a
        signing secret for `source` in KIRIM_CALLBACK_SECRETS: nothing is sent unsigned.
        `alias` is the NusaSMS drop-in's 18-digit messageid; its messages' delivery reports go
        to the policy's `dr_callback_url` in NusaSMS's own (unsigned) GET shape.
        """
        req = request if isinstance(request, SendRequest) else parse_request(request)
        job = build_job(req, self.settings, source=source)
        if alias is not None:
            dr_url = policy.dr_callback_url if policy is not None else None
            job = job.model_copy(update={"alias": alias, **(
                {"callback_url": dr_url, "callback_format": "nusasms"} if dr_url else {})})
        if policy is not None:
            refusal = policy_refusal(job, source, policy, self.settings.callback_allow_private)
            if refusal is not None:
                raise refusal
        if (job.callback_url is not None and job.callback_format == "kirim"
                and not self.settings.callback_secrets_for(source)):
            raise InvalidMessage("callback_url", f"{source!r} has no callback signing secret:"
                                 f" add {source}:whsec_… to KIRIM_CALLBACK_SECRETS (make one"
                                 " with `kirim keys secret`), then send again")
        return self._admit(job)

    def commit(self, items: Sequence[Admit]) -> list[Accepted | KirimError]:
        """Write prepared messages in one round trip; each gets its own result.

        Raises StoreUnavailable when the connection to Redis failed (after redis-py's
        retries). Some of the messages may then have been written: the error names their
        ids, and resending with the same idempotency key is safe.
        """
        if not items:
            return []
        items, pushes = self._batched(items)
        try:
            outcomes = self.store.accept_many(items, pushes)
        except redis_lib.RedisError as exc:
            raise write_failed(exc, [item.job.id for item in items]) from exc
        except NotReplicated as exc:  # written on the master, not confirmed by replicas
            raise not_replicated(exc, [item.job.id for item in items]) from None
        unread = [o.id for o in outcomes if isinstance(o, Stored) and o.duplicate
                  and not o.state]
        states: dict[str, str | None] = {}
        if unread:  # duplicates found by idempotency key: their states in one round trip
            try:
                states = dict(zip(unread, self.store.states(unread), strict=True))
            except redis_lib.RedisError:
                log.warning("duplicate_state_unread", count=len(unread))
        return [self._result(item.job, outcome, states)
                for item, outcome in zip(items, outcomes, strict=True)]

    def _batched(self, items: Sequence[Admit]) -> tuple[list[Admit], list[tuple[str, str]]]:
        """Messages sent now on the sms and wa lanes, in chunks of up to send_batch_size per
        queue: each chunk's messages lose their own task and share one `kirim.send_batch`
        task, pushed after their records. OTPs and scheduled messages keep their own."""
        size = self.settings.send_batch_size
        out = list(items)
        chunks: dict[str, list[int]] = defaultdict(list)
        pushes: list[tuple[str, str]] = []
        if size < 2 or len(items) < 2:
            return out, pushes

        def flush(queue: str) -> None:
            chunk = chunks.pop(queue)
            if len(chunk) < 2:  # alone: its own kirim.send task stands
                return
            pushes.append((queue, build_send_batch_task(
                [(out[i].job, out[i].job_json, out[i].dispatch) for i in chunk])))
            for i in chunk:
                out[i] = replace(out[i], own_task=False)

        for i, item in enumerate(items):
            if item.job.channel == Channel.OTP or item.job.send_at is not None:
                continue
            chunks[item.queue].append(i)
            if len(chunks[item.queue]) == size:
                flush(item.queue)
        for queue in list(chunks):
            flush(queue)
        return out, pushes

    def _admit(self, job: Job) -> Admit:
        """What accept.lua needs for `job`: its JSON, task message and guard keys."""
        job_json = job.model_dump_json()
        dispatch = new_dispatch_token()
        now = time.time()
        guard = None
        if self.guard is not None and job.to is not None and job.send_at is None:
            guard = self.guard.check_spec(route_for(job.channel), job.to, job.text_hash)
        return Admit(job, job_json, dispatch, queue_for(job.channel),
                     now + self.requeuer.recheck_after_s, guard)

    @staticmethod
    def _result(job: Job, outcome: AcceptResult, states: dict[str, str | None]
                ) -> Accepted | KirimError:
        if isinstance(outcome, KirimError):
            return outcome
        if outcome.duplicate:  # a duplicate: the first message, as it is now
            state = outcome.state or states.get(outcome.id) or State.QUEUED.value
            return Accepted(outcome.id, job.channel.value, job.to, job.group, job.encoding,
                            job.parts, state, duplicate=True)
        deferred = outcome.state == State.DEFERRED
        return Accepted(job.id, job.channel.value, job.to, job.group, job.encoding, job.parts,
                        outcome.state or State.QUEUED.value,
                        release_at=outcome.score if deferred else None)


def write_failed(exc: BaseException, message_ids: Sequence[str]) -> StoreUnavailable:
    """The error for a write whose connection failed: what may have happened, what to do."""
    shown = ", ".join(message_ids[:3]) + (f" and {len(message_ids) - 3} more"
                                          if len(message_ids) > 3 else "")
    return StoreUnavailable(
        f"Redis unavailable ({type(exc).__name__}) while writing; the message(s) may have"
        f" been accepted as {shown}: check GET /v1/messages/<id>, or resend with the same"
        " Idempotency-Key (safe either way)")


def not_replicated(exc: NotReplicated, message_ids: Sequence[str]) -> NotReplicated:
    """NotReplicated of an accept: what may have happened, what to do."""
    shown = ", ".join(message_ids[:3]) + (f" and {len(message_ids) - 3} more"
                                          if len(message_ids) > 3 else "")
    out = NotReplicated(exc.wanted, exc.acked, exc.timeout_ms)
    out.args = (f"{exc}; the message(s) may still be sent as {shown}: resend with the same"
                " Idempotency-Key (safe either way), or check GET /v1/messages/<id>",)
    return out


_PENDING = KirimError("not processed")  # placeholder while a batch is staged
