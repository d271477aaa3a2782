"""Waiting for something to happen, failing with what did not."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable

from producer.client import KirimClient


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str,
             interval_s: float = 0.1) -> None:
    """Poll until `predicate()` is true, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def wait_states(kirim: KirimClient, ids: list[str], states: Iterable[str],
                timeout_s: float = 30.0) -> list[str | None]:
    """Wait until every message is in one of `states`; returns their states."""
    wanted = set(states)
    last: list[str | None] = []

    def settled() -> bool:
        nonlocal last
        last = kirim.store.states(ids)
        return all(s in wanted for s in last)

    try:
        wait_for(settled, timeout_s, f"{len(ids)} messages to reach {sorted(wanted)}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; states now: {Counter(last)}") from None
    return last
