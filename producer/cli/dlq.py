"""`kirim dlq list | show ID | replay ID | replay --code -13 | replay --all | purge`."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from producer.cli.common import client, console, err_console, when
from producer.core.deadletters import DeadLetters
from producer.core.errors import TextErased

app = typer.Typer(no_args_is_help=True, help="Dead letters: messages kirim gave up on.")



@app.command("list")
def list_(limit: int = typer.Option(50, help="how many, newest first"),
          code: str = typer.Option(None, help="only this provider code, e.g. -13")) -> None:
    """List dead letters, newest first."""
    with client() as kirim:
        letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).list(limit, code)
    table = Table("entry", "message", "when", "code", "name", "attempts", "reason")
    for d in letters:
        table.add_row(d.entry_id, d.message_id, when(d.at), d.code, d.code_name,
                      str(d.attempts), d.reason)
    console.print(table)
    console.print(f"{len(letters)} shown")


@app.command()
def show(entry: str = typer.Argument(..., help="stream entry id or message id")) -> None:
    """Show one dead letter with its whole job and the provider's last reply."""
    with client() as kirim:
        letter = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).get(entry)
    if letter is None:
        err_console.print(f"no dead letter {entry!r}")
        raise typer.Exit(1)
    console.print_json(json.dumps(letter.__dict__, default=str))


@app.command()
def replay(entry: str = typer.Argument(None, help="stream entry id or message id"),
           code: str = typer.Option(None, help="replay all with this provider code"),
           all_: bool = typer.Option(False, "--all", help="replay every dead letter")) -> None:
    """Send dead messages again through the whole pipeline."""
    if sum(x is not None and x is not False for x in (entry, code, all_ or None)) != 1:
        err_console.print("give exactly one of ENTRY, --code CODE or --all")
        raise typer.Exit(2)
    with client() as kirim:
        letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
        if entry is not None:
            letter = letters.get(entry)
            if letter is None:
                err_console.print(f"no dead letter {entry!r}")
                raise typer.Exit(1)
            try:
                done, skipped = (1, 0) if letters.replay(letter) else (0, 1)
            except TextErased as exc:
                err_console.print(str(exc))
                raise typer.Exit(1) from None
        else:
            done, skipped = letters.replay_where(code)
    console.print(f"replayed {done}, skipped {skipped} (no longer dead, or an OTP whose text"
                  " was erased)")


@app.command()
def purge(yes: bool = typer.Option(False, "--yes", help="do not ask")) -> None:
    """Delete every dead letter."""
    if not yes and not typer.confirm("delete every dead letter?"):
        raise typer.Exit(1)
    with client() as kirim:
        count = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).purge()
    console.print(f"purged {count}")
