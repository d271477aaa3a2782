"""The workers' kombu transport keeps one redis-py client per connection pool."""

from __future__ import annotations

from kombu import Connection

from worker.broker_transport import transport_for


def test_the_channel_reuses_one_client_per_pool_and_a_new_pool_gets_a_new_one(
        redis_url: str) -> None:
    with Connection(redis_url, transport=transport_for(False)) as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second  # kombu alone builds a client (~50 µs) every time
            assert first.connection_pool is channel.pool
            assert first.ping()
            with first.pipeline() as pipe:  # the unacked bookkeeping's use of it
                assert pipe.set("kirim:test:transport", "1").get("kirim:test:transport"
                                                                ).execute() == [True, b"1"]
        given = object()
        with channel.conn_or_acquire(given) as passed:
            assert passed is given  # a client the caller holds is used as it is
        old_pool = channel.pool
        channel._pool = None  # what a reconnect does: a new pool ...
        with channel.conn_or_acquire() as third:
            assert channel.pool is not old_pool
            assert third is not first and third.connection_pool is channel.pool  # ... a new client
            assert third.ping()
        old_pool.disconnect()
