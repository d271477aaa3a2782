"""What every CLI command shares: settings, a client, readable errors."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

import redis as redis_lib
import typer
from rich.console import Console

from producer.client import KirimClient
from producer.core.errors import KirimError
from producer.core.settings import load_settings

PIPED_WIDTH = 240
console = Console()
err_console = Console(stderr=True)


def fit_console() -> None:
    """Size the console for this run: COLUMNS if set, the terminal's own width, or (piped into a
    file or a script) wide enough that rich never cuts a message id in a table."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        console.width = int(columns)
    elif not sys.stdout.isatty():
        console.width = PIPED_WIDTH


@contextlib.contextmanager
def client() -> Iterator[KirimClient]:
    """A KirimClient from the environment; KirimErrors become a clean exit 1."""
    try:
        with KirimClient(load_settings(), source="cli") as kirim:
            yield kirim
    except KirimError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except redis_lib.RedisError as exc:
        err_console.print(f"[red]error:[/red] Redis unavailable ({type(exc).__name__}): check"
                          " KIRIM_REDIS_URL and that Redis is running")
        raise typer.Exit(1) from None


def when(epoch: float | str | None) -> str:
    """Epoch seconds as local time, for people."""
    if epoch in (None, ""):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))
