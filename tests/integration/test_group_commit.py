"""The API's group commit against a real Redis: concurrent requests share round trips, each
gets its own result, and a Redis outage fails every waiting request."""

from __future__ import annotations

import asyncio

import pytest

from producer.api.commits import GroupCommit
from producer.client import KirimClient
from producer.core.enqueue import Accepted, Enqueuer
from producer.core.errors import KirimError, StoreUnavailable
from producer.core.records import Admit
from tests.support.queues import queued_ids


class CountingEnqueuer(Enqueuer):
    """The real Enqueuer, counting its commit rounds."""

    rounds: list[int]

    def commit(self, items):  # type: ignore[no-untyped-def, override]
        self.rounds.append(len(items))
        return super().commit(items)


def counting(kirim: KirimClient) -> CountingEnqueuer:
    e = kirim.enqueuer
    enqueuer = CountingEnqueuer(e.settings, e.redis, e.store, e.requeuer, e.guard)
    enqueuer.rounds = []
    return enqueuer


def prepared(enqueuer: Enqueuer, n: int, start: int = 0) -> list[Admit]:
    return [enqueuer.prepare({"channel": "sms", "to": f"62812{start + i:08d}", "text": "hi"},
                             "test") for i in range(n)]


def test_concurrent_requests_share_rounds_and_each_gets_its_own_result(
        kirim: KirimClient) -> None:
    enqueuer = counting(kirim)
    commits = GroupCommit(enqueuer)
    singles, batch = prepared(enqueuer, 300), prepared(enqueuer, 500, start=1000)

    async def load() -> tuple[list[KirimError | Accepted], list[KirimError | Accepted]]:
        many = asyncio.ensure_future(commits.commit_many(batch))
        ones = await asyncio.gather(*(commits.commit(item) for item in singles))
        return list(ones), await many

    try:
        ones, many = asyncio.run(load())
    finally:
        commits.close()
    assert [o.id for o in ones if isinstance(o, Accepted)] == [i.job.id for i in singles]
    assert [o.id for o in many if isinstance(o, Accepted)] == [i.job.id for i in batch]
    assert sum(enqueuer.rounds) == 800 and len(enqueuer.rounds) < 100, enqueuer.rounds
    assert sorted(queued_ids(kirim.redis, "sms")) == sorted(i.job.id for i in singles + batch)


def test_a_lone_request_is_written_at_once(kirim: KirimClient) -> None:
    enqueuer = counting(kirim)
    commits = GroupCommit(enqueuer)

    async def one() -> KirimError | Accepted:
        return await asyncio.wait_for(commits.commit(prepared(enqueuer, 1)[0]), timeout=2)

    try:
        assert isinstance(asyncio.run(one()), Accepted)
    finally:
        commits.close()
    assert enqueuer.rounds == [1]


def test_redis_down_fails_every_waiting_request(kirim: KirimClient, redis_server) -> None:
    enqueuer = counting(kirim)
    commits = GroupCommit(enqueuer)
    items = prepared(enqueuer, 50)
    redis_server.stop()
    try:
        async def load() -> list[BaseException | Accepted | KirimError]:
            return await asyncio.gather(*(commits.commit(i) for i in items),
                                        return_exceptions=True)

        outcomes = asyncio.run(load())
    finally:
        commits.close()
        redis_server.start()
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes[:3]


def test_a_closed_group_commit_refuses_new_work(kirim: KirimClient) -> None:
    commits = GroupCommit(kirim.enqueuer)
    commits.close()
    with pytest.raises(RuntimeError, match="shutting down"):
        asyncio.run(commits.commit(prepared(kirim.enqueuer, 1)[0]))
