"""Credits polling, balance alerts and automatic account resume (issue 5)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from producer.settings import Settings


def register(app: Celery) -> None:
    """Register the credits and alert tasks on `app`."""


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat schedule entries for credits polling."""
    return {}
