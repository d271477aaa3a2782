"""`kirim status ID`: a message's state and timeline; `kirim status --unknown`: the ones an
operator must settle (`kirim settle`)."""

from __future__ import annotations

import typer
from rich.table import Table

from producer.cli.common import client, console, err_console, when
from producer.client import KirimClient
from producer.core.recipient import mask_recipient
from producer.core.redis_text import text


def status(message_id: str = typer.Argument(None, help="message id"),
           unknown: bool = typer.Option(False, "--unknown",
                                        help="list messages in state unknown instead"),
           limit: int = typer.Option(100, help="with --unknown: how many, oldest first")) -> None:
    """Show a message's state and its timeline, or list the unknown messages."""
    if unknown == (message_id is not None):
        err_console.print("give exactly one of ID or --unknown")
        raise typer.Exit(2)
    with client() as kirim:
        if unknown:
            list_unknown(kirim, limit)
            return
        record = kirim.status(message_id)
    f = record.fields
    console.print(f"[bold]{record.id}[/bold]  {f.get('channel')} to {f.get('to') or f.get('group')}"
                  f"  state [bold]{record.state}[/bold]  attempts {record.attempts}")
    for name in ("provider_id", "last_code", "last_code_name", "reason", "dr_letter"):
        if f.get(name):
            console.print(f"  {name}: {f[name]}")
    table = Table("time", "state", "note")
    for entry in record.timeline:
        table.add_row(when(entry.get("at")), entry.get("state", ""), entry.get("note", ""))
    console.print(table)


def list_unknown(kirim: KirimClient, limit: int) -> None:
    """Unknown messages, oldest first: id, masked recipient, since when, provider id."""
    entries: list[tuple[bytes, float]] = kirim.redis.zrange(  # type: ignore[assignment]
        kirim.keys.unknown, 0, limit - 1, withscores=True)
    table = Table("message", "channel", "to", "since", "provider id", "reason")
    shown = 0
    for raw, since in entries:
        record = kirim.store.get(text(raw))
        if record is None or record.state != "unknown":
            continue
        f = record.fields
        to = mask_recipient(f["to"]) if f.get("to") else f"group:{f.get('group', '')}"
        table.add_row(record.id, f.get("channel", ""), to, when(since),
                      f.get("provider_id") or "-", f.get("reason", ""))
        shown += 1
    console.print(table)
    console.print(f"{shown} unknown; settle each with `kirim settle ID --as sent|delivered|"
                  "failed|dead|resend`")
