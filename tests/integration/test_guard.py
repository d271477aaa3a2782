"""The recipient guard against a real Redis: limits, window boundary, block, peek, races."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
import redis as redis_lib
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from producer.core.errors import RecipientLimited
from producer.core.guard import (
    GuardDecision,
    GuardLimits,
    RecipientGuard,
    fold_text_windows,
    route_for,
)
from producer.core.keys import Keys
from producer.core.segments import text_hash
from tests.support.processes import RedisServer
from tests.support.waiting import wait_for

BASE = 1_700_000_000.0  # a fixed "now" for tests that pass time explicitly
DAY = 86400
RCPT = "+6281234567890"
KEYS = Keys()
HASH_A, HASH_B = "a" * 16, "b" * 16  # shaped like producer.core.segments.text_hash


def new_id() -> str:
    """A message id shaped like kirim's."""
    return uuid.uuid4().hex


@pytest.fixture
def guard(redis: redis_lib.Redis) -> RecipientGuard:
    """A guard with the default limits (24 h, 10 same texts, 50 per recipient)."""
    return RecipientGuard(redis, KEYS, GuardLimits())


def snapshot(redis: redis_lib.Redis) -> dict[str, Any]:
    """Every key with its contents and Redis's count of writes, for before/after comparisons."""
    # The write count (server.dirty; saving is off in tests) also catches a changed TTL.
    out: dict[str, Any] = {"writes": redis.info("persistence")["rdb_changes_since_last_save"]}
    for key in sorted(redis.scan_iter("*")):
        kind = redis.type(key)
        out[key] = redis.zrange(key, 0, -1, withscores=True) if kind == "zset" else redis.get(key)
    return out


def test_same_text_limit_refuses_the_eleventh_with_the_oldest_plus_a_day(guard):
    for i in range(10):
        assert guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + i).allowed
    decision = guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + 20)
    assert decision == GuardDecision(False, "same_text", BASE + DAY)
    # Another text to the same recipient still goes.
    assert guard.reserve(new_id(), "sms", RCPT, HASH_B, now=BASE + 21).allowed


def test_per_recipient_limit_refuses_at_n_plus_one(redis):
    guard = RecipientGuard(redis, KEYS, GuardLimits(per_recipient_limit=5))
    for i in range(5):
        assert guard.reserve(new_id(), "sms", RCPT, f"h{i}", now=BASE + 10 * i).allowed
    decision = guard.reserve(new_id(), "sms", RCPT, "h9", now=BASE + 100)
    assert decision == GuardDecision(False, "per_recipient", BASE + DAY)
    assert redis.zcard(KEYS.guard_recipient("sms", RCPT)) == 5


def test_retry_at_is_the_later_of_both_windows(redis):
    guard = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=2, per_recipient_limit=3))
    guard.reserve(new_id(), "sms", RCPT, HASH_B, now=BASE)
    guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + 5)
    guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + 7)
    # Per-recipient frees at BASE + DAY, same-text only at BASE + 5 + DAY: that one binds.
    decision = guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + 9)
    assert decision == GuardDecision(False, "same_text", BASE + 5 + DAY)


def test_retry_at_after_the_limit_was_lowered(redis):
    for i in range(5):
        RecipientGuard(redis, KEYS, GuardLimits()).reserve(new_id(), "sms", RCPT, HASH_A, BASE + i)
    lowered = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=3))
    # Three entries must leave before there is room: the third oldest is the last of them.
    decision = lowered.peek("sms", RCPT, HASH_A, now=BASE + 10)
    assert decision == GuardDecision(False, "same_text", BASE + 2 + DAY)


@pytest.mark.parametrize("method", ["reserve", "peek"])
def test_an_entry_counts_until_exactly_window_s_later(redis, method):
    guard = RecipientGuard(redis, KEYS, GuardLimits(window_s=100, same_text_limit=1))
    guard.reserve("first", "sms", RCPT, HASH_A, now=BASE)

    def ask(now: float) -> GuardDecision:
        if method == "peek":
            return guard.peek("sms", RCPT, HASH_A, now=now)
        return guard.reserve(new_id(), "sms", RCPT, HASH_A, now=now)

    assert ask(BASE + 100 - 1e-6) == GuardDecision(False, "same_text", BASE + 100)
    assert ask(BASE + 100).allowed


def test_reserve_prunes_entries_that_left_the_window(redis):
    guard = RecipientGuard(redis, KEYS, GuardLimits(window_s=100))
    for i in range(3):
        guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + i)
    # A reservation prunes when its microsecond clock is a multiple of 8 (one in eight):
    # BASE + 101.499999 s is not (what left the window stays), BASE + 101.5 s is.
    guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + 101.499999)
    assert redis.zcard(KEYS.guard_recipient("sms", RCPT)) == 4
    guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + 101.5)
    # BASE + 2 and the two new ones
    assert redis.zcard(KEYS.guard_recipient("sms", RCPT)) == 3


# --- one sorted set per recipient: its texts, the provider's -77 fill, its cost ---------

def test_texts_share_the_recipient_window_and_each_counts_only_its_own(redis):
    """Every text to a recipient counts in the recipient's window; a text's own cap counts
    the entries of its hash only (not those of a hash it is a prefix of)."""
    guard = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=2, per_recipient_limit=5))
    short = HASH_A[:15]  # "aaa…a" (15): its entries must not count for HASH_A, nor theirs for it
    assert guard.reserve("a1", "sms", RCPT, HASH_A, now=BASE).allowed
    assert guard.reserve("a2", "sms", RCPT, HASH_A, now=BASE + 1).allowed
    assert guard.reserve("a3", "sms", RCPT, HASH_A, now=BASE + 2) == GuardDecision(
        False, "same_text", BASE + DAY)
    assert guard.peek("sms", RCPT, HASH_B, now=BASE + 2).allowed
    assert guard.reserve("s1", "sms", RCPT, short, now=BASE + 3).allowed
    assert guard.reserve("b1", "sms", RCPT, HASH_B, now=BASE + 4).allowed
    assert guard.reserve("s2", "sms", RCPT, short, now=BASE + 5).allowed
    # Five sends of three texts fill the recipient's window: a fourth text is refused, and
    # a text at its own cap too, for whichever frees last.
    assert guard.reserve("c1", "sms", RCPT, "c" * 16, now=BASE + 6) == GuardDecision(
        False, "per_recipient", BASE + DAY)
    assert guard.reserve("s3", "sms", RCPT, short, now=BASE + 6) == GuardDecision(
        False, "same_text", BASE + 3 + DAY)
    assert redis.zrange(KEYS.guard_recipient("sms", RCPT), 0, -1) == [
        f"{HASH_A}:a1", f"{HASH_A}:a2", f"{short}:s1", f"{HASH_B}:b1", f"{short}:s2"]
    # When A's oldest leaves, A's window and the recipient's have room again.
    assert guard.reserve("a3", "sms", RCPT, HASH_A, now=BASE + DAY).allowed


def test_the_providers_fill_stops_its_text_but_counts_no_send_to_the_recipient(redis):
    """After a -77, `fill_text` puts the text at its cap for a window; those entries are not
    sends, so the recipient's other texts still have the whole per-recipient allowance."""
    guard = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=3, per_recipient_limit=4))
    key = KEYS.guard_recipient("sms", RCPT)
    assert guard.reserve("m1", "sms", RCPT, HASH_A).allowed
    filled_at = time.time()
    guard.fill_text("sms", RCPT, HASH_A)
    assert set(redis.zrange(key, 0, -1)) == {
        f"{HASH_A}:m1", *(f"{HASH_A}:provider-77:{i}" for i in range(3))}
    assert 86_390_000 < redis.pttl(key) <= 86_400_010
    refused = guard.peek("sms", RCPT, HASH_A)
    assert refused.reason == "same_text"
    assert refused.retry_at == pytest.approx(filled_at + DAY, abs=1)
    assert guard.reserve("m2", "sms", RCPT, HASH_A).reason == "same_text"
    # m1 and three more sends of other texts make the recipient's four.
    for i in range(3):
        assert guard.reserve(f"o{i}", "sms", RCPT, f"{i:016x}").allowed
    assert guard.reserve("o3", "sms", RCPT, HASH_B).reason == "per_recipient"
    assert redis.zcard(key) == 7


def test_entries_of_the_layout_before_one_key_per_recipient_count_per_recipient(redis):
    """Upgrade: members that are plain message ids (written before the text hash joined
    them) still count in the recipient's window, and for no text."""
    key = KEYS.guard_recipient("sms", RCPT)
    redis.zadd(key, {"old1": BASE * 1e6, "old2": (BASE + 1) * 1e6})
    guard = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=1, per_recipient_limit=3))
    assert guard.reserve("m1", "sms", RCPT, HASH_A, now=BASE + 2).allowed
    assert guard.reserve("m2", "sms", RCPT, HASH_B, now=BASE + 3) == GuardDecision(
        False, "per_recipient", BASE + DAY)
    assert guard.reserve("m2", "sms", RCPT, HASH_B, now=BASE + DAY).allowed


def _commands_run(client: redis_lib.Redis) -> dict[str, int]:
    """Redis's count of calls per command so far (INFO commandstats)."""
    stats: dict[str, dict[str, Any]] = client.info("commandstats")  # type: ignore[assignment]
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def test_a_reservation_costs_four_commands(tmp_path):
    """The common reservation runs ZRANGEBYSCORE, GET, ZADD, PEXPIRE inside its script,
    nothing else; one in eight also prunes; a redelivered message within the window only
    reads. Counted on a Redis of the test's own, so no other client adds to the counts."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    client = redis_lib.Redis.from_url(server.url, decode_responses=True)
    try:
        guard = RecipientGuard(client, KEYS, GuardLimits())
        guard.reserve("warm", "sms", "+6280000000000", HASH_A, now=BASE + 1e-6)  # SCRIPT LOAD

        def commands(message_id: str, recipient: str, now: float) -> dict[str, int]:
            before = _commands_run(client)
            assert guard.reserve(message_id, "sms", recipient, HASH_A, now=now).allowed
            after = _commands_run(client)
            delta = {name: calls - before.get(name, 0) for name, calls in after.items()}
            return {name: n for name, n in delta.items()
                    if n and name not in ("evalsha", "info")}

        # BASE is a whole number of seconds: BASE + 3 µs is no multiple of 8, so no pruning.
        four = {"zrangebyscore": 1, "get": 1, "zadd": 1, "pexpire": 1}
        assert commands("m1", RCPT, BASE + 3e-6) == four
        assert commands("m1", RCPT, BASE + 5e-6) == {"zrangebyscore": 1, "get": 1}
        assert commands("m2", RCPT, BASE + 7e-6) == four  # another message, same key set
        assert commands("m3", "+6280000000001", BASE + 8e-6) == {**four, "zremrangebyscore": 1}
    finally:
        client.close()
        server.stop()


def test_reserving_the_same_message_twice_counts_once(redis):
    guard = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=2))
    assert guard.reserve("m1", "sms", RCPT, HASH_A, now=BASE).allowed
    assert guard.reserve("m1", "sms", RCPT, HASH_A, now=BASE + 1).allowed
    assert guard.reserve("m2", "sms", RCPT, HASH_A, now=BASE + 2).allowed
    # Full now, but a redelivery of a message already counted still goes.
    assert guard.reserve("m1", "sms", RCPT, HASH_A, now=BASE + 3).allowed
    assert not guard.reserve("m3", "sms", RCPT, HASH_A, now=BASE + 3).allowed
    assert redis.zrange(KEYS.guard_recipient("sms", RCPT), 0, -1, withscores=True) == [
        (f"{HASH_A}:m1", BASE * 1e6), (f"{HASH_A}:m2", (BASE + 2) * 1e6)
    ]


def test_release_frees_the_slot(redis):
    guard = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=1))
    assert guard.reserve("m1", "sms", RCPT, HASH_A, now=BASE).allowed
    assert not guard.reserve("m2", "sms", RCPT, HASH_A, now=BASE + 1).allowed
    guard.release("m1", "sms", RCPT, HASH_A)
    assert redis.dbsize() == 0  # the set emptied, so its key is gone
    assert guard.reserve("m2", "sms", RCPT, HASH_A, now=BASE + 2).allowed


def test_block_refuses_reserve_and_peek_until_it_ends(guard, redis):
    until = time.time() + 60
    guard.block("sms", RCPT, until)
    expected = GuardDecision(False, "blocked", round(until * 1e6) / 1e6)  # kept to the µs
    assert guard.reserve(new_id(), "sms", RCPT, HASH_A) == expected
    assert guard.peek("sms", RCPT, HASH_A) == expected
    assert 59_000 < redis.pttl(KEYS.guard_block("sms", RCPT)) <= 60_000
    # Explicit times are honoured too: past the block's end it no longer counts.
    assert guard.reserve(new_id(), "sms", RCPT, HASH_A, now=until + 1).allowed


def test_block_only_extends_and_outranks_an_earlier_reservation(guard, redis):
    assert guard.reserve("m1", "sms", RCPT, HASH_A).allowed
    until = time.time() + 60
    guard.block("sms", RCPT, until)
    guard.block("sms", RCPT, until - 30)  # a shorter answer later must not lift it
    assert guard.peek("sms", RCPT, HASH_A).retry_at == pytest.approx(until, abs=1e-6)
    assert guard.reserve("m1", "sms", RCPT, HASH_A).reason == "blocked"


def test_a_block_expires_by_itself(guard, redis):
    guard.block("sms", RCPT, time.time() + 0.2)
    assert not guard.peek("sms", RCPT, HASH_A).allowed
    time.sleep(0.3)
    assert not redis.exists(KEYS.guard_block("sms", RCPT))
    assert guard.reserve(new_id(), "sms", RCPT, HASH_A).allowed


def test_a_block_already_over_writes_nothing(guard, redis):
    guard.block("sms", RCPT, time.time() - 1)
    assert redis.dbsize() == 0


def test_peek_writes_nothing_and_agrees_with_reserve(redis):
    setup = RecipientGuard(redis, KEYS, GuardLimits(window_s=100, same_text_limit=3))
    setup.reserve("old", "sms", RCPT, HASH_A, now=BASE)  # out of the window at BASE + 100
    setup.reserve("m1", "sms", RCPT, HASH_A, now=BASE + 50)
    setup.reserve("m2", "sms", RCPT, HASH_A, now=BASE + 60)
    guard = RecipientGuard(redis, KEYS, GuardLimits(window_s=100, same_text_limit=2))
    guard.block("wa", RCPT, time.time() + 60)
    before = snapshot(redis)
    for now in (BASE + 61, BASE + 120, BASE + 150, BASE + 160):
        peeked = guard.peek("sms", RCPT, HASH_A, now=now)
        assert snapshot(redis) == before
        assert peeked.allowed == (now >= BASE + 150)
    refused = GuardDecision(False, "same_text", BASE + 150)
    assert guard.peek("sms", RCPT, HASH_A, now=BASE + 120) == refused
    assert guard.peek("wa", RCPT, HASH_A).reason == "blocked"
    assert snapshot(redis) == before
    # reserve answers the same, and does prune "old": the snapshot can tell.
    assert guard.reserve("m3", "sms", RCPT, HASH_A, now=BASE + 120) == refused
    assert snapshot(redis) != before


def test_keys_expire_with_the_window(redis):
    guard = RecipientGuard(redis, KEYS, GuardLimits(window_s=3600))
    guard.reserve(new_id(), "sms", RCPT, HASH_A)
    key = KEYS.guard_recipient("sms", RCPT)
    assert redis.keys("*") == [key]  # one key per recipient, whatever the text
    assert 3_590_000 < redis.pttl(key) <= 3_600_010


def test_a_window_of_one_second_disappears_from_redis(redis):
    guard = RecipientGuard(redis, KEYS, GuardLimits(window_s=1, same_text_limit=1))
    assert guard.reserve(new_id(), "sms", RCPT, HASH_A).allowed
    assert not guard.reserve(new_id(), "sms", RCPT, HASH_A).allowed
    time.sleep(1.05)
    # EXISTS, not DBSIZE: DBSIZE still counts keys expired but not yet collected.
    assert not redis.exists(KEYS.guard_recipient("sms", RCPT))
    assert guard.reserve(new_id(), "sms", RCPT, HASH_A).allowed


def test_routes_are_counted_apart(redis):
    guard = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=1, per_recipient_limit=1))
    assert guard.reserve(new_id(), route_for("otp"), RCPT, HASH_A, now=BASE).allowed
    assert guard.reserve(new_id(), route_for("sms"), RCPT, HASH_B, now=BASE).reason == (
        "per_recipient"
    )
    assert guard.reserve(new_id(), route_for("wa"), RCPT, HASH_A, now=BASE).allowed


def test_route_for_channels():
    assert [route_for(c) for c in ("sms", "otp", "wa")] == ["sms", "sms", "wa"]
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        route_for("fax")


def test_works_with_a_client_that_returns_bytes(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    guard = RecipientGuard(client, KEYS, GuardLimits(same_text_limit=1))
    assert guard.reserve("m1", "sms", RCPT, HASH_A, now=BASE).allowed
    assert guard.reserve("m2", "sms", RCPT, HASH_A, now=BASE) == GuardDecision(
        False, "same_text", BASE + DAY
    )
    client.close()


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="same_text_limit must be at least 1"):
        GuardLimits(same_text_limit=0)


# --- the window logic against a pure-Python model -------------------------------------

WINDOW_S = 100
WINDOW_US = WINDOW_S * 1_000_000
SMALL = GuardLimits(window_s=WINDOW_S, same_text_limit=2, per_recipient_limit=4)


class Model:
    """The guard's rules written plainly: dicts of message id → time in microseconds."""

    def __init__(self, limits: GuardLimits) -> None:
        self.limits = limits
        self.by_text: dict[str, dict[str, int]] = defaultdict(dict)
        self.by_recipient: dict[str, int] = {}

    def reserve(self, mid: str, text: str, now: int) -> tuple[bool, str | None, int | None]:
        self.added = False
        live_text = {m: t for m, t in self.by_text[text].items() if now < t + WINDOW_US}
        live_all = {m: t for m, t in self.by_recipient.items() if now < t + WINDOW_US}
        if mid in live_text:
            return True, None, None
        frees = []
        for reason, live, limit in (
            ("same_text", live_text, self.limits.same_text_limit),
            ("per_recipient", live_all, self.limits.per_recipient_limit),
        ):
            if len(live) >= limit:
                frees.append((sorted(live.values())[len(live) - limit] + WINDOW_US, reason))
        if frees:
            retry = max(f for f, _ in frees)
            return False, next(r for f, r in frees if f == retry), retry
        self.by_text[text][mid] = self.by_recipient[mid] = now
        self.added = True
        return True, None, None

    def release(self, mid: str, text: str) -> None:
        self.by_text[text].pop(mid, None)
        self.by_recipient.pop(mid, None)


def at_most_limit_in_any_window(times: list[int], limit: int) -> bool:
    """True if no half-open span [t, t + window) holds more than limit of the times."""
    times = sorted(times)
    return all(sum(1 for u in times if t <= u < t + WINDOW_US) <= limit for t in times)


# Steps on a quarter-window lattice make later times land exactly on an entry's t + window,
# plus a millisecond either side of it and some arbitrary steps.
QUARTER_MS = WINDOW_S * 1000 // 4
STEP_MS = st.one_of(
    st.sampled_from([0, QUARTER_MS, 2 * QUARTER_MS, 4 * QUARTER_MS]),
    st.sampled_from([1, QUARTER_MS - 1, QUARTER_MS + 1]),
    st.integers(0, 30_000),
)
KIND = st.sampled_from(["new"] * 6 + ["replay", "release"])
ACTION = st.tuples(STEP_MS, st.sampled_from("abc"), KIND, st.integers(0, 1000))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(ACTION, max_size=50))
def test_window_logic_matches_a_plain_model(redis, actions):
    # Each example gets its own recipient: the fixture's Redis is only emptied per test.
    recipient = f"+62{uuid.uuid4().int % 10**10:010d}"
    guard = RecipientGuard(redis, KEYS, SMALL)
    model = Model(SMALL)
    now_us = int(BASE * 1_000_000)
    tried: list[tuple[str, str]] = []  # (message id, text) of every id so far
    counted: list[tuple[str, str, int]] = []  # (id, text, time) of every counted reservation
    for step_ms, text, kind, pick in actions:
        now_us += step_ms * 1000
        if kind == "new" or not tried:
            mid = new_id()
            tried.append((mid, text))
        else:
            mid, text = tried[pick % len(tried)]
        if kind == "release":
            guard.release(mid, "sms", recipient, text)
            model.release(mid, text)
            # Released while live: it no longer counts, in any window.
            counted = [c for c in counted if not (c[0] == mid and now_us < c[2] + WINDOW_US)]
            continue
        peeked = guard.peek("sms", recipient, text, now=now_us / 1_000_000)
        got = guard.reserve(mid, "sms", recipient, text, now=now_us / 1_000_000)
        if kind == "new":  # peek knows no message id, so it answers for a new one
            assert peeked == got
        allowed, reason, retry_us = model.reserve(mid, text, now_us)
        retry = None if retry_us is None else retry_us / 1_000_000
        assert got == GuardDecision(allowed, reason, retry), (mid, text, now_us)  # type: ignore[arg-type]
        event(f"refused: {reason}" if reason else "allowed")
        if any(now_us == t + WINDOW_US for *_, t in counted):
            event("an entry just left the window")
        if model.added:
            counted.append((mid, text, now_us))
    for text in "abc":
        times = [t for _, x, t in counted if x == text]
        assert at_most_limit_in_any_window(times, SMALL.same_text_limit)
    assert at_most_limit_in_any_window([t for *_, t in counted], SMALL.per_recipient_limit)


# --- many processes racing for one recipient ------------------------------------------

PROCESSES, THREADS, ATTEMPTS = 8, 4, 12


def _race(url: str, same_text: bool, start: Any, results: Any) -> None:
    """One process: THREADS threads reserving ATTEMPTS distinct message ids each."""
    client = redis_lib.Redis.from_url(url, decode_responses=True)
    guard = RecipientGuard(client, KEYS, GuardLimits())
    allowed: list[str] = []

    def run() -> None:
        for i in range(ATTEMPTS):
            mid = new_id()
            text = HASH_A if same_text else f"text-{mid}-{i}"
            if guard.reserve(mid, "sms", RCPT, text).allowed:
                allowed.append(mid)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    start.wait()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(allowed)
    client.close()


@pytest.mark.parametrize(("same_text", "limit"), [(False, 50), (True, 10)])
def test_racing_processes_never_exceed_the_limit(redis_url, redis, same_text, limit):
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(redis_url, same_text, start, results))
             for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    allowed = [mid for _ in procs for mid in results.get(timeout=30)]
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0
    assert len(allowed) == len(set(allowed)) == limit
    members = redis.zrange(KEYS.guard_recipient("sms", RCPT), 0, -1)  # "<text_hash>:<id>"
    assert {member.rsplit(":", 1)[1] for member in members} == set(allowed)


# --- memory ---------------------------------------------------------------------------

def test_memory_per_recipient(redis, capsys):
    guard = RecipientGuard(redis, KEYS, GuardLimits())

    def usage() -> int:
        return sum(redis.memory_usage(k, samples=0) or 0 for k in redis.scan_iter("*"))

    def send(times: int, texts: int) -> int:
        redis.flushall()
        for i in range(times):
            guard.reserve(new_id(), "sms", RCPT, f"{i % texts:016x}")
        return usage()

    one, ten, ten_texts = send(1, 1), send(10, 1), send(10, 10)
    redis.flushall()
    before = redis.info("memory")["used_memory"]
    for i in range(10_000):
        guard.reserve(new_id(), "sms", f"+62812{i:08d}", HASH_A)
    per_recipient = (redis.info("memory")["used_memory"] - before) / 10_000
    with capsys.disabled():
        print(f"\nguard memory per recipient (MEMORY USAGE, all keys): 1 send {one} B,"
              f" 10 sends of one text {ten} B, 10 sends of 10 texts {ten_texts} B;"
              f" INFO used_memory over 10,000 recipients x 1 send: {per_recipient:.0f} B each")
    assert one < 400 and ten < 1200 and ten_texts < 2500 and per_recipient < 600


def test_enqueue_decides_as_peek_does(kirim) -> None:  # type: ignore[no-untyped-def]
    """accept.lua runs the same guard_check as peek: same verdict, same time, nothing written
    for a refused OTP."""
    guard = kirim.enqueuer.guard
    to, text = "6281234567890", "promo hari ini"
    digest = text_hash(text, kirim.settings.hash_key_bytes)  # as build_job keys it
    for n in range(10):
        assert guard.reserve(f"m{n}", "sms", to, digest).allowed
    peeked = guard.peek("sms", to, digest)
    assert not peeked.allowed and peeked.reason == "same_text"
    sms = kirim.submit({"channel": "sms", "to": to, "text": text})
    assert sms.state == "deferred" and sms.release_at == pytest.approx(peeked.retry_at, abs=1e-6)
    assert kirim.redis.zscore(kirim.keys.deferred, sms.id) == pytest.approx(peeked.retry_at,
                                                                           abs=1e-6)
    assert [e["state"] for e in kirim.status(sms.id).timeline] == ["accepted", "deferred"]
    assert kirim.status(sms.id).timeline[1]["note"] == "recipient limit: same_text"
    keys_before = set(kirim.redis.keys("*"))
    with pytest.raises(RecipientLimited) as refused:
        kirim.submit({"channel": "otp", "to": to, "text": text})
    assert refused.value.reason == "same_text"
    assert refused.value.retry_at == pytest.approx(peeked.retry_at, abs=1e-6)
    assert set(kirim.redis.keys("*")) == keys_before and kirim.redis.llen("otp") == 0
    for other in ({"channel": "sms", "to": to, "text": "another text"},
                  {"channel": "wa", "to": to, "text": text}):
        assert kirim.submit(other).state == "queued"


def test_an_entry_left_unpruned_no_longer_counts(redis):
    """Between prunings (one reservation in eight) a key may still hold entries that left
    the window: they never count against a limit."""
    guard = RecipientGuard(redis, KEYS, GuardLimits(window_s=100, same_text_limit=1))
    assert guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + 0.000001).allowed
    assert not guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + 100).allowed
    assert guard.reserve(new_id(), "sms", RCPT, HASH_A, now=BASE + 100.000003).allowed
    assert redis.zcard(KEYS.guard_recipient("sms", RCPT)) == 2  # not pruned: 3 µs is odd


def test_a_reservation_that_left_the_window_counts_no_more_for_its_message(redis):
    """A message reserving again (a resend of an `unknown` one) after its own entry left the
    window, while another message fills it, is refused: its old entry is not its slot."""
    guard = RecipientGuard(redis, KEYS, GuardLimits(window_s=100, same_text_limit=1))
    first, second = new_id(), new_id()
    assert guard.reserve(first, "sms", RCPT, HASH_A, now=BASE + 0.000001).allowed
    assert guard.reserve(second, "sms", RCPT, HASH_A, now=BASE + 200.000001).allowed
    assert not guard.reserve(first, "sms", RCPT, HASH_A, now=BASE + 200.000003).allowed
    # Within the window, the same message reserving again counts once.
    assert guard.reserve(second, "sms", RCPT, HASH_A, now=BASE + 200.000005).allowed


def _layout_before(redis: redis_lib.Redis, now_us: int) -> tuple[str, str]:
    """What the layout before wrote for two sends of text A, a -77 fill of it and a send of
    another text (whose per-text key has expired): a per-text set, plain ids per recipient."""
    text_key = f"{KEYS.prefix}:guard:t:sms:{RCPT}:{HASH_A}"
    recipient_key = KEYS.guard_recipient("sms", RCPT)
    redis.zadd(text_key, {"m1": now_us - 2, "m2": now_us - 1, "provider-77:0": now_us})
    redis.zadd(recipient_key, {"m1": now_us - 2, "m2": now_us - 1, "m3": now_us - 3})
    redis.pexpire(text_key, DAY * 1000)
    redis.pexpire(recipient_key, 3600 * 1000)
    return text_key, recipient_key


def test_an_upgrade_folds_the_per_text_windows_into_the_recipient_set_counting_each_once(
        redis):
    now = time.time()
    now_us = round(now * 1_000_000)
    text_key, recipient_key = _layout_before(redis, now_us)
    assert fold_text_windows(redis, KEYS) == 3
    assert not redis.exists(text_key)
    assert dict(redis.zrange(recipient_key, 0, -1, withscores=True)) == {
        f"{HASH_A}:m1": now_us - 2, f"{HASH_A}:m2": now_us - 1,
        f"{HASH_A}:provider-77:0": now_us, "m3": now_us - 3}
    assert redis.pttl(recipient_key) > 3600 * 1000  # as long as the per-text window lived
    # Counted as before: text A has 2 sends and the fill (3), the recipient 3 sends.
    by_three = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=3, per_recipient_limit=4))
    assert by_three.peek("sms", RCPT, HASH_A, now=now).reason == "same_text"
    assert by_three.peek("sms", RCPT, HASH_B, now=now).allowed
    full = RecipientGuard(redis, KEYS, GuardLimits(same_text_limit=3, per_recipient_limit=3))
    assert full.peek("sms", RCPT, HASH_B, now=now).reason == "per_recipient"
    # A message reserved before the upgrade and redelivered after it counts once.
    assert full.reserve("m1", "sms", RCPT, HASH_A, now=now).allowed
    assert fold_text_windows(redis, KEYS) == 0  # nothing left: safe to run again


def test_a_starting_worker_folds_the_layout_before(redis, workers):
    now_us = round(time.time() * 1_000_000)
    text_key, recipient_key = _layout_before(redis, now_us)
    workers.start(concurrency=1)
    wait_for(lambda: not redis.exists(text_key), 60, "the worker to fold the per-text window")
    assert redis.zscore(recipient_key, f"{HASH_A}:m2") == now_us - 1
    assert redis.zscore(recipient_key, "m2") is None


def test_once_a_pass_finds_nothing_starting_workers_skip_the_scan_and_the_cli_does_not(redis):
    assert fold_text_windows(redis, KEYS, unless_done=True) == 0  # a fresh install
    assert redis.get(KEYS.guard_folded) == "1"
    text_key, _ = _layout_before(redis, round(time.time() * 1_000_000))  # an old worker's
    assert fold_text_windows(redis, KEYS, unless_done=True) == 0  # a starting worker: no scan
    assert redis.exists(text_key)
    assert fold_text_windows(redis, KEYS) == 3  # kirim upgrade-guard scans whatever was said
    assert not redis.exists(text_key)


def test_a_pass_that_folds_something_does_not_mark_the_upgrade_done(redis):
    _layout_before(redis, round(time.time() * 1_000_000))
    assert fold_text_windows(redis, KEYS, unless_done=True) == 3
    assert not redis.exists(KEYS.guard_folded)  # the next start looks again
    assert fold_text_windows(redis, KEYS, unless_done=True) == 0
    assert redis.get(KEYS.guard_folded) == "1"
