"""Accept messages: validate, place (queue, schedule or defer), record, publish.

A message is recorded before it is published, with its id in the outbox set in the same
atomic step; the id leaves the outbox once the task is on the broker. If publishing fails
(Redis lost between the two), the outbox sweeper publishes it later: nothing accepted is lost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis as redis_lib
import structlog
from kombu.exceptions import OperationalError
from redis import Redis

from producer.contract import Channel, Job, SendRequest, State
from producer.dispatch import Dispatcher, new_dispatch
from producer.errors import IdempotencyConflict, KirimError, RecipientLimited, StoreUnavailable
from producer.guard import GuardDecision, RecipientGuard, route_for
from producer.jobs import build_job, parse_request
from producer.keys import Keys
from producer.records import MessageStore
from producer.settings import Settings

log = structlog.get_logger(__name__)
_PENDING = KirimError("not processed")  # placeholder while a batch is staged


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


@dataclass(frozen=True)
class Placement:
    """Where a new message goes first."""

    state: State
    index: str
    score: float
    note: str = ""


class Enqueuer:
    """The one way messages enter kirim (Python client, HTTP API and CLI all use it)."""

    def __init__(self, settings: Settings, redis: Redis, store: MessageStore,
                 dispatcher: Dispatcher, guard: RecipientGuard | None) -> None:
        self.settings = settings
        self.redis = redis
        self.keys: Keys = store.keys
        self.store = store
        self.dispatcher = dispatcher
        self.publisher = dispatcher.publisher
        self.guard = guard

    def submit(self, request: SendRequest | dict[str, object], source: str = "python") -> Accepted:
        """Accept one message, or raise InvalidMessage / RecipientLimited / conflict."""
        req = request if isinstance(request, SendRequest) else parse_request(request)
        job = build_job(req, self.settings, source=source)
        with _store_errors():
            where = self._placement(job, self._guard_decisions([job])[0])
            dispatch = new_dispatch()
            created = self.store.create(job, where.state, where.index, where.score, dispatch,
                                        where.note)
        if not created.created:
            return self._existing(created.id, job)
        if where.state == State.QUEUED:
            self._publish([(job, dispatch)])
        return _accepted(job, where)

    def submit_many(self, requests: Sequence[SendRequest | dict[str, object]],
                    source: str = "python") -> list[Accepted | KirimError]:
        """Accept many messages with one Redis pipeline; each item gets its own result."""
        results: list[Accepted | KirimError] = []
        jobs: list[tuple[int, Job]] = []
        for i, request in enumerate(requests):
            try:
                req = request if isinstance(request, SendRequest) else parse_request(request)
                jobs.append((i, build_job(req, self.settings, source=source)))
                results.append(_PENDING)
            except KirimError as exc:
                results.append(exc)
        with _store_errors():
            decisions = self._guard_decisions([job for _, job in jobs])
        staged: list[tuple[int, Job, Placement, str]] = []
        for (i, job), decision in zip(jobs, decisions, strict=True):
            try:
                place = self._placement(job, decision)
            except RecipientLimited as exc:
                results[i] = exc
                continue
            staged.append((i, job, place, new_dispatch()))
            results[i] = _accepted(job, place)
        self._create_batch(staged, results)
        return results

    def _create_batch(self, staged: list[tuple[int, Job, Placement, str]],
                      results: list[Accepted | KirimError]) -> None:
        items = [(job, p.state, p.index, p.score, d, p.note) for _, job, p, d in staged]
        with _store_errors():
            created = self.store.create_many(items) if items else []
        to_publish = []
        for (i, job, place, dispatch), made in zip(staged, created, strict=True):
            if isinstance(made, IdempotencyConflict):
                results[i] = made
            elif not made.created:
                results[i] = self._existing(made.id, job)
            elif place.state == State.QUEUED:
                to_publish.append((job, dispatch))
        self._publish(to_publish)

    def _placement(self, job: Job, decision: GuardDecision | None) -> Placement:
        """Queued now, scheduled, or deferred by the guard (an OTP is refused instead)."""
        if job.send_at is not None:
            return Placement(State.DEFERRED, self.keys.deferred, job.send_at, "scheduled")
        if decision is not None and not decision.allowed:
            refusal = RecipientLimited(decision.reason or "limit",
                                       decision.retry_at or time.time())
            if job.channel == Channel.OTP:
                raise refusal
            return Placement(State.DEFERRED, self.keys.deferred, refusal.retry_at,
                             f"recipient limit: {refusal.reason}")
        return Placement(State.QUEUED, self.keys.outbox, time.time())

    def _guard_decisions(self, jobs: list[Job]) -> list[GuardDecision | None]:
        """The guard's read-only verdict for each job that it applies to, in one round trip."""
        decisions: list[GuardDecision | None] = [None] * len(jobs)
        if self.guard is None:
            return decisions
        checked = [i for i, job in enumerate(jobs) if job.to is not None and job.send_at is None]
        if checked:
            verdicts = self.guard.peek_many([(route_for(jobs[i].channel), jobs[i].to or "",
                                              jobs[i].text_hash) for i in checked])
            for i, verdict in zip(checked, verdicts, strict=True):
                decisions[i] = verdict
        return decisions

    def _publish(self, items: list[tuple[Job, str]]) -> None:
        if not items:
            return
        try:
            self.publisher.publish_many(items)
            self.dispatcher.published([job.id for job, _ in items], time.time())
        except (OperationalError, redis_lib.RedisError, OSError) as exc:
            # Recorded and in the outbox: the sweeper publishes them once the broker is back.
            log.warning("publish_deferred_to_outbox", count=len(items), error=type(exc).__name__)

    def _existing(self, message_id: str, job: Job) -> Accepted:
        state = self.store.states([message_id])[0] or State.QUEUED.value
        return Accepted(message_id, job.channel.value, job.to, job.group, job.encoding, job.parts,
                        state, duplicate=True)


def _accepted(job: Job, where: Placement) -> Accepted:
    release = where.score if where.state == State.DEFERRED else None
    return Accepted(job.id, job.channel.value, job.to, job.group, job.encoding, job.parts,
                    where.state.value, release_at=release)


class _store_errors:
    """Turn redis-py connection errors into StoreUnavailable (nothing was written)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, redis_lib.RedisError):
            raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
