"""`kirim status ID`: a message's state and timeline."""

from __future__ import annotations

import typer
from rich.table import Table

from producer.cli.common import client, console, when


def status(message_id: str = typer.Argument(..., help="message id")) -> None:
    """Show a message's state and its timeline."""
    with client() as kirim:
        record = kirim.status(message_id)
    f = record.fields
    console.print(f"[bold]{record.id}[/bold]  {f.get('channel')} to {f.get('to') or f.get('group')}"
                  f"  state [bold]{record.state}[/bold]  attempts {record.attempts}")
    for name in ("provider_id", "last_code", "last_code_name", "reason"):
        if f.get(name):
            console.print(f"  {name}: {f[name]}")
    table = Table("time", "state", "note")
    for entry in record.timeline:
        table.add_row(when(entry.get("at")), entry.get("state", ""), entry.get("note", ""))
    console.print(table)
