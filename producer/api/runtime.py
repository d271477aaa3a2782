"""What the routes share: one KirimClient per app, the key ring, dead letters."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from producer.api.auth import FailedAuth, KeyRing
from producer.api.commits import GroupCommit
from producer.api.quota import KeyQuota
from producer.client import KirimClient
from producer.core.deadletters import DeadLetters
from producer.core.settings import Settings


@dataclass
class Runtime:
    """Built once at startup (lifespan), closed at shutdown."""

    settings: Settings
    kirim: KirimClient
    keyring: KeyRing
    dead_letters: DeadLetters
    commits: GroupCommit
    failed_auth: FailedAuth
    quota: KeyQuota

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Wire everything from settings (the Redis connection opens on first use)."""
        kirim = KirimClient(settings, source="api")
        return cls(settings, kirim, KeyRing.from_settings(settings),
                   DeadLetters(kirim.redis, kirim.keys, kirim.requeuer),
                   GroupCommit(kirim.enqueuer),
                   FailedAuth(kirim.redis, kirim.keys, settings.api_auth_failures_per_min),
                   KeyQuota(settings, kirim.keys))

    def close(self) -> None:
        """Write what is waiting, then release connections."""
        self.commits.close()
        self.kirim.close()


async def runtime(request: Request) -> Runtime:
    """FastAPI dependency: the app's Runtime (async: no thread-pool hop for a lookup)."""
    rt: Runtime = request.app.state.runtime
    return rt
