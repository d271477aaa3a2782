"""Message records in Redis: create once, move forward only, read back with a timeline.

Every write is one Lua script, so a record, its timeline and the indexes that point at it
(outbox, deferred set, DR set, dead letters) never disagree.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError

from producer.core import lua
from producer.core.aliases import is_alias
from producer.core.contract import TRANSITIONS, WA_FIELDS, Channel, Job, State
from producer.core.durability import Durability
from producer.core.envelope import build_send_task
from producer.core.errors import AliasTaken, IdempotencyConflict, RecipientLimited, StoreUnavailable
from producer.core.guard import RecipientGuard
from producer.core.keys import Keys
from producer.core.redis_text import text, text_map, text_or_none
from producer.core.routing import LANE_CIRCUITS

ZAdd = tuple[str, float, str]


@dataclass(frozen=True)
class Stored:
    """What `create` or `accept` did: `duplicate` when the id or idempotency key already
    existed (then `id` is the first message's).

    `accept` also says where the new message went: its state and index score (the release
    time of a deferred one).
    """

    id: str
    duplicate: bool
    state: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class Admit:
    """One new message for `accept`: the job, its task message and where its checks live."""

    job: Job
    job_json: str
    dispatch: str
    queue: str
    outbox_due: float  # outbox score of a queued message: when the sweeper checks it
    # RecipientGuard.check_spec (2 keys; text hash + 3 limits), None = no guard
    guard: tuple[list[str], list[str]] | None
    # False when a kirim.send_batch task pushed after it carries it (enqueue.py).
    own_task: bool = True

    @cached_property
    def task_message(self) -> str:
        """Its `kirim.send` task message (envelope.py), pushed on the queue if it goes now;
        "" when a batch task carries it. Built once, and only when used."""
        if not self.own_task:
            return ""
        return build_send_task(self.job, self.job_json, self.dispatch)


# What accepting one message came to (an error is a result here, not raised).
AcceptResult = Stored | IdempotencyConflict | RecipientLimited | StoreUnavailable | AliasTaken


@dataclass(frozen=True)
class Moved:
    """Result of a transition: `ok` when it happened; `previous` is the state before."""

    ok: bool
    previous: str | None


@dataclass
class Effects:
    """Index updates that happen atomically with a transition."""

    zadd: list[ZAdd] = field(default_factory=list)
    zrem: list[tuple[str, str]] = field(default_factory=list)
    sadd: list[tuple[str, str]] = field(default_factory=list)
    srem: list[tuple[str, str]] = field(default_factory=list)
    xadd: list[tuple[str, list[str]]] = field(default_factory=list)
    setex: list[tuple[str, str, int]] = field(default_factory=list)
    hincrby: list[tuple[str, str, int]] = field(default_factory=list)  # (key, field, n)


@dataclass(frozen=True)
class MessageRecord:
    """A message as stored: its fields and timeline."""

    id: str
    state: str
    fields: dict[str, str]
    timeline: list[dict[str, Any]]

    def get(self, name: str, default: str | None = None) -> str | None:
        """One field of the record."""
        return self.fields.get(name, default)

    @property
    def job(self) -> Job:
        """The job this record was created from."""
        return Job.model_validate_json(self.fields["job"])

    @property
    def attempts(self) -> int:
        """Provider calls started for this message."""
        return int(self.fields.get("attempts", "0"))


def fingerprint(job: Job) -> str:
    """Hash of what the caller asked for: the same idempotency key must come with the same.

    The text goes in as its `text_hash`, an HMAC under the server's KIRIM_HASH_KEY, never
    as itself: the fingerprint is stored in the record and the idempotency key, and a plain
    hash of an OTP's text gives the code back to anyone who tries the million codes.
    """
    body = job.model_dump(
        include={"channel", "to", "group", "text_hash", "send_at", "callback_url", "metadata",
                 *WA_FIELDS}  # WhatsApp's: only when set, so older fingerprints still match
    )
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


class MessageStore:
    """Create, move and read message records."""

    def __init__(self, redis: Redis, keys: Keys, ttl_s: int,
                 durability: Durability | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        # Replicas that confirm an accept before it is reported, and a move before it is
        # acted on (KIRIM_REDIS_MIN_REPLICAS; 0: no WAIT, no extra round trip).
        self.durability = durability or Durability()
        self._create = lua.register(redis, "create")
        self._transition = lua.register(redis, "claim", "erase_text", "transition",
                                        "transition_run")
        self._transition_many = lua.register(redis, "claim", "erase_text", "transition",
                                             "transition_many")
        self._claim = lua.register(redis, "claim", "claim_run")
        self._accept = lua.register(redis, "guard_check", "accept")
        self._accept_loaded = False  # SCRIPT LOADed by this process (accept_many)

    def accept_many(self, items: Sequence[Admit], pushes: Sequence[tuple[str, str]] = ()
                    ) -> list[AcceptResult]:
        """Create new messages and queue, defer or refuse each, atomically, in one round trip.

        Queued: the record, its outbox entry and its task on the queue list appear together.
        Deferred (scheduled, or the guard says not yet): the record and its deferred entry.
        Refused (an OTP the guard stops): nothing is written. An idempotency key already
        used returns the first message, or a conflict when the request differs.

        Each message gets its own result: a script Redis refused (out of memory, say) is a
        StoreUnavailable for that message only, and the others stand. A connection lost
        mid-pipeline raises, after redis-py's retries resent it; a resent call that had run
        answers what it did (same id and dispatch token), so a retry never creates twice.

        `pushes`: (queue, task message) pairs LPUSHed after the scripts, in the same round
        trip: the `kirim.send_batch` tasks of items whose own task_message is "" (enqueue.py).
        A crash between the two leaves those records in the outbox, which republishes them.
        """
        calls = [self._accept_args(item) for item in items]
        if pushes and not self._accept_loaded:
            # Loaded once per process, so that batch tasks are not pushed before records a
            # NOSCRIPT refused. After a Redis restart or a failover that can still happen
            # once: they are pushed again below, after the records (the copy ahead of its
            # records finds them missing and is skipped).
            self.redis.script_load(self._accept.script)
            self._accept_loaded = True
        replies = self._evalsha_many(calls, pushes)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # Redis restarted or flushed its script cache: load, redo those
            self.redis.script_load(self._accept.script)
            # (the batch tasks again, after the records: a copy whose message is already
            # claimed is skipped by the claim)
            for i, reply in zip(missing, self._evalsha_many([calls[i] for i in missing],
                                                            pushes), strict=True):
                replies[i] = reply
        return [StoreUnavailable(f"Redis refused the write: {reply}")
                if isinstance(reply, Exception) else self._admitted(item, reply)
                for item, reply in zip(items, replies, strict=True)]

    def _evalsha_many(self, calls: list[dict[str, Any]], pushes: Sequence[tuple[str, str]] = ()
                      ) -> list[Any]:
        """EVALSHA accept.lua for each call in one pipeline, an error reply per failed call;
        redis-py's own script pipelining would first ask SCRIPT EXISTS, one more round trip.
        Then LPUSH each of `pushes`; their replies are dropped."""
        if not calls:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(self._accept.sha, len(call["keys"]), *call["keys"], *call["args"])
        for queue, message in pushes:
            pipe.lpush(queue, message)
        # + WAIT on the same connection when replicas must confirm (NotReplicated if not).
        return self.durability.execute(pipe, raise_on_error=False)[:len(calls)]

    def _accept_args(self, item: Admit) -> dict[str, Any]:
        job = item.job
        idem = job.idempotency_key
        idem_key = self.keys.idempotency(job.source, idem) if idem else self.keys.message(job.id)
        # No guard: placeholders accept.lua does not touch (ARGV[7] is "0").
        guard_keys, guard_args = item.guard or RecipientGuard.off_spec(self.keys.message(job.id))
        fields: tuple[str, ...] = (
            "id", job.id, "channel", job.channel.value, "to", job.to or "",
            "group", job.group or "", "text_hash", job.text_hash, "parts", str(job.parts),
            "encoding", job.encoding, "source", job.source, "attempts", "0",
            "callback_url", job.callback_url or "", "dispatch", item.dispatch,
            "job", item.job_json,
        )
        if job.alias:  # the drop-in's 18-digit id, and how the message's callbacks go
            fields += ("nusasms_id", job.alias, "callback_format", job.callback_format)
        return {
            "keys": [self.keys.message(job.id), self.keys.timeline(job.id), idem_key,
                     self.keys.outbox, self.keys.deferred, self.keys.events, item.queue,
                     *guard_keys, *([self.keys.alias(job.alias)] if job.alias else [])],
            "args": [job.id, repr(time.time()), self.ttl_s,
                     fingerprint(job) if idem else "", "1" if idem else "0",
                     "" if job.send_at is None else repr(job.send_at),
                     "0" if item.guard is None else "1", *guard_args,
                     "1" if job.channel == Channel.OTP else "0", repr(item.outbox_due),
                     item.task_message, repr(job.created_at), item.dispatch, *fields],
        }

    @staticmethod
    def _admitted(item: Admit, reply: list[Any]
                  ) -> Stored | IdempotencyConflict | RecipientLimited | AliasTaken:
        status = text(reply[0])
        if status == "created":
            score = text(reply[3])
            return Stored(text(reply[1]), False, text(reply[2]), float(score) if score else None)
        if status == "refused":
            return RecipientLimited(text(reply[1]), int(text(reply[2])) / 1_000_000)
        if status == "alias_taken":
            return AliasTaken(f"the NusaSMS-style id {item.job.alias} is in use; nothing was"
                              " written (draw another id and send again)")
        first_id, first_fingerprint = text(reply[1]), text(reply[2])
        if item.job.idempotency_key and first_fingerprint != fingerprint(item.job):
            return IdempotencyConflict(item.job.idempotency_key, first_id)
        return Stored(first_id, True, text(reply[3]) or None)

    def create(self, job: Job, state: State, index: str, score: float,
               dispatch: str = "", note: str = "", client: Any = None) -> Stored:
        """Write a new record (or find the first one for its idempotency key)."""
        reply = self._create(**self._create_args(job, state, index, score, dispatch, note),
                             client=client)
        return self._created(job, reply)

    def _create_args(self, job: Job, state: State, index: str, score: float,
                     dispatch: str, note: str) -> dict[str, Any]:
        idem = job.idempotency_key
        idem_key = self.keys.idempotency(job.source, idem) if idem else self.keys.message(job.id)
        now = time.time()
        entries = [{"state": State.ACCEPTED.value, "at": job.created_at}]
        if state != State.ACCEPTED:
            entries.append({"state": state.value, "at": now, **({"note": note} if note else {})})
        fields = {
            "id": job.id, "channel": job.channel.value, "to": job.to or "",
            "group": job.group or "", "text_hash": job.text_hash, "parts": job.parts,
            "encoding": job.encoding, "source": job.source, "attempts": 0,
            "callback_url": job.callback_url or "", "dispatch": dispatch,
            "job": job.model_dump_json(),
        }
        flat = [str(x) for pair in fields.items() for x in pair]
        return {
            "keys": [self.keys.message(job.id), self.keys.timeline(job.id), idem_key, index,
                     self.keys.events],
            "args": [job.id, state.value, now, self.ttl_s, fingerprint(job), "1" if idem else "0",
                     score, json.dumps(entries), *flat],
        }

    @staticmethod
    def _created(job: Job, reply: list[Any]) -> Stored:
        status, first_id = text(reply[0]), text(reply[1])
        if status == "created":
            return Stored(first_id, False)
        if text(reply[2]) != fingerprint(job):
            raise IdempotencyConflict(job.idempotency_key or job.id, first_id)
        return Stored(first_id, True)

    def move(self, message_id: str, to: State, *, note: str = "",
             set_fields: dict[str, Any] | None = None, incr: dict[str, int] | None = None,
             effects: Effects | None = None, allowed_from: Iterable[State] | None = None,
             lease_expired_by: float | None = None, calling: bool | None = None,
             claim: str | None = None, client: Any = None, durable: bool = True) -> Moved:
        """Move a record to `to` if the transition table allows it from its current state.

        `lease_expired_by`: only if the sender's lease ran out by then. `calling`: only if
        the provider call was (True) or was not (False) started under the current claim.
        `claim`: a `sending` message moves only for the claim that holds it.
        """
        keys, args = self.move_spec(
            message_id, to, note=note, set_fields=set_fields, incr=incr, effects=effects,
            allowed_from=allowed_from, lease_expired_by=lease_expired_by, calling=calling,
            claim=claim)
        if client is not None:  # pipelined: the caller reads the reply (and WAITs)
            self._transition(keys=keys, args=args, client=client)
            return Moved(False, None)
        # Raises NotReplicated when replicas did not confirm it (the move stands on the master);
        # `durable=False`: not waited for (an undo whose loss the sweeps repair).
        durability = self.durability if durable else Durability()
        reply = durability.run_script(self.redis, self._transition, keys, args)
        return Moved(int(reply[0]) == 1, text(reply[1]) or None)

    def move_many(self, moves: Sequence[tuple[list[str], list[Any]]]) -> list[Moved]:
        """Each move (`move_spec`'s keys and arguments) one after the other in one atomic
        step: a batch's `sent` moves in one round trip (and one replica confirmation).
        Raises NotReplicated as `move` does."""
        keys: list[str] = []
        args: list[Any] = [len(moves), *(len(a) for _, a in moves)]
        for k, a in moves:
            keys += k
            args += a
        replies = self.durability.run_script(self.redis, self._transition_many, keys, args)
        # A move that raised in Lua ({-2, error}) is not moved; the others stand.
        return [Moved(int(r[0]) == 1, text(r[1]) or None) for r in replies]

    def move_spec(self, message_id: str, to: State, *, note: str = "",
                  set_fields: dict[str, Any] | None = None, incr: dict[str, int] | None = None,
                  effects: Effects | None = None, allowed_from: Iterable[State] | None = None,
                  lease_expired_by: float | None = None, calling: bool | None = None,
                  claim: str | None = None) -> tuple[list[str], list[Any]]:
        """transition.lua's keys and arguments for `move`'s parameters."""
        fx = effects or Effects()
        spec: dict[str, Any] = {
            "from": sorted(s.value for s in (allowed_from or TRANSITIONS[to])), "note": note}
        # Only what this move has: every byte of the spec is decoded by Redis's Lua.
        optional = {"incr": incr, "zadd": fx.zadd, "zrem": fx.zrem, "sadd": fx.sadd,
                    "srem": fx.srem, "xadd": fx.xadd, "setex": fx.setex, "hincrby": fx.hincrby}
        spec.update((name, value) for name, value in optional.items() if value)
        if lease_expired_by is not None:
            spec["lease_expired_by"] = lease_expired_by
        if calling is not None:
            spec["calling"] = calling
        if claim is not None:
            spec["claim"] = claim
        keys = [self.keys.message(message_id), self.keys.timeline(message_id), self.keys.events]
        flat = [str(v) for pair in (set_fields or {}).items() for v in pair]
        return keys, [to.value, time.time(), self.ttl_s, json.dumps(spec), *flat]

    def claim(self, message_id: str, lease_s: float, dispatch: str, channel: Channel,
              claim_id: str) -> tuple[str, str]:
        """queued → sending once, unless a circuit of `channel`'s lane is open (then the
        message is parked in that circuit's held set); returns (status, detail) as claim.lua
        does. `claim_id` is this claim's token: only its holder may mark the call."""
        keys, args = self.claim_spec(message_id, lease_s, dispatch, channel, claim_id)
        reply = self.durability.run_script(self.redis, self._claim, keys, args)
        return text(reply[0]), text(reply[1])

    def claim_spec(self, message_id: str, lease_s: float, dispatch: str, channel: Channel,
                   claim_id: str) -> tuple[list[str], list[Any]]:
        """Keys and arguments of claim.lua, also for a script that claims and goes on
        (worker/lua/start.lua)."""
        now = time.time()
        circuits = [str(c) for c in LANE_CIRCUITS[channel]]
        keys = [self.keys.message(message_id), self.keys.timeline(message_id), self.keys.sending,
                self.keys.outbox, self.keys.events,
                *(self.keys.circuit(c) for c in circuits), *(self.keys.held(c) for c in circuits)]
        return keys, [message_id, now, self.ttl_s, now + lease_s, dispatch, claim_id,
                      len(circuits), *circuits]

    def get(self, message_id: str) -> MessageRecord | None:
        """The record and its timeline, or None when there is none. `message_id` may also be
        the drop-in's 18-digit messageid (aliases.py), looked up when no record has it as id."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.message(message_id))
        pipe.lrange(self.keys.timeline(message_id), 0, -1)
        raw, timeline = pipe.execute()
        if not raw and is_alias(message_id):
            found = self.redis.get(self.keys.alias(message_id))
            return self.get(text(found)) if found and not is_alias(text(found)) else None
        if not raw:
            return None
        fields = text_map(raw)
        return MessageRecord(message_id, fields["state"], fields,
                             [json.loads(text(e)) for e in timeline])

    def states(self, message_ids: Sequence[str]) -> list[str | None]:
        """Current state of many messages in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for mid in message_ids:
            pipe.hget(self.keys.message(mid), "state")
        return [text_or_none(s) for s in pipe.execute()]
