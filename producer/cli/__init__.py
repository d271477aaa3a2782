"""`kirim`: send, status, dead letters, account, demo. Run `kirim --help`."""

from __future__ import annotations

import typer

from producer.cli import account, api, credits, dlq, keys, send, settle, status, upgrade
from producer.cli.common import EXIT_CODES_HELP, KirimGroup, main_options
from producer.cli.demo import demo

app = typer.Typer(cls=KirimGroup, no_args_is_help=True, add_completion=True,
                  epilog=EXIT_CODES_HELP)
app.callback()(main_options)
app.command(name="send")(send.send)
app.command(name="status")(status.status)
app.add_typer(dlq.app, name="dlq")
app.add_typer(account.app, name="account")
app.add_typer(keys.app, name="keys")
app.command(name="demo")(demo)
app.command(name="api")(api.api)
app.command(name="credits")(credits.credits)
app.command(name="settle")(settle.settle)
app.command(name="upgrade-guard")(upgrade.upgrade_guard)


def main() -> None:
    """Console-script entry point."""
    app()
