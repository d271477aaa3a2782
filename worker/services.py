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
from worker.journal import CallJournal, deployment_tag, journal_dir
from worker.nusasms import (
    NusaSMSClient,
    NusaSMSConfig,
    NusaSMSV1Client,
    V1Config,
    build_http_client,
    build_send_client,
)
from worker.nusasms.wire import WireClient
from worker.ratelimit import RateLimiter
from worker.retry import RetryPolicy
from worker.safe_http import PinnedBackend, guarded_client
from worker.start import SendStarter
from worker.state_writer import StateWriter


@dataclass
class Services(Core):
    """The worker's collaborators: the core's, plus the provider client and the send path's."""

    writer: StateWriter
    client: NusaSMSClient
    http: httpx.Client  # to NusaSMS (API v1.0) and the inbound webhook
    send_http: WireClient | httpx.Client  # to NusaSMS v3: sends, DR, CREDITS (nusasms/wire.py)
    # To tenants' callback URLs: public addresses only, pinned, no redirects (safe_http.py).
    callback_http: httpx.Client
    hook_http: httpx.Client  # to operator-configured URLs (alert webhook): no redirects
    limiter: RateLimiter
    policy: RetryPolicy
    starter: SendStarter  # claim + guard + rate limit + *calling* in one step
    # Which message each thread is about to call, for a killed worker's successor
    # (worker/journal.py); None in a process that sends nothing.
    journal: CallJournal | None
    # NusaSMS API v1.0 (WhatsApp, balances; shares `http`): None when WhatsApp goes through
    # the legacy API (settings.wa_api_resolved == "v3").
    wa_client: NusaSMSV1Client | None = None
    # The same API for the credits poll's `/balance`: set whenever an API key is.
    balance_client: NusaSMSV1Client | None = None

    def close(self) -> None:
        """Release connections."""
        self.http.close()
        self.send_http.close()
        self.callback_http.close()
        self.hook_http.close()
        self.redis.close()
        if self.journal is not None:
            self.journal.close()


def build_services(settings: Settings, app: Celery) -> Services:
    """Wire the worker's parts from settings (no I/O until first use)."""
    settings.require_provider()
    settings.hash_key_bytes  # noqa: B018 - a backstop for a process that skipped worker_init
    core = build_core(settings, app, connect_redis(settings, settings.worker_concurrency * 4))
    http = build_http_client(settings.nusasms_connect_timeout_s, settings.nusasms_read_timeout_s,
                             settings.nusasms_pool_size)
    # The v3 client's calls (sends, DR, CREDITS) go over the lean keep-alive client.
    send_http = build_send_client(settings.nusasms_url, settings.nusasms_connect_timeout_s,
                                  settings.nusasms_read_timeout_s, settings.nusasms_pool_size)
    password = settings.nusasms_password.get_secret_value() if settings.nusasms_password else ""
    config = NusaSMSConfig(settings.nusasms_url, settings.nusasms_user or "", password,
                           settings.nusasms_sender)
    limiter = RateLimiter(core.redis, core.keys.rate_limit, settings.rate_limit_per_s,
                          settings.rate_limit_burst)
    v1 = build_v1_client(settings, http)
    journal = CallJournal(journal_dir(settings.worker_journal_dir), journal_tag(settings),
                          row_slots=settings.send_batch_size)
    for client in (http, send_http):  # every provider request flips its thread's slot first
        journal_writes(client, journal)
    return Services(
        **{f.name: getattr(core, f.name) for f in fields(Core)},
        writer=StateWriter(core.store, core.requeuer, settings.dr_first_poll_s),
        client=NusaSMSClient(config, send_http), http=http, send_http=send_http,
        callback_http=guarded_client(settings.status_callback_timeout_s, PinnedBackend(
            allow_private=settings.callback_allow_private)),
        hook_http=_hook_http(settings),
        limiter=limiter,
        starter=SendStarter(core.store, core.guard, limiter), journal=journal,
        policy=RetryPolicy(settings.retry_max_attempts, settings.retry_base_delay_s,
                           settings.retry_max_delay_s),
        wa_client=v1 if settings.wa_api_resolved == "v1" else None, balance_client=v1,
    )


def journal_tag(settings: Settings) -> str:
    """The call journals of this deployment: its Redis (password masked) and key prefix."""
    return deployment_tag(settings.safe_redis_url, settings.key_prefix)


def journal_writes(client: WireClient | httpx.Client, journal: CallJournal) -> None:
    """Have `client` tell `journal` before it writes any request (the wire client just
    before its bytes; httpx as a request event hook, earlier still: on the safe side)."""
    if isinstance(client, WireClient):
        client.on_write = journal.writing
    else:
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), journal.writing]}


def build_v1_client(settings: Settings, http: httpx.Client) -> NusaSMSV1Client | None:
    """The API v1.0 client when KIRIM_NUSASMS_API_KEY is set (None otherwise)."""
    if not settings.api_key_value:
        return None
    return NusaSMSV1Client(V1Config(settings.nusasms_v1_url, settings.api_key_value), http)


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
