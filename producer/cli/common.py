"""What every CLI command shares: settings, a client, JSON output, and the one place where
errors become a line on stderr and an exit code (`sysexits.h` values, so a script can tell
"retry later" from "fix the input").

Exit codes (also in `kirim --help` and docs/operations.md):

    0   done
    1   anything else: the command could not be done (e.g. a message not in the state the
        command needs), an aborted prompt, or an unexpected error (`kirim --debug …` shows
        its traceback)
    2   usage: unknown option, missing or conflicting arguments
    65  EX_DATAERR: the input is wrong (invalid number or text, a refused CSV row, an
        idempotency key reused with another body, a dead OTP whose text was erased)
    66  EX_NOINPUT: what you named does not exist: no such --file (or not readable), no such
        message id or dead letter
    69  EX_UNAVAILABLE: Redis cannot be reached (refused, unresolvable, no answer): nothing
        was done; retry when it is back
    75  EX_TEMPFAIL: a temporary failure, retry later: the Redis connection failed in the
        middle of the command (a send may have been accepted: check `kirim status ID`, or
        send again with the same --key), Redis refused the write (out of memory, read-only),
        or the recipient guard holds an OTP for now
    78  EX_CONFIG: a KIRIM_* setting is missing or invalid, or Redis refused the credentials
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import redis as redis_lib
import typer
from rich.console import Console
from typer.core import TyperGroup

from producer.client import KirimClient
from producer.core.errors import (
    AliasTaken,
    ConfigError,
    IdempotencyConflict,
    InvalidMessage,
    KirimError,
    MessageNotFound,
    RecipientLimited,
    StoreUnavailable,
    TextErased,
)
from producer.core.settings import load_settings

PIPED_WIDTH = 240
console = Console()
err_console = Console(stderr=True)

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_CONFIG = 78
EX_INTERRUPTED = 130

# The `kirim --help` epilog: \b keeps click from re-flowing the table.
EXIT_CODES_HELP = (
    "\b\nExit codes (sysexits.h):\n"
    "  0    done\n"
    "  1    not done for another reason, or an unexpected error (rerun with --debug)\n"
    "  2    usage: bad option or arguments\n"
    "  65   bad input: invalid number/text, refused CSV row, idempotency key reused\n"
    "  66   no such input: --file missing or unreadable, unknown message id or dead letter\n"
    "  69   Redis unreachable: nothing was done; retry when it is back\n"
    "  75   temporary failure, retry later: Redis failed mid-command (a send may have been\n"
    "       accepted: resend with the same --key), Redis refused the write, OTP guard\n"
    "  78   configuration: a KIRIM_* setting is missing or invalid\n"
    "  130  interrupted\n"
    "With --json a command prints one JSON document on stdout; errors go to stderr."
)


class CliError(Exception):
    """A failure the CLI explains itself: `message` for stderr, `code` for the exit status."""

    def __init__(self, message: str, code: int = EX_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class RedisUnreachable(CliError):
    """Redis did not answer before the command did anything."""


class _State:
    debug = False


state = _State()


def exit_code_for(exc: BaseException) -> int:
    """The sysexits code for an error raised by a command."""
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, (InvalidMessage, IdempotencyConflict, TextErased)):
        return EX_DATAERR
    if isinstance(exc, MessageNotFound):
        return EX_NOINPUT
    if isinstance(exc, ConfigError):
        return EX_CONFIG
    if isinstance(exc, (StoreUnavailable, RecipientLimited, AliasTaken)):
        return EX_TEMPFAIL
    if isinstance(exc, redis_lib.AuthenticationError):
        return EX_CONFIG
    if isinstance(exc, redis_lib.RedisError):  # after the command had reached Redis
        return EX_TEMPFAIL
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return EX_NOINPUT
    if isinstance(exc, UnicodeDecodeError):
        return EX_DATAERR
    return EX_FAILURE


def message_for(exc: BaseException) -> str:
    """One line a CLI user can act on (never the HTTP API's advice)."""
    if isinstance(exc, CliError):
        return exc.message
    if isinstance(exc, redis_lib.AuthenticationError):
        return f"Redis refused the credentials ({exc}): check the password in KIRIM_REDIS_URL"
    if isinstance(exc, StoreUnavailable):
        return f"{exc}; nothing was written for it: retry later"
    if isinstance(exc, redis_lib.RedisError):
        return (f"the Redis connection failed during the command ({type(exc).__name__}: {exc});"
                " it may be partly done: check, then retry later")
    if isinstance(exc, KirimError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = {FileNotFoundError: "no such file", IsADirectoryError: "is a directory",
                  PermissionError: "permission denied"}.get(type(exc), exc.strerror)
        return f"{exc.filename}: {reason}"
    if isinstance(exc, UnicodeDecodeError):
        return f"the input is not UTF-8 text ({exc.reason} at byte {exc.start})"
    return (f"unexpected {type(exc).__name__}: {exc} (rerun as `kirim --debug …` for the"
            " traceback)")


def fail(message: str, code: int = EX_FAILURE) -> typer.Exit:
    """Print `error: message` on stderr; returns the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


class KirimGroup(TyperGroup):
    """The top-level command group: every command's errors end here, as an exit code and one
    line on stderr (with --debug, unexpected errors keep their traceback)."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # typer's own handling
            raise
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(EX_INTERRUPTED) from None
        except Exception as exc:
            code = exit_code_for(exc)
            if state.debug and code == EX_FAILURE:
                raise
            raise fail(message_for(exc), code) from None


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"kirim {version('kirim')}")
        except PackageNotFoundError:
            typer.echo("kirim (not installed as a package: version unknown)")
        raise typer.Exit()


def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="print `kirim <version>` and exit"),
    debug: bool = typer.Option(False, "--debug",
                               help="show the traceback of an unexpected error"),
) -> None:
    """kirim: a send queue for NusaSMS (SMS, WhatsApp, OTP).

    Every command that prints data takes --json. Settings come from KIRIM_* variables
    (and .env), Redis from KIRIM_REDIS_URL.
    """
    state.debug = debug
    fit_console()


def fit_console() -> None:
    """Size the console for this run: COLUMNS if set, the terminal's own width, or (piped into a
    file or a script) wide enough that rich never cuts a message id in a table."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        console.width = int(columns)
    elif not sys.stdout.isatty():
        console.width = PIPED_WIDTH


def print_json(document: object) -> None:
    """One JSON document on stdout (one line, UTF-8 as is), for scripts."""
    typer.echo(json.dumps(document, ensure_ascii=False, default=str))


def redis_target(url: str) -> str:
    """KIRIM_REDIS_URL without its credentials, for messages."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix://{parts.path}"
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
    except ValueError:
        return "KIRIM_REDIS_URL"


@contextlib.contextmanager
def client(source: str = "cli") -> Iterator[KirimClient]:
    """A KirimClient from the environment, its Redis checked first: unreachable is exit 69
    (nothing done); a connection that fails later in the command is 75 (see the module)."""
    with KirimClient(load_settings(), source=source) as kirim:
        try:
            kirim.redis.ping()
        except redis_lib.AuthenticationError:
            raise
        except redis_lib.RedisError as exc:
            raise RedisUnreachable(
                f"cannot reach Redis at {redis_target(kirim.settings.redis_url)}"
                + (f" (master {kirim.settings.redis_master_name!r} via Sentinels"
                   f" {kirim.settings.redis_sentinels})" if kirim.settings.redis_sentinels
                   else "") +
                f" ({type(exc).__name__}): nothing was done; check KIRIM_REDIS_URL and that"
                " Redis is running, then retry", EX_UNAVAILABLE) from None
        yield kirim


def when(epoch: float | str | None) -> str:
    """Epoch seconds as local time, for people."""
    if epoch in (None, ""):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))


def epoch(value: float | str | None) -> float | None:
    """A stored timestamp as a number (None when absent), for JSON."""
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
