"""Writes that replicas acknowledged: KIRIM_REDIS_MIN_REPLICAS, through Redis' `WAIT`.

Redis replicates asynchronously: a master that dies loses the writes its replicas had not
received yet (about the last second). `WAIT n timeout_ms` blocks until `n` replicas have
acknowledged every write made *on the same connection* before it, so a write followed by
WAIT on that connection survives the master's death once WAIT says `>= n`; fewer in time,
and the write may be lost with the master (or may not: it was made, just not confirmed).

`Durability` sends the write and the WAIT in one non-transactional pipeline: one connection,
one round trip. With `min_replicas` 0 it sends exactly what it was given, nothing more
(no WAIT, no extra round trip). Fewer acknowledgements than asked raise `NotReplicated`:
the caller must then report failure (the API: 503) and not act on the write (a worker: no
provider call); the write itself is not undone.

Sentinel promotes the replica with the highest replication offset (among those of the best
`replica-priority`), which holds every write WAIT confirmed, so with MIN_REPLICAS=1 one node
may die without losing anything acknowledged; surviving `n` nodes dying at once takes
MIN_REPLICAS=n (docs/high-availability.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from producer.core.errors import StoreUnavailable
from producer.core.settings import Settings


class NotReplicated(StoreUnavailable):
    """A write reached the master but fewer replicas than KIRIM_REDIS_MIN_REPLICAS confirmed
    it in time: it may be lost in a failover, so it must not be reported or acted on."""

    def __init__(self, wanted: int, acked: int | None, timeout_ms: int) -> None:
        self.wanted = wanted
        self.acked = acked
        self.timeout_ms = timeout_ms
        got = "no answer to WAIT" if acked is None else f"{acked} replica(s) acknowledged"
        super().__init__(
            f"Redis replication not confirmed: {got} within {timeout_ms} ms, and"
            f" KIRIM_REDIS_MIN_REPLICAS is {wanted} (a replica down or lagging?); the write"
            " reached the master but may be lost if it fails over")


@dataclass(frozen=True)
class Durability:
    """How many replicas must confirm a write (0: none, and no WAIT is sent)."""

    min_replicas: int = 0
    timeout_ms: int = 500

    @classmethod
    def from_settings(cls, settings: Settings) -> Durability:
        """KIRIM_REDIS_MIN_REPLICAS and KIRIM_REDIS_WAIT_TIMEOUT_MS."""
        return cls(settings.redis_min_replicas, settings.redis_wait_timeout_ms)

    @property
    def enabled(self) -> bool:
        """Whether writes wait for replicas at all."""
        return self.min_replicas > 0

    def execute(self, pipe: Pipeline, *, raise_on_error: bool = True) -> list[Any]:
        """`pipe.execute()` of a non-transactional pipeline, its writes confirmed by
        min_replicas replicas (WAIT appended: same connection, same round trip); the replies
        are the pipeline's own, without WAIT's. Raises NotReplicated."""
        if not self.enabled:
            replies: list[Any] = pipe.execute(raise_on_error=raise_on_error)
            return replies
        if getattr(pipe, "transaction", False) is True:  # WAIT in MULTI confirms nothing
            raise ValueError("Durability.execute needs pipeline(transaction=False)")
        pipe.execute_command("WAIT", self.min_replicas, self.timeout_ms)
        replies = pipe.execute(raise_on_error=False)
        acked = replies.pop()
        # Every command refused with NOSCRIPT (a new master): nothing was written, nothing to
        # confirm; the caller loads the script and sends again, with its own WAIT.
        if not all(isinstance(reply, NoScriptError) for reply in replies):
            self.check(acked)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies

    def run_script(self, redis: Redis, script: Script, keys: Sequence[Any],
                   args: Sequence[Any]) -> Any:
        """`script(keys=keys, args=args)`, confirmed by min_replicas replicas.

        With min_replicas 0 this *is* that call (EVALSHA, loaded on NOSCRIPT by redis-py):
        one round trip, as before. Otherwise EVALSHA + WAIT in one round trip on one
        connection; a NOSCRIPT (a new master after a failover, a restart) loads the script
        and runs it again (nothing was written by the refused call). Raises NotReplicated
        when too few replicas confirmed, and the script's own errors as redis-py does."""
        if not self.enabled:
            return script(keys=list(keys), args=list(args))
        for _ in range(2):
            pipe = redis.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", self.min_replicas, self.timeout_ms)
            reply, acked = pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError):
                redis.script_load(script.script)
                continue
            if isinstance(reply, Exception):
                raise reply
            self.check(acked)
            return reply
        raise NoScriptError("NOSCRIPT after SCRIPT LOAD (a failover in between?); retry")

    def check(self, acked: Any) -> None:
        """Raise NotReplicated unless WAIT's reply `acked` says enough replicas confirmed."""
        if isinstance(acked, Exception) or acked is None:
            raise NotReplicated(self.min_replicas, None, self.timeout_ms)
        if int(acked) < self.min_replicas:
            raise NotReplicated(self.min_replicas, int(acked), self.timeout_ms)
