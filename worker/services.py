"""Everything a worker process talks to, built once from Settings and passed down."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from celery import Celery
from redis import Redis

from producer.account import AccountCircuits
from producer.dispatch import Dispatcher
from producer.guard import GuardLimits, RecipientGuard
from producer.keys import Keys
from producer.publisher import Publisher
from producer.records import MessageStore
from producer.settings import Settings
from worker.nusasms import NusaSMSClient, NusaSMSConfig, build_http_client
from worker.outcomes import OutcomeRecorder
from worker.ratelimit import RateLimiter
from worker.retry import RetryPolicy


@dataclass
class Services:
    """The worker's collaborators; one instance per process, shared by its threads."""

    settings: Settings
    redis: Redis
    keys: Keys
    store: MessageStore
    dispatcher: Dispatcher
    recorder: OutcomeRecorder
    client: NusaSMSClient
    http: httpx.Client
    guard: RecipientGuard | None
    limiter: RateLimiter
    circuits: AccountCircuits
    policy: RetryPolicy

    def close(self) -> None:
        """Release connections."""
        self.http.close()
        self.redis.close()


def build_services(settings: Settings, app: Celery) -> Services:
    """Wire the worker's parts from settings (no I/O until first use)."""
    settings.require_provider()
    redis = Redis.from_url(settings.redis_url, max_connections=settings.worker_concurrency * 4,
                           health_check_interval=10, socket_timeout=10, socket_connect_timeout=5,
                           retry_on_timeout=True)
    keys = Keys(settings.key_prefix)
    store = MessageStore(redis, keys, settings.message_ttl_s)
    dispatcher = Dispatcher(store, Publisher(app), settings.visibility_timeout_s)
    http = build_http_client(settings.nusasms_connect_timeout_s, settings.nusasms_read_timeout_s,
                             settings.nusasms_pool_size)
    password = settings.nusasms_password.get_secret_value() if settings.nusasms_password else ""
    config = NusaSMSConfig(settings.nusasms_url, settings.nusasms_user or "", password,
                           settings.nusasms_sender)
    return Services(
        settings=settings, redis=redis, keys=keys, store=store, dispatcher=dispatcher,
        recorder=OutcomeRecorder(store, dispatcher, settings.dr_first_poll_s),
        client=NusaSMSClient(config, http), http=http,
        guard=_guard(settings, redis, keys),
        limiter=RateLimiter(redis, keys.rate_limit, settings.rate_limit_per_s,
                            settings.rate_limit_burst),
        circuits=AccountCircuits(redis, keys),
        policy=RetryPolicy(settings.retry_max_attempts, settings.retry_base_delay_s,
                           settings.retry_max_delay_s),
    )


def _guard(settings: Settings, redis: Redis, keys: Keys) -> RecipientGuard | None:
    if not settings.guard_enabled:
        return None
    limits = GuardLimits(settings.guard_window_s, settings.guard_same_text_limit,
                         settings.guard_per_recipient_limit)
    return RecipientGuard(redis, keys, limits)

