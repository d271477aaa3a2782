"""The account's circuits: each stops only the lanes that depend on it, for its own cause.

A provider code that says the account (or one part of it) cannot send opens one circuit
(producer.core.routing.Circuit): an empty WhatsApp wallet stops WhatsApp, not OTP; a refused
sender stops the lanes that send it; bad credentials stop everything. Workers open them
(worker.pipeline); the credits poll closes a product's credit pause once that product's
balance is usable again; an operator closes the others (`kirim account resume`).

A message that reaches a claim while one of its lane's circuits is open is parked in that
circuit's held set (claim.lua) and requeued when that circuit closes; if another of its
circuits is still open, the next claim parks it there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis

from producer.core import lua
from producer.core.contract import Channel, State
from producer.core.keys import Keys
from producer.core.redis_text import text, text_map
from producer.core.requeue import Requeuer
from producer.core.routing import LANE_CIRCUITS, Circuit


@dataclass(frozen=True)
class CircuitState:
    """One circuit: whether it is paused, why, since when, and how many messages it holds."""

    name: str
    paused: bool
    reason: str = ""
    code: str = ""
    since: float | None = None
    held: int = 0


class AccountCircuits:
    """The open (paused) / closed state of each circuit, shared by every worker."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._pause = lua.register(redis, "circuit_pause")

    def pause(self, circuit: Circuit | str, reason: str, code: int | str) -> bool:
        """Open `circuit`; True if this call opened it (so alert once)."""
        opened = self._pause(keys=[self.keys.circuit(str(circuit))],
                             args=[reason, str(code), str(time.time())])
        return bool(opened)

    def resume(self, circuit: Circuit | str) -> list[str]:
        """Close `circuit`; returns the ids it held, which must be published again."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.keys.circuit(str(circuit)))
        pipe.smembers(self.keys.held(str(circuit)))
        _, held = pipe.execute()
        return sorted(text(m) for m in held)

    def state(self, circuit: Circuit | str) -> CircuitState:
        """One circuit as stored."""
        return self.states([Circuit(circuit)])[0]

    def states(self, circuits: Iterable[Circuit] = tuple(Circuit)) -> list[CircuitState]:
        """Several circuits (all by default) in one round trip."""
        names = [str(c) for c in circuits]
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.circuit(name))
            pipe.scard(self.keys.held(name))
        replies = pipe.execute()
        return [_state(name, replies[2 * i], int(replies[2 * i + 1]))
                for i, name in enumerate(names)]

    def paused(self) -> list[CircuitState]:
        """The circuits that are open now."""
        return [s for s in self.states() if s.paused]

    def blocking(self, channel: Channel) -> CircuitState | None:
        """The first open circuit that stops `channel`'s lane, or None if it may send."""
        return next((s for s in self.states(LANE_CIRCUITS[channel]) if s.paused), None)


def resume_circuit(circuits: AccountCircuits, requeuer: Requeuer,
                   circuit: Circuit | str) -> int:
    """Close one circuit and requeue what it held; returns how many were requeued."""
    held = circuits.resume(circuit)
    return sum(requeuer.requeue(mid, allowed_from=[State.DEFERRED],
                                  note=f"circuit {circuit} resumed") for mid in held)


def resume_account(circuits: AccountCircuits, requeuer: Requeuer,
                   circuit: Circuit | str | None = None) -> int:
    """Close `circuit`, or every open circuit when None; returns how many were requeued."""
    names = [circuit] if circuit is not None else [s.name for s in circuits.paused()]
    return sum(resume_circuit(circuits, requeuer, name) for name in names)


def release_orphans(circuits: AccountCircuits, requeuer: Requeuer) -> int:
    """Requeue messages held by circuits that are closed; returns how many.

    A resume closes its circuit before it requeues what it held: a resumer that died in
    between (or a held set written by an older version, `Keys.legacy_held`) leaves messages
    that nothing else would ever read. The outbox sweep calls this.
    """
    count = 0
    for state in circuits.states():
        if not state.paused and state.held:
            held = circuits.redis.smembers(circuits.keys.held(state.name))
            count += sum(requeuer.requeue(text(m), allowed_from=[State.DEFERRED],
                                            note=f"circuit {state.name} is closed")
                         for m in held)
    legacy = circuits.redis.smembers(circuits.keys.legacy_held)
    for member in legacy:
        count += requeuer.requeue(text(member), allowed_from=[State.DEFERRED],
                                    note="held before per-circuit holds")
        circuits.redis.srem(circuits.keys.legacy_held, member)
    return count


def _state(name: str, raw: dict[bytes | str, bytes | str], held: int) -> CircuitState:
    fields = text_map(raw)
    if fields.get("paused") != "1":
        return CircuitState(name, False, held=held)
    since = fields.get("since")
    return CircuitState(name, True, fields.get("reason", ""), fields.get("code", ""),
                        float(since) if since else None, held)
