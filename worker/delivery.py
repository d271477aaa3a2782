"""Delivery reports: polling DR for sent messages and applying pushed reports (issue 5)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from producer.settings import Settings


def register(app: Celery) -> None:
    """Register the delivery-report tasks on `app`."""


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat schedule entries for delivery reports."""
    return {}
