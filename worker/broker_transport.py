"""kombu's Redis transport with one fix, so a worker survives Redis going away.

kombu 5.7: when the broker connection drops mid-run, Celery closes it
(`on_connection_error_after_connected`). Work that touches the channel afterwards (the
restore of unacked messages on close, the ack of a task that just finished on a pool thread)
builds a fresh Redis pool from the transport's client, which is already gone: an
AttributeError escapes kombu's error handling (it only expects connection errors) and the
worker stops with "Unrecoverable error" instead of reconnecting. We saw it in about half of our
Redis-restart runs, with both workers stopping at once in some.

The fix reports that state as what it is, a connection error, which kombu and Celery already
handle: the ack or restore is skipped with a log line and the worker reconnects. The messages
concerned stay in kombu's `unacked` hash and come back after the visibility timeout; their
records stop a second provider call (a finished one is skipped by the claim).

Workers select it with `broker_transport` (worker/app.py); producers keep kombu's own. With
KIRIM_REDIS_SENTINELS set, workers use `SentinelTransport`, kombu's Sentinel transport with
the same fix: after a failover its connections go to the master the Sentinels name then.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis
from redis.exceptions import ConnectionError as RedisConnectionError


def _check_open(channel: redis.Channel) -> None:
    """A ConnectionError when the channel's broker connection is already closed."""
    transport = getattr(channel, "connection", None)
    if transport is None or getattr(transport, "client", None) is None:
        raise RedisConnectionError("broker connection already closed; reconnecting")


class _OneClient:
    """kombu builds a new redis-py client (its ~200 response callbacks: ~50 µs here) for every
    `conn_or_acquire`, which the unacked bookkeeping of every task asks for twice (on
    delivery and on the ack). A client over a connection pool is safe to share between
    threads (each command takes a connection of its own), so the channel keeps one per pool:
    a new pool (after a reconnect) gets a new client."""

    pool: Any
    _create_client: Any

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        cached = getattr(self, "_kirim_client", None)
        if cached is None or cached.connection_pool is not pool:
            cached = self._create_client()
            self._kirim_client = cached
        yield cached


class Channel(_OneClient, redis.Channel):
    """kombu's Redis channel; a pool asked for after the connection closed is an error kombu
    handles (ConnectionError), not an AttributeError that stops the worker."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        _check_open(self)
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class Transport(redis.Transport):
    """kombu's Redis transport with the channel above."""

    Channel = Channel


class SentinelChannel(_OneClient, redis.SentinelChannel):
    """kombu's Sentinel channel with the same fix: its pools are built from `_connparams`
    too (the master address comes from the Sentinels on every new connection)."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        _check_open(self)
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class SentinelTransport(redis.SentinelTransport):
    """kombu's Sentinel transport (KIRIM_REDIS_SENTINELS) with the channel above."""

    Channel = SentinelChannel


def transport_for(sentinels: bool) -> str:
    """The `broker_transport` a worker uses: the Sentinel one when KIRIM_REDIS_SENTINELS is
    set (the broker URL is then kombu's sentinel://…), else the plain Redis one."""
    name = "SentinelTransport" if sentinels else "Transport"
    return f"{__name__}:{name}"
