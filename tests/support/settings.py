"""Settings from an environment dict, as a kirim process given that environment loads them."""

from __future__ import annotations

from collections.abc import Mapping

from producer.core.settings import Settings


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The Settings of `env`'s KIRIM_* variables (KIRIM_REDIS_URL → redis_url, …)."""
    fields = {name.removeprefix("KIRIM_").lower(): value for name, value in env.items()
              if name.startswith("KIRIM_")}
    return Settings(**fields)  # type: ignore[arg-type]
