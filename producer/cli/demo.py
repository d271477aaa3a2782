"""`kirim demo [--stack]`: send a batch that shows every path a message can take."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

import typer
from rich.progress import Progress
from rich.table import Table

from producer.cli.common import client, console
from producer.client import KirimClient
from producer.core.contract import State
from producer.core.enqueue import Accepted

SETTLED = {State.SENT, State.DELIVERED, State.UNDELIVERED, State.FAILED, State.REJECTED,
           State.EXPIRED, State.DEAD, State.UNKNOWN, State.DEFERRED}

# (label, channel, to, text): magic sandbox numbers pick the provider's behaviour.
SCENARIOS = [
    *[("sent normally", "sms", f"62812345678{i:02d}", f"Pesanan #{1000 + i} sudah dikirim.")
      for i in range(30)],
    *[("otp lane", "otp", f"62813555000{i:02d}", f"Kode OTP Anda {123400 + i}. Jangan"
       " berikan kepada siapa pun.") for i in range(5)],
    *[("whatsapp", "wa", f"62857111000{i:02d}", f"Halo! Tagihan #{i} sudah lunas 👍")
      for i in range(5)],
    ("retry recovers (-26 twice)", "sms", "6281195200000", "Transient provider error demo."),
    ("dead letter (-13)", "sms", "6281190013000", "Invalid destination demo."),
    ("dead letter (-88)", "sms", "6281190088000", "Operator rejected demo."),
    ("ambiguous: dropped reply", "sms", "6281193000000", "Connection dropped after accept."),
    *[("deferred by the -77 guard", "sms", "6281298765432", "Promo: diskon 50% hari ini!")
      for _ in range(12)],
]


def demo(stack: bool = typer.Option(False, help="start a local stack first (make run)"),
         hold: bool = typer.Option(None, help="keep the stack up afterwards (default: on a TTY)"),
         timeout_s: float = typer.Option(60.0, help="how long to wait for messages to settle"),
         ) -> None:
    """Send a demo batch and print where each message ended up."""
    local = None
    if stack:
        from producer.cli.stack import LocalStack

        local = LocalStack()
        console.print("starting Redis, the sandbox, workers, beat and Flower …")
        local.start()
        os.environ.update(local.env)
    try:
        _run_demo(timeout_s)
        if local is not None:
            _show_stack(local)
            if hold if hold is not None else sys.stdin.isatty():
                console.print("stack running; press Ctrl-C to stop it")
                _wait_forever()
    finally:
        if local is not None:
            local.stop()


def _run_demo(timeout_s: float) -> None:
    with client(source="demo") as kirim:
        results = kirim.send_many([{"channel": c, "to": to, "text": text}
                                   for _, c, to, text in SCENARIOS])
        ids = {r.id: label for r, (label, *_rest) in zip(results, SCENARIOS, strict=True)
               if isinstance(r, Accepted)}
        states = _wait_settled(kirim, list(ids), timeout_s)
    _summary(ids, states)


def _wait_settled(kirim: KirimClient, ids: list[str], timeout_s: float) -> list[str | None]:
    deadline = time.monotonic() + timeout_s
    with Progress(console=console) as progress:
        bar = progress.add_task("sending demo batch", total=len(ids))
        while True:
            states = kirim.store.states(ids)
            done = sum(s in SETTLED for s in states)
            progress.update(bar, completed=done)
            if done == len(ids) or time.monotonic() > deadline:
                return states
            time.sleep(0.25)


def _summary(ids: dict[str, str], states: list[str | None]) -> None:
    by_label: dict[str, Counter[str]] = {}
    for label, state in zip(ids.values(), states, strict=True):
        by_label.setdefault(label, Counter())[state or "missing"] += 1
    table = Table("scenario", "messages", "final states")
    for label, counts in by_label.items():
        table.add_row(label, str(sum(counts.values())),
                      ", ".join(f"{s} {n}" for s, n in counts.most_common()))
    console.print(table)
    totals = Counter(s or "missing" for s in states)
    console.print("totals: " + ", ".join(f"{s} {n}" for s, n in totals.most_common()))


def _show_stack(local: object) -> None:
    ports = local.ports  # type: ignore[attr-defined]
    console.print(f"Flower:  http://127.0.0.1:{ports['flower']}  (admin / kirim-demo)")
    console.print(f"API:     http://127.0.0.1:{ports['api']}/docs  (Authorization: Bearer"
                  " kirim-demo-key)")
    console.print(f"sandbox: http://127.0.0.1:{ports['sandbox']}/_sandbox/stats")
    console.print(f"logs:    .run/*.log   Redis: redis://127.0.0.1:{ports['redis']}/0")


def _wait_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping …")
