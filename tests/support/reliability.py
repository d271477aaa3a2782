"""Shared checks of the reliability tests: what "nothing lost, nothing sent twice" means.

A message ended well when it reached one of these states; `check_run` asserts the
promises against the message store and the sandbox's own record of what it accepted, and
returns the distribution for the test's printed figures.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from producer.client import KirimClient
from producer.core.contract import FINAL_REPORT_STATES, State
from sandbox.control import SandboxControl

# `sent`, or moved on by a delivery report (beat polls DR in some of these tests).
REACHED = frozenset({State.SENT, *FINAL_REPORT_STATES})


@dataclass
class RunResult:
    """How a run ended: states, reasons of the dead, figures for docs/reliability.md."""

    states: Counter[str]
    dead_reasons: Counter[str] = field(default_factory=Counter)
    accepted_at_provider: int = 0
    duplicates: int = 0
    runtime_s: float = 0.0

    def line(self, title: str) -> str:
        """One printable line of figures."""
        return (f"[reliability] {title}: messages={sum(self.states.values())}"
                f" states={dict(sorted(self.states.items()))}"
                f" dead_reasons={dict(self.dead_reasons)}"
                f" accepted_at_provider={self.accepted_at_provider}"
                f" duplicated={self.duplicates} runtime_s={self.runtime_s:.1f}")


def check_run(kirim: KirimClient, sandbox: SandboxControl,
                  texts: dict[str, tuple[str, str]], allowed: frozenset[str],
                  started: float) -> RunResult:
    """Assert the promises for messages `texts` ({id: (to, text)}); return the figures.

    - every id has a record, in an allowed state (none lost);
    - the sandbox accepted no (recipient, text) twice (none sent twice);
    - a message recorded as sent was accepted by the sandbox exactly once;
    - a message the sandbox accepted is sent or unknown (never retried into dead/deferred);
    - a dead message carries a reason.
    """
    ids = list(texts)
    states = kirim.store.states(ids)
    missing = [mid for mid, s in zip(ids, states, strict=True) if s is None]
    assert not missing, f"{len(missing)} accepted messages have no record: {missing[:5]}"
    wrong = Counter(s for s in states if s not in allowed)
    assert not wrong, f"messages in states outside {sorted(allowed)}: {wrong}"
    counts = sandbox.counts()
    ours = {texts[mid] for mid in ids}
    twice = {k: n for k, n in counts.items() if n > 1 and k in ours}
    assert not twice, f"the provider accepted these more than once: {list(twice.items())[:5]}"
    out = RunResult(Counter(s for s in states if s is not None))
    for mid, state in zip(ids, states, strict=True):
        accepted = counts.get(texts[mid], 0)
        out.accepted_at_provider += accepted
        if state in REACHED:
            assert accepted == 1, f"{mid} is {state} but the provider never accepted it"
        elif accepted:
            assert state == State.UNKNOWN, f"{mid} reached the provider but is {state}"
        if state == State.DEAD:
            reason = kirim.status(mid).get("reason") or ""
            assert reason, f"{mid} is dead without a reason"
            out.dead_reasons[reason.split(" after ")[0]] += 1
    out.duplicates = sum(n - 1 for k, n in counts.items() if n > 1 and k in ours)
    out.runtime_s = time.monotonic() - started
    return out
