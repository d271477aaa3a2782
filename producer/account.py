"""The account circuit: sending stops on credit, credential or IP errors until resumed.

Workers open it (worker.pipeline); operators and the credits poll close it. Messages that
reach a worker while it is open are parked in the held set and requeued on resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis

from producer.contract import State
from producer.dispatch import Dispatcher
from producer.keys import Keys


@dataclass(frozen=True)
class AccountState:
    """Whether sending is paused, and why."""

    paused: bool
    reason: str = ""
    code: str = ""
    since: float | None = None


class AccountCircuit:
    """Open (paused) / closed state of the one NusaSMS account, shared by every worker."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    def pause(self, reason: str, code: int | str) -> bool:
        """Stop sending; True if this call opened the circuit (so alert once)."""
        opened = self.redis.hsetnx(self.keys.account, "paused", "1")
        if opened:
            self.redis.hset(self.keys.account, mapping={
                "reason": reason, "code": str(code), "since": str(time.time())})
        return bool(opened)

    def resume(self) -> list[str]:
        """Close the circuit; returns the held message ids that must be published again."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.keys.account)
        pipe.smembers(self.keys.held)
        _, held = pipe.execute()
        return sorted(m.decode() if isinstance(m, bytes) else m for m in held)

    def state(self) -> AccountState:
        """The circuit as stored."""
        raw = {_s(k): _s(v) for k, v in self.redis.hgetall(self.keys.account).items()}
        if raw.get("paused") != "1":
            return AccountState(False)
        return AccountState(True, raw.get("reason", ""), raw.get("code", ""),
                            float(raw["since"]) if raw.get("since") else None)


def resume_account(circuit: AccountCircuit, dispatcher: Dispatcher) -> int:
    """Close the circuit and requeue every held message; returns how many were requeued."""
    held = circuit.resume()
    return sum(
        dispatcher.requeue(mid, allowed_from=[State.DEFERRED], note="account resumed")
        for mid in held
    )


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
