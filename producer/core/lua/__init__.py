"""The one Lua registry: every script of kirim, core's (this folder) and the worker's
(worker/lua/), is read once per process and registered on a client the same way.

A script may be joined from several files: a library of shared functions first (e.g.
`guard_check`, `gcra`, `callback_lanes`), then the entry script that calls them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis import Redis
from redis.commands.core import Script

CORE = "producer.core"
WORKER = "worker"


@cache
def source(package: str, *names: str) -> str:
    """The named `<name>.lua` files of `package`'s lua/ folder, joined (read once)."""
    folder = resources.files(package) / "lua"
    return "\n".join((folder / f"{name}.lua").read_text(encoding="utf-8") for name in names)


def register(redis: Redis, *names: str, package: str = CORE) -> Script:
    """Register the named scripts of `package` (joined, libraries first) on a client."""
    return redis.register_script(source(package, *names))
