"""`kirim credits`: the last CREDITS reading, its age, and whether the account is sending."""

from __future__ import annotations

import time

from producer.cli.common import client, console, when
from producer.core.account import AccountCircuits, CircuitState
from producer.core.redis_text import text_map
from producer.core.settings import Settings


def credits() -> None:
    """Each wallet's balance, expiry and reading age (polled by beat), and the circuits."""
    with client() as kirim:
        readings = {p: kirim.redis.hgetall(kirim.keys.credits_for(p)) for p in ("sms", "wa")}
        paused = AccountCircuits(kirim.redis, kirim.keys).paused()
        settings = kirim.settings
    for product, raw in readings.items():
        reading = text_map(raw)
        if product == "sms" or reading:
            console.print(f"[bold]{product}[/bold]")
            _show(reading, settings)
    _show_circuits(paused)


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
        console.print(f"read     {when(read_at)}, {age_s:.0f} s ago"
                      + ("  [red]stale: polls are failing[/red]" if stale else ""))


def _show_circuits(paused: list[CircuitState]) -> None:
    if not paused:
        console.print("account  [green]sending[/green] on every lane")
    for s in paused:
        console.print(f"circuit {s.name} [red]paused[/red] since {when(s.since)}: {s.reason}"
                      f" (code {s.code}); {s.held} message(s) held")
