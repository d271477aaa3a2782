"""Redis Lua scripts, loaded once per client with `load_script`."""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis import Redis
from redis.commands.core import Script


@cache
def _source(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.lua").read_text()


def load_joined(redis: Redis, *names: str) -> Script:
    """Register the named scripts of this package joined into one (shared functions first)."""
    return redis.register_script("\n".join(_source(name) for name in names))


def load_script(redis: Redis, name: str, package: str | None = None) -> Script:
    """Register `<name>.lua` from this package (or another package's folder) on a client."""
    if package is None:
        return redis.register_script(_source(name))
    return redis.register_script(resources.files(package).joinpath(f"{name}.lua").read_text())
