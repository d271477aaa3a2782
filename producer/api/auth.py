"""API keys: only SHA-256 hashes are configured; a key's name is the `source` of its messages.

`KIRIM_API_KEYS="shop:<sha256hex>,billing:<sha256hex>"`; make a hash with
`python -c "import hashlib;print(hashlib.sha256(b'secret').hexdigest())"`.
No keys configured means every request is refused: there is no open mode.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request

from producer.api.errors import ApiError

NO_KEYS = ("no API keys are configured: set KIRIM_API_KEYS=name:sha256hex[,name2:sha256hex]"
           " (the hash of each key, never the key) and restart the API")
# Compared against when a name is unknown, so a wrong name costs the same time as a wrong key.
_DUMMY = hashlib.sha256(b"kirim: no such key").digest()


@dataclass(frozen=True)
class ApiKey:
    """A named key; only its hash is held."""

    name: str
    digest: bytes


class KeyRing:
    """The configured keys; answers which (if any) a presented secret is."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    @classmethod
    def parse(cls, raw: str) -> KeyRing:
        """From the KIRIM_API_KEYS value (Settings has already checked its format)."""
        keys = []
        for entry in filter(None, (e.strip() for e in raw.split(","))):
            name, _, digest = entry.partition(":")
            keys.append(ApiKey(name, bytes.fromhex(digest)))
        return cls(keys)

    def identify(self, secret: str) -> str | None:
        """The name of the key whose hash matches `secret`, or None (every key is compared)."""
        presented = hashlib.sha256(secret.encode()).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(presented, key.digest) and found is None:
                found = key.name
        return found

    def check(self, name: str, secret: str) -> bool:
        """True when `secret` is the key called `name` (the drop-in's user + password)."""
        presented = hashlib.sha256(secret.encode()).digest()
        digest = next((k.digest for k in self.keys if k.name == name), None)
        return hmac.compare_digest(presented, digest or _DUMMY) and digest is not None


def presented_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer …` or `X-API-Key`, if any."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def require_key(request: Request) -> str:
    """FastAPI dependency: the calling key's name, or 401.

    `async` although it never awaits: FastAPI runs a plain `def` dependency in its thread
    pool, a hop that cost more than the check itself.
    """
    return check_key(request)


def check_key(request: Request) -> str:
    """The calling key's name, or raise ApiError 401."""
    ring: KeyRing = request.app.state.runtime.keyring
    if not ring.keys:
        raise ApiError(401, "unauthorized", NO_KEYS, "Authorization")
    secret = presented_key(request)
    if secret is None:
        raise ApiError(401, "unauthorized", "missing API key: send `Authorization: Bearer"
                       " <key>` or `X-API-Key: <key>`", "Authorization",
                       headers={"WWW-Authenticate": "Bearer"})
    name = ring.identify(secret)
    if name is None:
        raise ApiError(401, "unauthorized", "API key not recognised: check the key, or ask"
                       " for one to be added to KIRIM_API_KEYS", "Authorization",
                       headers={"WWW-Authenticate": "Bearer"})
    request.state.key_name = name
    return name
