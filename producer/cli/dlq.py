"""`kirim dlq list | show ID | replay ID | replay --code -13 | replay --all | purge`."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from producer.cli.common import (
    EX_FAILURE,
    EX_NOINPUT,
    EX_USAGE,
    client,
    console,
    fail,
    print_json,
    when,
)
from producer.core.deadletters import DeadLetter, DeadLetters

app = typer.Typer(no_args_is_help=True, help="Dead letters: messages kirim gave up on.")

JSON = typer.Option(False, "--json", help="print one JSON document")


def letter_json(d: DeadLetter, with_job: bool) -> dict[str, Any]:
    """A dead letter for scripts (the job, which may hold the text, only when asked)."""
    doc: dict[str, Any] = {"entry_id": d.entry_id, "message_id": d.message_id, "at": d.at,
                           "code": d.code, "code_name": d.code_name, "attempts": d.attempts,
                           "reason": d.reason, "last_reply": d.last_reply,
                           "text_erased": d.text_erased}
    return doc | {"job": d.job} if with_job else doc


@app.command("list")
def list_(limit: int = typer.Option(50, help="how many, newest first"),
          code: str = typer.Option(None, help="only this provider code, e.g. -13"),
          as_json: bool = JSON) -> None:
    """List dead letters, newest first (`dlq show` gives one with its job)."""
    with client() as kirim:
        letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).list(limit, code)
    if as_json:
        print_json({"count": len(letters),
                    "dead_letters": [letter_json(d, with_job=False) for d in letters]})
        return
    table = Table("entry", "message", "when", "code", "name", "attempts", "reason")
    for d in letters:
        table.add_row(d.entry_id, d.message_id, when(d.at), d.code, d.code_name,
                      str(d.attempts), d.reason)
    console.print(table)
    console.print(f"{len(letters)} shown")


@app.command()
def show(entry: str = typer.Argument(..., help="stream entry id or message id"),
         as_json: bool = typer.Option(False, "--json", help="print compact JSON (one line)")
         ) -> None:
    """Show one dead letter with its whole job and the provider's last reply."""
    with client() as kirim:
        letter = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).get(entry)
    if letter is None:
        raise fail(f"no dead letter {entry!r}", EX_NOINPUT)
    if as_json:
        print_json(letter_json(letter, with_job=True))
        return
    console.print_json(json.dumps(letter.__dict__, default=str))


@app.command()
def replay(entry: str = typer.Argument(None, help="stream entry id or message id"),
           code: str = typer.Option(None, help="replay all with this provider code"),
           all_: bool = typer.Option(False, "--all", help="replay every dead letter"),
           as_json: bool = JSON) -> None:
    """Send dead messages again through the whole pipeline (a dead OTP whose text was erased
    cannot be: exit 65)."""
    if sum(x is not None and x is not False for x in (entry, code, all_ or None)) != 1:
        raise fail("give exactly one of ENTRY, --code CODE or --all", EX_USAGE)
    with client() as kirim:
        letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
        if entry is not None:
            letter = letters.get(entry)
            if letter is None:
                raise fail(f"no dead letter {entry!r}", EX_NOINPUT)
            done, skipped = (1, 0) if letters.replay(letter) else (0, 1)  # TextErased: 65
        else:
            done, skipped = letters.replay_where(code)
    if as_json:
        print_json({"replayed": done, "skipped": skipped})
        return
    console.print(f"replayed {done}, skipped {skipped} (no longer dead, or an OTP whose text"
                  " was erased)")


@app.command()
def purge(yes: bool = typer.Option(False, "--yes", help="do not ask"),
          as_json: bool = JSON) -> None:
    """Delete every dead letter."""
    if not yes and not typer.confirm("delete every dead letter?", err=True):
        raise fail("not purged", EX_FAILURE)
    with client() as kirim:
        count = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).purge()
    if as_json:
        print_json({"purged": count})
        return
    console.print(f"purged {count}")
