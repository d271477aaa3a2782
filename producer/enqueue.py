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
from collections.abc import Sequence
from dataclasses import dataclass

import redis as redis_lib
from redis import Redis

from producer.contract import Job, SendRequest, State
from producer.dispatch import Dispatcher, new_dispatch
from producer.envelope import send_message
from producer.errors import IdempotencyConflict, KirimError, RecipientLimited, StoreUnavailable
from producer.guard import RecipientGuard, route_for
from producer.jobs import build_job, parse_request
from producer.keys import Keys
from producer.records import Admit, Created, MessageStore
from producer.routing import queue_for
from producer.settings import Settings


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
                 dispatcher: Dispatcher, guard: RecipientGuard | None) -> None:
        self.settings = settings
        self.redis = redis
        self.keys: Keys = store.keys
        self.store = store
        self.dispatcher = dispatcher
        self.guard = guard

    def submit(self, request: SendRequest | dict[str, object], source: str = "python") -> Accepted:
        """Accept one message, or raise InvalidMessage / RecipientLimited / conflict."""
        item = self.prepare(request, source)
        with _store_errors():
            result = self._result(item.job, self.store.accept(item))
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

    def prepare(self, request: SendRequest | dict[str, object], source: str) -> Admit:
        """Validate one request into what `commit` writes (no I/O); raises InvalidMessage."""
        req = request if isinstance(request, SendRequest) else parse_request(request)
        return self._admit(build_job(req, self.settings, source=source))

    def commit(self, items: Sequence[Admit]) -> list[Accepted | KirimError]:
        """Write prepared messages in one round trip; raises StoreUnavailable if Redis fails."""
        with _store_errors():
            outcomes = self.store.accept_many(items)
            return [self._result(item.job, outcome)
                    for item, outcome in zip(items, outcomes, strict=True)]

    def _admit(self, job: Job) -> Admit:
        """What accept.lua needs for `job`: its JSON, task message and guard keys."""
        job_json = job.model_dump_json()
        dispatch = new_dispatch()
        now = time.time()
        guard = None
        if self.guard is not None and job.to is not None and job.send_at is None:
            guard = self.guard.check_spec(route_for(job.channel), job.to, job.text_hash)
        return Admit(job, job_json, dispatch, send_message(job, job_json, dispatch, now),
                     queue_for(job.channel), now + self.dispatcher.recheck_after_s, guard)

    def _result(self, job: Job, outcome: Created | IdempotencyConflict | RecipientLimited
                ) -> Accepted | KirimError:
        if isinstance(outcome, KirimError):
            return outcome
        if not outcome.created:
            return self._existing(outcome.id, job)
        deferred = outcome.state == State.DEFERRED
        return Accepted(job.id, job.channel.value, job.to, job.group, job.encoding, job.parts,
                        outcome.state or State.QUEUED.value,
                        release_at=outcome.score if deferred else None)

    def _existing(self, message_id: str, job: Job) -> Accepted:
        state = self.store.states([message_id])[0] or State.QUEUED.value
        return Accepted(message_id, job.channel.value, job.to, job.group, job.encoding, job.parts,
                        state, duplicate=True)


_PENDING = KirimError("not processed")  # placeholder while a batch is staged


class _store_errors:
    """Turn redis-py connection errors into StoreUnavailable (nothing was written)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, redis_lib.RedisError):
            raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
