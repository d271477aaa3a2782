"""`kirim status ID`: a message's state and timeline; `kirim status --unknown`: the ones an
operator must settle (`kirim settle`)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from producer.cli.common import EX_USAGE, client, console, epoch, fail, print_json, when
from producer.client import KirimClient
from producer.core.contract import sent_api
from producer.core.recipient import mask_recipient
from producer.core.records import MessageRecord
from producer.core.redis_text import text

# The record's fields a person or a script may want (never the stored job, which holds the
# text), under the names GET /v1/messages/{id} uses.
FACTS = ("channel", "to", "group", "encoding", "source", "api", "provider_id", "nusasms_id",
         "last_code", "last_code_name", "reason", "dr_letter", "dr_sent_date",
         "dr_delivered_date", "dr_read_date")
# Shown under the headline when set: which NusaSMS API sent it, and the provider's own times
# (a WhatsApp through API v1.0 has delivered and read times).
SHOWN = ("api", "provider_id", "last_code", "last_code_name", "reason", "dr_letter",
         "dr_sent_date", "dr_delivered_date", "dr_read_date")


def status(message_id: str = typer.Argument(None, help="message id"),
           unknown: bool = typer.Option(False, "--unknown",
                                        help="list messages in state unknown instead"),
           limit: int = typer.Option(100, help="with --unknown: how many, oldest first"),
           as_json: bool = typer.Option(False, "--json", help="print one JSON document")
           ) -> None:
    """Show a message's state and its timeline, or list the unknown messages."""
    if unknown == (message_id is not None):
        raise fail("give exactly one of ID or --unknown", EX_USAGE)
    with client() as kirim:
        if unknown:
            list_unknown(kirim, limit, as_json)
            return
        record = kirim.status(message_id)
    if as_json:
        print_json(record_json(record))
        return
    f = record.fields
    console.print(f"[bold]{record.id}[/bold]  {f.get('channel')} to {f.get('to') or f.get('group')}"
                  f"  state [bold]{record.state}[/bold]  attempts {record.attempts}")
    facts = {**f, "api": sent_api(f) or ""}
    for name in SHOWN:
        if facts.get(name):
            console.print(f"  {name}: {facts[name]}")
    table = Table("time", "state", "note")
    for entry in record.timeline:
        table.add_row(when(entry.get("at")), entry.get("state", ""), entry.get("note", ""))
    console.print(table)


def record_json(record: MessageRecord) -> dict[str, Any]:
    """A message for scripts: id, state, attempts, its facts, created_at and the timeline."""
    f = record.fields
    accepted = next((e for e in record.timeline if e.get("state") == "accepted"), {})
    return {"id": record.id, "state": record.state, "attempts": record.attempts,
            **{name: f.get(name) or None for name in FACTS}, "api": sent_api(f),
            "parts": int(f["parts"]) if str(f.get("parts") or "").isdigit() else None,
            "created_at": epoch(accepted.get("at")),
            "timeline": [{"state": e.get("state"), "at": epoch(e.get("at")),
                          "note": e.get("note") or None} for e in record.timeline]}


def list_unknown(kirim: KirimClient, limit: int, as_json: bool = False) -> None:
    """Unknown messages, oldest first: id, masked recipient, since when, provider id."""
    entries: list[tuple[bytes, float]] = kirim.redis.zrange(  # type: ignore[assignment]
        kirim.keys.unknown, 0, limit - 1, withscores=True)
    table = Table("message", "channel", "to", "since", "provider id", "reason")
    shown: list[dict[str, Any]] = []
    for raw, since in entries:
        record = kirim.store.get(text(raw))
        if record is None or record.state != "unknown":
            continue
        f = record.fields
        to = mask_recipient(f["to"]) if f.get("to") else f"group:{f.get('group', '')}"
        table.add_row(record.id, f.get("channel", ""), to, when(since),
                      f.get("provider_id") or "-", f.get("reason", ""))
        shown.append({"id": record.id, "channel": f.get("channel") or None, "to": to,
                      "since": since, "provider_id": f.get("provider_id") or None,
                      "reason": f.get("reason") or None})
    if as_json:
        print_json({"count": len(shown), "unknown": shown})
        return
    console.print(table)
    console.print(f"{len(shown)} unknown; settle each with `kirim settle ID --as sent|delivered|"
                  "failed|dead|resend`")
