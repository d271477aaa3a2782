"""`kirim settle ID --as sent|delivered|failed|dead|resend`: an operator settles an unknown
message (one the provider may or may not have accepted; kirim never resends it blindly)."""

from __future__ import annotations

import time
from enum import StrEnum

import typer

from producer.cli.common import EX_FAILURE, client, console, fail, print_json
from producer.client import KirimClient
from producer.core.contract import State
from producer.core.deadletters import dead_letter_fields
from producer.core.records import Effects


class Verdict(StrEnum):
    """What the operator found out about the message."""

    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"
    RESEND = "resend"


def settle(message_id: str = typer.Argument(..., help="id of a message in state unknown"),
           as_: Verdict = typer.Option(..., "--as", help="what became of it"),
           provider_id: str = typer.Option(None, help="with --as sent: NusaSMS's message id,"
                                           " to follow its delivery report"),
           as_json: bool = typer.Option(False, "--json", help="print one JSON document")
           ) -> None:
    """Settle an unknown message after checking with NusaSMS (web app, DR) or the recipient."""
    with client() as kirim:
        record = kirim.status(message_id)
        message_id = record.id  # the drop-in's 18-digit id names the same record
        if record.state != State.UNKNOWN:
            raise fail(f"message {message_id} is {record.state}, not unknown: only unknown"
                       " messages are settled", EX_FAILURE)
        ok = apply_verdict(kirim, message_id, as_, provider_id)
    if not ok:
        raise fail(f"message {message_id} changed meanwhile; check `kirim status"
                   f" {message_id}`", EX_FAILURE)
    settled = "queued" if as_ == Verdict.RESEND else as_.value
    if as_json:
        print_json({"id": message_id, "from": State.UNKNOWN.value, "to": settled})
        return
    console.print(f"{message_id}: unknown → {settled}")


def apply_verdict(kirim: KirimClient, message_id: str, verdict: Verdict,
                  provider_id: str | None) -> bool:
    """One atomic move out of `unknown` (resend: back to queued and published)."""
    keys, note = kirim.keys, f"settled by an operator as {verdict.value}"
    if verdict == Verdict.RESEND:
        ok = kirim.requeuer.requeue(message_id, allowed_from=[State.UNKNOWN], note=note)
        if ok:
            kirim.redis.zrem(keys.unknown, message_id)
        return ok
    fx = Effects(zrem=[(keys.unknown, message_id)])
    fields: dict[str, object] = {"reason": f"operator:{verdict.value}"}
    if verdict == Verdict.SENT and provider_id:  # follow its delivery report from now on
        fx.zadd.append((keys.dr_pending, time.time(), message_id))
        fx.setex.append((keys.by_provider_id(provider_id), message_id,
                         kirim.settings.message_ttl_s))
        fields |= {"provider_id": provider_id, "sent_at": time.time()}
    else:  # zadd runs before zrem in one move: never both for one id
        fx.zrem.append((keys.dr_pending, message_id))
    if verdict == Verdict.DEAD:
        record = kirim.status(message_id)
        fx.xadd.append((keys.dead_letters, dead_letter_fields(
            message_id, note, None, "OPERATOR", record.attempts, "", time.time(),
            record.fields["job"], channel=record.fields.get("channel"))))
    return kirim.store.move(message_id, State(verdict.value), note=note, set_fields=fields,
                            effects=fx, allowed_from=[State.UNKNOWN]).ok
