"""API keys: who is calling, what they may do, and slowing down whoever keeps guessing.

Only SHA-256 hashes are configured (`KIRIM_API_KEYS="shop:<sha256hex>,ops:<sha256hex>:admin"`,
format in producer/core/tenants.py). A key's name is the `source` of its messages: it owns
them. No keys configured means every request is refused: there is no open mode.

Failed authentications are counted per client address in Redis (one INCR per failure, none
per success). Past `KIRIM_API_AUTH_FAILURES_PER_MIN` in a minute, that address gets 429 with
Retry-After for the rest of the minute, whatever it presents, on every API replica that
sees its next failure (each replica then remembers the block locally).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from redis import Redis
from starlette.concurrency import run_in_threadpool

from producer.api.errors import ApiError
from producer.core.keys import Keys
from producer.core.settings import Settings
from producer.core.tenants import KeyEntry, KeyPolicy, Scope

NO_KEYS = ("no API keys are configured: set KIRIM_API_KEYS=name:sha256hex[,name2:sha256hex]"
           " (the hash of each key, never the key) and restart the API")
# Compared against when a name is unknown, so a wrong name costs the same time as a wrong key.
_DUMMY = hashlib.sha256(b"kirim: no such key").digest()
FAILURE_WINDOW_S = 60

# The two ways to present a key, declared for OpenAPI (/docs' Authorize button, generated
# clients). Declarations only: auto_error=False, so they never answer a request themselves;
# `authenticate` reads the headers and gives every 401/403/429.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="`Authorization: Bearer <key>`: a key from KIRIM_API_KEYS")
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey",
                       description="`X-API-Key: <key>`: the same key, in its own header")
BearerScheme = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
ApiKeyScheme = Annotated[str | None, Security(API_KEY)]


@dataclass(frozen=True)
class Caller:
    """An authenticated key: its name (the source it owns), scopes and policy."""

    name: str
    scopes: frozenset[Scope]
    policy: KeyPolicy

    @property
    def admin(self) -> bool:
        """Sees and replays every key's messages."""
        return Scope.ADMIN in self.scopes

    def owns(self, source: str | None) -> bool:
        """Whether this key may see a message or dead letter created by `source`."""
        return self.admin or (source is not None and hmac.compare_digest(
            source.encode(), self.name.encode()))


class KeyRing:
    """The configured keys; answers which (if any) a presented secret is."""

    def __init__(self, keys: list[KeyEntry], settings: Settings | None = None) -> None:
        self.keys = keys
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The ring of KIRIM_API_KEYS, with KIRIM_API_KEY_POLICIES for each key."""
        return cls(settings.key_entries, settings)

    def identify(self, secret: str) -> KeyEntry | None:
        """The key whose hash matches `secret`, or None (every key is compared)."""
        presented = hashlib.sha256(secret.encode()).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(presented, key.digest) and found is None:
                found = key
        return found

    def check(self, name: str, secret: str) -> KeyEntry | None:
        """The key called `name` if `secret` is it (the drop-in's user + password), else None."""
        presented = hashlib.sha256(secret.encode()).digest()
        named: list[KeyEntry | None] = [k for k in self.keys if k.name == name] or [None]
        found = None
        for entry in named:
            ok = hmac.compare_digest(presented, entry.digest if entry else _DUMMY)
            if ok and entry is not None and found is None:
                found = entry
        return found

    def caller(self, entry: KeyEntry) -> Caller:
        """The Caller of a key entry (its policy with the deployment's defaults)."""
        policy = self.settings.policy_for(entry.name) if self.settings else KeyPolicy()
        return Caller(entry.name, entry.scopes, policy)


class FailedAuth:
    """Counts failed authentications per client address; blocks an address over the limit."""

    def __init__(self, redis: Redis, keys: Keys, limit: int) -> None:
        self.redis, self.keys, self.limit = redis, keys, limit
        self._blocked: OrderedDict[str, float] = OrderedDict()  # address -> blocked until
        self._lock = threading.Lock()

    def blocked_for(self, address: str, now: float | None = None) -> float:
        """Seconds `address` must still wait (0: not blocked). No Redis call."""
        now = time.time() if now is None else now
        with self._lock:
            until = self._blocked.get(address, 0.0)
            if until and until <= now:
                del self._blocked[address]
            return max(0.0, until - now)

    def failed(self, address: str) -> float:
        """Count one failure (one INCR); seconds the address must now wait (0: not yet)."""
        key = self.keys.auth_failures(address)
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, FAILURE_WINDOW_S, nx=True)
        pipe.pttl(key)
        count, _, ttl_ms = pipe.execute()
        if int(count) <= self.limit:
            return 0.0
        wait = max(int(ttl_ms), 1000) / 1000
        with self._lock:
            self._blocked[address] = time.time() + wait
            self._blocked.move_to_end(address)
            while len(self._blocked) > 10_000:
                self._blocked.popitem(last=False)
        return wait


def presented_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer …` or `X-API-Key`, if any."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def client_address(request: Request) -> str:
    """The client's address as uvicorn reports it (behind a proxy: --forwarded-allow-ips);
    an IPv6 client counts as its /64, which one host can fill with addresses."""
    host = request.client.host if request.client else "unknown"
    if ":" in host:
        try:
            return str(ipaddress.ip_network(f"{host.split('%', 1)[0]}/64", strict=False))
        except ValueError:
            return host
    return host


def too_many_failures(wait: float) -> ApiError:
    """The 429 an address gets while it is blocked for failing to authenticate."""
    return ApiError(429, "too_many_auth_failures", "too many failed authentications from this"
                    f" address: wait {wait:.0f} s before trying again, with a valid key",
                    "Authorization", headers={"Retry-After": str(max(1, round(wait)))})


def require(*scopes: Scope) -> Callable[[Request], Coroutine[Any, Any, Caller]]:
    """FastAPI dependency: the calling key, which must hold one of `scopes` (or admin)."""

    async def dependency(request: Request, _bearer: BearerScheme = None,
                         _api_key: ApiKeyScheme = None) -> Caller:
        # _bearer and _api_key only declare the schemes: authenticate reads the headers.
        caller = await authenticate(request)
        if not caller.scopes & {*scopes, Scope.ADMIN}:
            raise ApiError(403, "forbidden", f"key {caller.name!r} lacks the scope this route"
                           f" needs ({' or '.join(scopes)}); ask an operator to add it to the"
                           " key's entry in KIRIM_API_KEYS", "Authorization")
        return caller

    return dependency


async def authenticate(request: Request) -> Caller:
    """The calling key, or raise ApiError 401 (429 while the address is blocked)."""
    rt = request.app.state.runtime
    ring: KeyRing = rt.keyring
    if not ring.keys:
        raise ApiError(401, "unauthorized", NO_KEYS, "Authorization")
    address = client_address(request)
    if wait := rt.failed_auth.blocked_for(address):
        raise too_many_failures(wait)
    secret = presented_key(request)
    entry = ring.identify(secret) if secret is not None else None
    if entry is None:
        if wait := await run_in_threadpool(rt.failed_auth.failed, address):
            raise too_many_failures(wait)
        message = ("missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
                   if secret is None else "API key not recognised: check the key, or ask for"
                   " one to be added to KIRIM_API_KEYS")
        raise ApiError(401, "unauthorized", message, "Authorization",
                       headers={"WWW-Authenticate": "Bearer"})
    request.state.key_name = entry.name
    return ring.caller(entry)
