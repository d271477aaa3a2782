"""One factory for the Redis-backed services: the Python client, the worker and the alerts
all build them here, from the same Settings, the same way."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from redis import Redis

from producer.core.account import AccountCircuits
from producer.core.deadletters import DeadLetters
from producer.core.durability import Durability
from producer.core.enqueue import Enqueuer
from producer.core.guard import GuardLimits, RecipientGuard
from producer.core.keys import Keys
from producer.core.publisher import Publisher
from producer.core.records import MessageStore
from producer.core.redis_connect import connect_redis
from producer.core.requeue import Requeuer
from producer.core.settings import Settings

__all__ = ["Core", "build_core", "connect_redis"]


@dataclass
class Core:
    """kirim's state in Redis and the ways to change it; one per process."""

    settings: Settings
    redis: Redis
    keys: Keys
    store: MessageStore
    requeuer: Requeuer
    guard: RecipientGuard | None
    circuits: AccountCircuits
    enqueuer: Enqueuer
    dead_letters: DeadLetters


def build_core(settings: Settings, celery: Celery, redis: Redis | None = None) -> Core:
    """The core services on `redis` (a new client by default: one Redis, or the master
    Sentinel names, producer/core/redis_connect.py), publishing through `celery`."""
    redis = redis or connect_redis(settings)
    keys = Keys(settings.key_prefix)
    # Accepts and moves wait for KIRIM_REDIS_MIN_REPLICAS replicas (core/durability.py).
    store = MessageStore(redis, keys, settings.message_ttl_s,
                         durability=Durability.from_settings(settings))
    requeuer = Requeuer(store, Publisher(celery), settings.visibility_timeout_s)
    guard = _guard(settings, redis, keys)
    return Core(settings=settings, redis=redis, keys=keys, store=store, requeuer=requeuer,
                guard=guard, circuits=AccountCircuits(redis, keys),
                enqueuer=Enqueuer(settings, redis, store, requeuer, guard),
                dead_letters=DeadLetters(redis, keys, requeuer))


def _guard(settings: Settings, redis: Redis, keys: Keys) -> RecipientGuard | None:
    if not settings.guard_enabled:
        return None
    limits = GuardLimits(settings.guard_window_s, settings.guard_same_text_limit,
                         settings.guard_per_recipient_limit)
    return RecipientGuard(redis, keys, limits)
