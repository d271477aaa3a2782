"""MessageStore.move_many (transition_many.lua): each move exactly as `move` would make it,
in one atomic step; one move that raises is that move's failure alone. Real Redis."""

from __future__ import annotations

from producer.client import KirimClient
from producer.core.contract import State
from producer.core.records import Effects


def _sms(n: int) -> list[dict[str, object]]:
    return [{"channel": "sms", "to": f"6281277{i:06d}", "text": f"many {i}"} for i in range(n)]


def test_each_move_as_move_makes_it_and_one_failure_is_its_own(kirim: KirimClient) -> None:
    ids = [a.id for a in kirim.send_many(_sms(4))]
    kirim.redis.delete(kirim.store.keys.message(ids[1]))
    kirim.redis.set(kirim.store.keys.message(ids[1]), "not a record")
    keys = kirim.store.keys

    def defer(mid: str, at: float) -> tuple[list[str], list[object]]:
        return kirim.store.move_spec(
            mid, State.DEFERRED, note="held", set_fields={"release_at": at},
            effects=Effects(zadd=[(keys.deferred, at, mid)], zrem=[(keys.outbox, mid)],
                            hincrby=[("test:counts", "deferred", 1)]))

    moved = kirim.store.move_many([defer(mid, 1000.0 + i) for i, mid in enumerate(ids)]
                                  + [defer(ids[0], 2000.0)])  # again: refused, not moved
    assert [m.ok for m in moved] == [True, False, True, True, False]
    assert moved[4].previous == State.DEFERRED
    for i in (0, 2, 3):
        record = kirim.store.get(ids[i])
        assert record is not None and record.state == State.DEFERRED
        assert record.get("release_at") == str(1000.0 + i)
        assert record.timeline[-1]["state"] == "deferred" and record.timeline[-1]["note"] == "held"
        assert kirim.redis.zscore(keys.deferred, ids[i]) == 1000.0 + i
        assert kirim.redis.zscore(keys.outbox, ids[i]) is None
    assert kirim.redis.zscore(keys.deferred, ids[1]) is None
    assert kirim.redis.hget("test:counts", "deferred") == b"3"  # summed: one HINCRBY
