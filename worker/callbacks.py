"""Status callbacks to producers: HMAC-signed POSTs of every state change (issue 5)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from producer.settings import Settings


def register(app: Celery) -> None:
    """Register the status-callback tasks on `app`."""


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat schedule entries for status callbacks."""
    return {}
