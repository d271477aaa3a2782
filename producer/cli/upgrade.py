"""`kirim upgrade-guard`: fold the recipient guard's data of the layout before into today's."""

from __future__ import annotations

import typer

from producer.cli.common import client, console, print_json
from producer.core.guard import fold_text_windows


def upgrade_guard(as_json: bool = typer.Option(False, "--json", help="print one JSON document")
                  ) -> None:
    """Fold each per-text guard window (<prefix>:guard:t:…, before one set per recipient)
    into its recipient's set. Workers do it when they start; run it once more after a rolling
    deploy, for what workers of the old layout wrote meanwhile. Safe to run again."""
    with client() as kirim:
        moved = fold_text_windows(kirim.redis, kirim.keys)
    if as_json:
        print_json({"moved": moved})
        return
    console.print(f"{moved} guard entr{'y' if moved == 1 else 'ies'} folded into recipient sets")
