"""`kirim send sms|wa|otp NUMBER TEXT` and `kirim send --file batch.csv`."""

from __future__ import annotations

import csv
from pathlib import Path

import typer
from rich.progress import Progress

from producer.cli.common import client, console, err_console
from producer.core.enqueue import Accepted

BATCH = 500


def send(
    channel: str = typer.Argument(None, help="sms, wa or otp"),
    number: str = typer.Argument(None, help="recipient, e.g. 081234567890 or +6281234567890"),
    text: str = typer.Argument(None, help="message text"),
    file: Path = typer.Option(None, "--file", "-f", help="CSV with columns channel,to,text"),
    idempotency_key: str = typer.Option(None, "--key", help="idempotency key"),
) -> None:
    """Enqueue one message, or every row of a CSV file."""
    if file is not None:
        _send_file(file)
        return
    if not (channel and number and text):
        err_console.print("error: give CHANNEL NUMBER TEXT, or --file batch.csv")
        raise typer.Exit(2)
    with client() as kirim:
        accepted = kirim.submit({"channel": channel, "to": number, "text": text,
                                 "idempotency_key": idempotency_key})
    console.print(f"{accepted.id}  {accepted.state}  to {accepted.to}  "
                  f"({accepted.parts} part(s), {accepted.encoding})")


def _send_file(path: Path) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ok = bad = 0
    with client() as kirim, Progress(console=console) as progress:
        task = progress.add_task(f"enqueue {path.name}", total=len(rows))
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            for row_no, result in enumerate(kirim.send_many(chunk), start=start + 2):
                if isinstance(result, Accepted):
                    ok += 1
                else:
                    bad += 1
                    err_console.print(f"line {row_no}: {result}")
            progress.advance(task, len(chunk))
    console.print(f"accepted {ok}, refused {bad}")
    if bad:
        raise typer.Exit(1)
