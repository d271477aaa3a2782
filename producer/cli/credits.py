"""`kirim credits`: the last CREDITS reading, its age, and whether the account is sending."""

from __future__ import annotations

import time

from producer.account import AccountCircuit
from producer.cli.common import client, console, when


def credits() -> None:
    """Balance, expiry, age of the last reading (polled by beat) and the account circuit."""
    with client() as kirim:
        raw = kirim.redis.hgetall(kirim.keys.credits)
        state = AccountCircuit(kirim.redis, kirim.keys).state()
        held = kirim.redis.scard(kirim.keys.held)
        settings = kirim.settings
    reading = {_s(k): _s(v) for k, v in raw.items()}
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
    if state.paused:
        console.print(f"account  [red]paused[/red] since {when(state.since)}: {state.reason}"
                      f" (code {state.code}); {held} message(s) held")
    else:
        console.print(f"account  [green]sending[/green]; {held} message(s) held")


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
