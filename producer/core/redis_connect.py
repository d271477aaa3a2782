"""How every kirim process reaches Redis: one plain server, or the master that Redis Sentinel
names (KIRIM_REDIS_SENTINELS, docs/high-availability.md).

With Sentinels set, KIRIM_REDIS_URL gives only what the master connection needs besides its
address: user, password, db and TLS (`rediss://`, with its `ssl_*` query options); the address
comes from the Sentinels, asked again on every new connection. A connection that fails, or
finds its server demoted to a replica (READONLY), is dropped, and the next one goes to the
master the Sentinels name then: no process restart after a failover. While no master is known
a call raises MasterNotFoundError, a redis ConnectionError, which the API answers with 503.

The clients built here: `connect_redis` (records, scripts, guard, outbox: the Python client,
the API and the worker), `connect_async_redis` (the API's per-key quotas), and what the
Celery broker (`broker_url`, `broker_sentinel_options`) and RedBeat (worker/beat.py) need.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote, urlsplit

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.connection import parse_url
from redis.credentials import CredentialProvider
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import Sentinel

from producer.core.settings import Settings

# What a call raises while Redis (or every Sentinel's master) is away.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)

# Timeouts of the connections to the Sentinels themselves (a question, not a long call).
SENTINEL_SOCKET_TIMEOUT_S = 2.0


class SecretCredentials(CredentialProvider):
    """A Redis user and password held outside any configuration a tool may print: its repr
    names neither."""

    def __init__(self, username: str | None, password: str) -> None:
        self._username = username
        self._password = password

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        """What redis-py sends with AUTH."""
        if self._username:
            return self._username, self._password
        return (self._password,)

    def __repr__(self) -> str:
        return "SecretCredentials(***)"


def master_options(settings: Settings) -> dict[str, Any]:
    """The master connection's options from KIRIM_REDIS_URL without its host and port:
    username, password, db, and for rediss:// `ssl=True` with the URL's `ssl_*` options."""
    options = parse_url(settings.redis_url)
    for name in ("host", "port", "path", "connection_class"):
        options.pop(name, None)
    if urlsplit(settings.redis_url).scheme == "rediss":
        options["ssl"] = True
    return options


def sentinel_options(settings: Settings) -> dict[str, Any]:
    """Options of the connections to the Sentinels: their password, short timeouts, and TLS
    when the master's URL is rediss:// (Sentinels of a TLS deployment speak TLS too)."""
    options: dict[str, Any] = {"socket_timeout": SENTINEL_SOCKET_TIMEOUT_S,
                               "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT_S}
    password = settings.redis_sentinel_password.get_secret_value()
    if password:  # in a provider, so Celery's conf (inspect conf, Flower) never shows it
        options["credential_provider"] = SecretCredentials(None, password)
    master = master_options(settings)
    if master.get("ssl"):
        options.update({k: v for k, v in master.items() if k.startswith("ssl")})
    return options


def connect_redis(settings: Settings, max_connections: int | None = None, *,
                  socket_timeout: float = 10, socket_connect_timeout: float = 5) -> Redis:
    """kirim's own Redis client (the broker has its own): bounded waits, health checks.

    Replies stay bytes (no decode_responses): producer.core.redis_text decodes them one
    value at a time, so a value that is not UTF-8 fails alone, not its whole reply."""
    common: dict[str, Any] = {
        "max_connections": max_connections, "health_check_interval": 10,
        "socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout,
        "retry_on_timeout": True}
    if not settings.redis_sentinels:
        return Redis.from_url(settings.redis_url, **common)
    sentinel = Sentinel(settings.sentinel_nodes, sentinel_kwargs=sentinel_options(settings),
                        **master_options(settings))
    client: Redis = sentinel.master_for(settings.redis_master_name, redis_class=Redis, **common)
    return client


def connect_async_redis(settings: Settings) -> AsyncRedis:
    """The asyncio twin of `connect_redis` (the API's per-key quotas)."""
    common: dict[str, Any] = {"socket_timeout": 10, "socket_connect_timeout": 5,
                              "health_check_interval": 10, "retry_on_timeout": True}
    if not settings.redis_sentinels:
        return AsyncRedis.from_url(settings.redis_url, **common)
    sentinel = AsyncSentinel(settings.sentinel_nodes, sentinel_kwargs=sentinel_options(settings),
                             **master_options(settings))
    client: AsyncRedis = sentinel.master_for(settings.redis_master_name,
                                             redis_class=AsyncRedis, **common)
    return client


def broker_url(settings: Settings) -> str:
    """Celery's broker URL: KIRIM_REDIS_URL, or with Sentinels kombu's
    `sentinel://[user:password@]host:port/db;sentinel://host:port/db;…`.

    The credentials go in the first URL only (kombu reads them from there; Celery masks that
    password when it shows the broker URL)."""
    if not settings.redis_sentinels:
        return settings.redis_url
    master = master_options(settings)
    db = master.get("db", 0)
    user, password = master.get("username") or "", master.get("password") or ""
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user or password else ""
    urls = []
    for i, (host, port) in enumerate(settings.sentinel_nodes):
        name = f"[{host}]" if ":" in host else host
        urls.append(f"sentinel://{auth if i == 0 else ''}{name}:{port}/{db}")
    return ";".join(urls)


def broker_sentinel_options(settings: Settings) -> dict[str, Any]:
    """kombu's Sentinel transport options ({} without Sentinels): the master's name and how
    to talk to the Sentinels."""
    if not settings.redis_sentinels:
        return {}
    return {"master_name": settings.redis_master_name,
            "sentinel_kwargs": sentinel_options(settings)}


def broker_use_ssl(settings: Settings) -> dict[str, Any] | None:
    """Celery's `broker_use_ssl` for a TLS master behind Sentinels (kombu's Sentinel transport
    takes TLS from there, not from a URL scheme); None otherwise."""
    if not settings.redis_sentinels:
        return None
    master = master_options(settings)
    if not master.get("ssl"):
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    options.update({k: v for k, v in master.items() if k.startswith("ssl_")})
    if isinstance(options["ssl_cert_reqs"], str):  # from the URL: "required", "none", …
        options["ssl_cert_reqs"] = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                                    }.get(options["ssl_cert_reqs"], ssl.CERT_REQUIRED)
    return options
