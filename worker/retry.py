"""The retry policy: bounded attempts, exponential backoff with full jitter (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before sending a message again."""

    max_attempts: int = 10
    base_delay_s: float = 2.0
    max_delay_s: float = 600.0

    def exhausted(self, attempts: int) -> bool:
        """True when `attempts` provider calls used up the budget."""
        return attempts >= self.max_attempts

    def delay_s(self, attempts: int, rng: random.Random | None = None) -> float:
        """Wait before the next attempt: full jitter over base·2^(n-1), capped."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** max(attempts - 1, 0))
        # Half fixed, half random: spreads a burst of failures without ever retrying at once.
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)

    def budget_s(self) -> float:
        """Longest total wait across all retries: what an outage must stay under."""
        return sum(
            min(self.max_delay_s, self.base_delay_s * 2 ** (n - 1))
            for n in range(1, self.max_attempts)
        )
