"""What the routes share: one KirimClient per app, the key ring, dead letters."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from producer.api.auth import KeyRing
from producer.api.commits import GroupCommit
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

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Wire everything from settings (the Redis connection opens on first use)."""
        kirim = KirimClient(settings, source="api")
        return cls(settings, kirim, KeyRing.parse(settings.api_keys.get_secret_value()),
                   DeadLetters(kirim.redis, kirim.keys, kirim.requeuer),
                   GroupCommit(kirim.enqueuer))

    def close(self) -> None:
        """Write what is waiting, then release connections."""
        self.commits.close()
        self.kirim.close()


async def runtime(request: Request) -> Runtime:
    """FastAPI dependency: the app's Runtime (async: no thread-pool hop for a lookup)."""
    rt: Runtime = request.app.state.runtime
    return rt
