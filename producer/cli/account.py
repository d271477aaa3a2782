"""`kirim account status | resume`: the account circuit."""

from __future__ import annotations

import typer

from producer.account import AccountCircuit, resume_account
from producer.cli.common import client, console, when

app = typer.Typer(no_args_is_help=True, help="The NusaSMS account circuit (paused / sending).")


@app.command()
def status() -> None:
    """Is sending paused, and why."""
    with client() as kirim:
        state = AccountCircuit(kirim.redis, kirim.keys).state()
        held = kirim.redis.scard(kirim.keys.held)
    if state.paused:
        console.print(f"[red]paused[/red] since {when(state.since)}: {state.reason}"
                      f" (code {state.code}); {held} message(s) held")
    else:
        console.print(f"[green]sending[/green]; {held} message(s) held")


@app.command()
def resume() -> None:
    """Resume sending after fixing credentials, IP whitelist or credit; requeues held messages."""
    with client() as kirim:
        count = resume_account(AccountCircuit(kirim.redis, kirim.keys), kirim.dispatcher)
    console.print(f"account resumed; {count} held message(s) requeued")
