"""Receivers for what NusaSMS pushes to us: delivery reports and inbound SMS (issue 5)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["provider callbacks"])
