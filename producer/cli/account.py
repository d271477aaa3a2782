"""`kirim account status | resume`: the account's circuits (producer.core.account)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from producer.cli.common import client, console, print_json, when
from producer.core.account import AccountCircuits, CircuitState, resume_account
from producer.core.routing import LANE_CIRCUITS, Circuit

app = typer.Typer(no_args_is_help=True,
                  help="The NusaSMS account's circuits: which lanes are paused, and why.")


def _lanes(circuit: str) -> str:
    return ", ".join(_lane_list(circuit))


def _lane_list(circuit: str) -> list[str]:
    return [lane.value for lane, deps in LANE_CIRCUITS.items() if circuit in deps]


def circuit_json(s: CircuitState) -> dict[str, Any]:
    """One circuit for scripts."""
    return {"circuit": s.name, "paused": s.paused, "stops_lanes": _lane_list(s.name),
            "since": s.since if s.paused else None,
            "reason": (s.reason or None) if s.paused else None,
            "code": (s.code or None) if s.paused else None, "held": s.held}


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="print one JSON document")
           ) -> None:
    """Each circuit: sending or paused (since when, why), the lanes it stops, what it holds."""
    with client() as kirim:
        states = AccountCircuits(kirim.redis, kirim.keys).states()
    if as_json:
        print_json({"sending": not any(s.paused for s in states),
                    "paused": [s.name for s in states if s.paused],
                    "circuits": [circuit_json(s) for s in states]})
        return
    table = Table("circuit", "state", "stops lanes", "since", "reason", "held")
    for s in states:
        shown = "[red]paused[/red]" if s.paused else "[green]sending[/green]"
        reason = f"{s.reason} (code {s.code})" if s.paused else ""
        table.add_row(s.name, shown, _lanes(s.name), when(s.since) if s.paused else "",
                      reason, str(s.held))
    console.print(table)
    paused = [s.name for s in states if s.paused]
    console.print(f"paused: {', '.join(paused)}" if paused else "every lane is sending")


@app.command()
def resume(circuit: str = typer.Argument(
        None, help=f"one of {', '.join(c.value for c in Circuit)}; default: every paused one"),
           as_json: bool = typer.Option(False, "--json", help="print one JSON document")
           ) -> None:
    """Resume after fixing credentials, IP whitelist, sender, OTP route or credit; requeues
    the messages the circuit held."""
    if circuit is not None and circuit not in {c.value for c in Circuit}:
        raise typer.BadParameter(f"{circuit!r} is not a circuit; use one of"
                                 f" {', '.join(c.value for c in Circuit)}")
    with client() as kirim:
        circuits = AccountCircuits(kirim.redis, kirim.keys)
        count = resume_account(circuits, kirim.requeuer, circuit)
    if as_json:
        print_json({"resumed": circuit or "account", "requeued": count})
        return
    console.print(f"{circuit or 'account'} resumed; {count} held message(s) requeued")
