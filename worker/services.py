"""Everything a worker process talks to, built once from Settings and shared by its threads.

`services_for(app)` builds them on first use (no I/O at import time) and keeps them on the
app; every task reaches them through it, so nothing imports `worker.app` to find them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

import httpx
from celery import Celery

from producer.core.factory import Core, build_core, connect_redis
from producer.core.settings import Settings
from worker.nusasms import NusaSMSClient, NusaSMSConfig, build_http_client
from worker.ratelimit import RateLimiter
from worker.retry import RetryPolicy
from worker.safe_http import PinnedBackend, guarded_client
from worker.state_writer import StateWriter


@dataclass
class Services(Core):
    """The worker's collaborators: the core's, plus the provider client and the send path's."""

    writer: StateWriter
    client: NusaSMSClient
    http: httpx.Client  # to NusaSMS
    # To tenants' callback URLs: public addresses only, pinned, no redirects (safe_http.py).
    callback_http: httpx.Client
    hook_http: httpx.Client  # to operator-configured URLs (alert webhook): no redirects
    limiter: RateLimiter
    policy: RetryPolicy

    def close(self) -> None:
        """Release connections."""
        self.http.close()
        self.callback_http.close()
        self.hook_http.close()
        self.redis.close()


def build_services(settings: Settings, app: Celery) -> Services:
    """Wire the worker's parts from settings (no I/O until first use)."""
    settings.require_provider()
    settings.hash_key_bytes  # noqa: B018 - a backstop for a process that skipped worker_init
    core = build_core(settings, app, connect_redis(settings, settings.worker_concurrency * 4))
    http = build_http_client(settings.nusasms_connect_timeout_s, settings.nusasms_read_timeout_s,
                             settings.nusasms_pool_size)
    password = settings.nusasms_password.get_secret_value() if settings.nusasms_password else ""
    config = NusaSMSConfig(settings.nusasms_url, settings.nusasms_user or "", password,
                           settings.nusasms_sender)
    return Services(
        **{f.name: getattr(core, f.name) for f in fields(Core)},
        writer=StateWriter(core.store, core.requeuer, settings.dr_first_poll_s),
        client=NusaSMSClient(config, http), http=http,
        callback_http=guarded_client(settings.status_callback_timeout_s, PinnedBackend(
            allow_private=settings.callback_allow_private)),
        hook_http=_hook_http(settings),
        limiter=RateLimiter(core.redis, core.keys.rate_limit, settings.rate_limit_per_s,
                            settings.rate_limit_burst),
        policy=RetryPolicy(settings.retry_max_attempts, settings.retry_base_delay_s,
                           settings.retry_max_delay_s),
    )


def _hook_http(settings: Settings) -> httpx.Client:
    """The plain client for URLs the operator configured: they may be internal on purpose."""
    timeout_s = settings.status_callback_timeout_s
    return httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
                        follow_redirects=False, limits=httpx.Limits(max_connections=32))


_lock = threading.Lock()


def services_for(app: Celery) -> Services:
    """The process-wide Services of an app, built on first use (thread-safe)."""
    svc: Services | None = getattr(app, "kirim_services", None)
    if svc is None:
        with _lock:
            svc = getattr(app, "kirim_services", None)
            if svc is None:
                svc = build_services(app.kirim_settings, app)
                app.kirim_services = svc
    return svc
