"""RetryPolicy (worker/retry.py): the bounds of each wait, the jitter, the cap, the budget."""

from __future__ import annotations

import random

import pytest

from worker.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=6, base_delay_s=2.0, max_delay_s=20.0)


@pytest.mark.parametrize(("attempts", "ceiling"), [
    (0, 2.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 20.0), (6, 20.0), (40, 20.0),
])
def test_each_delay_lies_between_half_its_ceiling_and_the_ceiling(attempts, ceiling):
    rng = random.Random(attempts)
    delays = [POLICY.delay_s(attempts, rng) for _ in range(500)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)


def test_jitter_spreads_over_the_whole_upper_half():
    rng = random.Random(7)
    delays = [POLICY.delay_s(3, rng) for _ in range(2000)]  # ceiling 8: between 4 and 8
    assert min(delays) < 4.05 and max(delays) > 7.95
    assert len({round(d, 6) for d in delays}) > 1900  # not a handful of fixed steps
    assert 5.9 < sum(delays) / len(delays) < 6.1  # uniform: the mean is 3/4 of the ceiling


def test_the_same_seed_gives_the_same_delays():
    first = [POLICY.delay_s(n, random.Random(1)) for n in range(1, 7)]
    again = [POLICY.delay_s(n, random.Random(1)) for n in range(1, 7)]
    assert first == again


def test_without_an_rng_the_module_random_is_used():
    saved = random.getstate()
    try:
        random.seed(3)
        first = POLICY.delay_s(4)
        random.seed(3)
        assert POLICY.delay_s(4) == first and 8.0 <= first <= 16.0
    finally:
        random.setstate(saved)


def test_the_cap_holds_however_many_attempts():
    capped = RetryPolicy(max_attempts=100, base_delay_s=1.0, max_delay_s=5.0)
    rng = random.Random(0)
    assert all(2.5 <= capped.delay_s(n, rng) <= 5.0 for n in range(4, 100))


@pytest.mark.parametrize(("attempts", "done"), [(0, False), (5, False), (6, True), (7, True)])
def test_exhausted_once_the_attempts_reach_the_maximum(attempts, done):
    assert POLICY.exhausted(attempts) is done


@pytest.mark.parametrize(("policy", "budget"), [
    (POLICY, 2 + 4 + 8 + 16 + 20),  # five waits between six attempts
    (RetryPolicy(), 2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 512),  # the defaults: 1022 s
    # test_reliability_provider's outage policy: at least half of 32.5 s outlasts its 10 s outage
    (RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=5.0), 0.5 + 1 + 2 + 4 + 5 * 5),
    (RetryPolicy(max_attempts=1), 0),  # one attempt: no wait at all
])
def test_budget_is_the_sum_of_the_ceilings_of_every_wait(policy, budget):
    assert policy.budget_s() == pytest.approx(budget)


def test_the_waits_of_a_whole_run_add_up_to_between_half_the_budget_and_the_budget():
    rng = random.Random(11)
    for _ in range(200):
        total = sum(POLICY.delay_s(n, rng) for n in range(1, POLICY.max_attempts))
        assert POLICY.budget_s() / 2 <= total <= POLICY.budget_s()
