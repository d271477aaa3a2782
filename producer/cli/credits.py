"""`kirim credits [--json]`: each wallet's last reading (SMS and WhatsApp: CREDITS, or API
v1.0 `/balance` when KIRIM_NUSASMS_API_KEY is set), its age, and whether the account is
sending."""

from __future__ import annotations

import time
from typing import Any

import typer

from producer.cli.account import circuit_json
from producer.cli.common import client, console, epoch, print_json, when
from producer.core.account import AccountCircuits, CircuitState
from producer.core.redis_text import text_map
from producer.core.settings import Settings


def credits(as_json: bool = typer.Option(False, "--json", help="print one JSON document")
            ) -> None:
    """Each wallet's balance, expiry and reading age (polled by beat), and the circuits."""
    with client() as kirim:
        readings = {p: kirim.redis.hgetall(kirim.keys.credits_for(p)) for p in ("sms", "wa")}
        paused = AccountCircuits(kirim.redis, kirim.keys).paused()
        settings = kirim.settings
    if as_json:
        print_json({**{p: _reading_json(text_map(raw), settings) for p, raw in readings.items()},
                    "warn_below": settings.credits_warn_below,
                    "critical_below": settings.credits_critical_below,
                    "sending": not paused, "paused": [circuit_json(s) for s in paused]})
        return
    for product, raw in readings.items():
        reading = text_map(raw)
        if product == "sms" or reading:
            console.print(f"[bold]{product}[/bold]")
            _show(reading, settings)
    _show_circuits(paused)


def _reading_json(reading: dict[str, str], settings: Settings) -> dict[str, Any] | None:
    """A wallet's last reading (None before the first): balance as NusaSMS gave it."""
    if not reading.get("value"):
        return None
    read_at = epoch(reading.get("read_at")) or 0.0
    age_s = time.time() - read_at
    return {"balance": reading["value"], "expires": reading.get("expires") or None,
            "read_at": read_at, "age_s": round(age_s, 1), "api": reading.get("api") or None,
            "stale": age_s > 3 * settings.credits_poll_interval_s}


def _show(reading: dict[str, str], settings: Settings) -> None:
    if not reading.get("value"):
        console.print("[yellow]no CREDITS reading yet[/yellow]: is beat running"
                      " (`celery -A worker.app beat`) with a worker on `maintenance`?")
    else:
        read_at = float(reading.get("read_at") or 0)
        age_s = time.time() - read_at
        stale = age_s > 3 * settings.credits_poll_interval_s
        console.print(f"balance  {reading['value']}"
                      f"  (warn below {settings.credits_warn_below:g},"
                      f" critical below {settings.credits_critical_below:g})")
        console.print(f"expires  {reading.get('expires') or '-'}")
        source = {"v1": "API v1.0 /balance", "v3": "CREDITS"}.get(reading.get("api", ""), "")
        console.print(f"read     {when(read_at)}, {age_s:.0f} s ago"
                      + (f" ({source})" if source else "")
                      + ("  [red]stale: polls are failing[/red]" if stale else ""))


def _show_circuits(paused: list[CircuitState]) -> None:
    if not paused:
        console.print("account  [green]sending[/green] on every lane")
    for s in paused:
        console.print(f"circuit {s.name} [red]paused[/red] since {when(s.since)}: {s.reason}"
                      f" (code {s.code}); {s.held} message(s) held")
