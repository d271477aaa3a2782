"""`kirim send sms|wa|otp NUMBER TEXT` and `kirim send --file batch.csv` (both take --json).

The CLI prepares and commits through the enqueuer itself (what `KirimClient.submit` does) so
that, when the Redis connection fails in the middle of a write, it can name the messages that
may have been accepted and tell a CLI user what to do (`kirim status ID`, `--key`)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis as redis_lib
import typer
from rich.progress import Progress

from producer.cli.common import (
    EX_DATAERR,
    EX_NOINPUT,
    EX_TEMPFAIL,
    EX_USAGE,
    CliError,
    client,
    console,
    err_console,
    exit_code_for,
    fail,
    print_json,
)
from producer.client import KirimClient
from producer.core.enqueue import Accepted
from producer.core.errors import InvalidMessage, KirimError, StoreUnavailable
from producer.core.media import read_media_file
from producer.core.records import Admit

BATCH = 500


def send(
    channel: str = typer.Argument(None, help="sms, wa or otp"),
    number: str = typer.Argument(None, help="recipient, e.g. 081234567890 or +6281234567890"),
    text: str = typer.Argument(None, help="message text"),
    file: Path = typer.Option(None, "--file", "-f", help="CSV with columns channel,to,text"
                              " (more columns: any field of a message, e.g. idempotency_key)"),
    idempotency_key: str = typer.Option(None, "--key", help="idempotency key: sending again"
                                        " with the same key never sends twice"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document"),
    media_url: str = typer.Option(None, "--media-url", help="wa: send the file at this"
                                  " http(s) URL (NusaSMS API v1.0)"),
    media_file: Path = typer.Option(None, "--media-file", help="wa: send this local file"
                                    " (at most 512 KB; NusaSMS API v1.0)"),
    caption: str = typer.Option(None, "--caption", help="wa: the text under the file"
                                " (default: TEXT)"),
    sender: str = typer.Option(None, "--sender", help="wa: the account's WhatsApp sender"
                               " number to send from, e.g. 6281234567890"),
) -> None:
    """Enqueue one message, or every row of a CSV file."""
    if file is not None:
        _send_file(file, as_json)
        return
    if not (channel and number and text):
        raise fail("give CHANNEL NUMBER TEXT, or --file batch.csv", EX_USAGE)
    fields: dict[str, Any] = {"channel": channel, "to": number, "text": text,
                              "idempotency_key": idempotency_key}
    for name, value in (("media_url", media_url), ("caption", caption), ("sender", sender)):
        if value is not None:
            fields[name] = value
    if media_file is not None:
        if media_url is not None:
            raise fail("give one file: --media-url or --media-file, not both", EX_USAGE)
        fields.update(read_media_file(media_file, field="--media-file"))
    with client() as kirim:
        admit = kirim.enqueuer.prepare(fields, source=kirim.source)
        result = _commit(kirim, [admit])[0]
    if isinstance(result, KirimError):
        raise result
    if as_json:
        print_json(dataclasses.asdict(result))
        return
    console.print(f"{result.id}  {result.state}  to {result.to}  "
                  f"({result.parts} part(s), {result.encoding})"
                  + ("  (already sent with this key)" if result.duplicate else ""),
                  soft_wrap=True)


def _commit(kirim: KirimClient, items: list[Admit]) -> list[Accepted | KirimError]:
    """The enqueuer's commit; a connection lost mid-write becomes an error for a CLI user."""
    try:
        return kirim.enqueuer.commit(items)
    except StoreUnavailable as exc:
        if not isinstance(exc.__cause__, redis_lib.RedisError):
            raise
        raise CliError(_uncertain(exc.__cause__, [item.job.id for item in items]),
                       EX_TEMPFAIL) from None


def _uncertain(cause: BaseException, ids: list[str]) -> str:
    shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    return (f"the Redis connection failed while writing ({type(cause).__name__}): {shown} may"
            " or may not have been accepted; check with `kirim status ID`, or retry later"
            " (only with --key, or an idempotency_key column, is sending again safe)")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | InvalidMessage]]:
    """(line number, message fields or why the row is unusable) for each CSV row."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames
        if not header:
            raise CliError(f"{path}: empty file; the first line must be a header such as"
                           " channel,to,text", EX_DATAERR)
        if "text" not in header or "channel" not in header:
            raise CliError(f"{path}: the header {','.join(header)!r} must name columns"
                           " channel, to (or group) and text", EX_DATAERR)
        for row in reader:
            if None in row:
                yield reader.line_num, InvalidMessage("row", f"{len(header) + len(row[None])}"
                                                      f" fields, the header has {len(header)}")
            else:  # an empty cell is a field not given
                yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}


def _send_file(path: Path, as_json: bool) -> None:
    if not path.exists():
        raise CliError(f"{path}: no such file", EX_NOINPUT)
    try:
        rows = list(_rows(path))
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                       EX_DATAERR) from None
    except csv.Error as exc:
        raise CliError(f"{path}: not a readable CSV file ({exc})", EX_DATAERR) from None
    results: list[dict[str, Any]] = []
    with client() as kirim, _progress(path, len(rows), quiet=as_json) as advance:
        for start in range(0, len(rows), BATCH):
            chunk_results, failure = _send_chunk(kirim, rows[start:start + BATCH])
            results.extend(chunk_results)
            if failure is not None:  # the connection failed: report what is known, then fail
                _report(path, results, [line for line, _ in rows[start + BATCH:]], as_json)
                raise failure
            advance(len(chunk_results))
    _report(path, results, [], as_json)
    codes = {r["exit_code"] for r in results if not r["ok"]}
    if codes:  # a bad row makes it 65; only rows Redis refused for now (75): retry later
        raise typer.Exit(EX_DATAERR if EX_DATAERR in codes else max(codes))


def _send_chunk(kirim: KirimClient, chunk: list[tuple[int, dict[str, Any] | InvalidMessage]]
                ) -> tuple[list[dict[str, Any]], CliError | None]:
    """Prepare each row (a bad one gets its error) and commit the good ones in one round;
    when that write fails, its rows are marked uncertain and the failure returned."""
    outcomes: list[Accepted | KirimError | Admit] = []
    for _, row in chunk:
        if isinstance(row, KirimError):
            outcomes.append(row)
            continue
        try:
            outcomes.append(kirim.enqueuer.prepare(row, source=kirim.source))
        except KirimError as exc:
            outcomes.append(exc)
    staged = [o for o in outcomes if isinstance(o, Admit)]
    try:
        committed = iter(_commit(kirim, staged))
    except CliError as exc:
        return [_uncertain_result(line, o) if isinstance(o, Admit) else _row_result(line, o)
                for (line, _), o in zip(chunk, outcomes, strict=True)], exc
    return [_row_result(line, next(committed) if isinstance(o, Admit) else o)
            for (line, _), o in zip(chunk, outcomes, strict=True)], None


def _row_result(line: int, outcome: Accepted | KirimError) -> dict[str, Any]:
    if isinstance(outcome, Accepted):
        return {"line": line, "ok": True, **dataclasses.asdict(outcome)}
    return {"line": line, "ok": False, "error": str(outcome),
            "field": getattr(outcome, "field", None), "exit_code": exit_code_for(outcome)}


def _uncertain_result(line: int, admit: Admit) -> dict[str, Any]:
    return {"line": line, "ok": False, "uncertain": True, "id": admit.job.id,
            "error": "the Redis connection failed while writing it: it may or may not have"
                     " been accepted", "field": None, "exit_code": EX_TEMPFAIL}


@contextlib.contextmanager
def _progress(path: Path, total: int, quiet: bool) -> Iterator[Any]:
    if quiet:
        yield lambda n: None
        return
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task(f"enqueue {path.name}", total=total)
        yield lambda n: progress.advance(task, n)


def _report(path: Path, results: list[dict[str, Any]], unsent: list[int],
            as_json: bool) -> None:
    """What became of each line (accepted, refused, or uncertain after a failed write) and,
    after a failed write, the lines never sent."""
    ok = sum(r["ok"] for r in results)
    uncertain = [r for r in results if r.get("uncertain")]
    bad = len(results) - ok - len(uncertain)
    if as_json:
        print_json({"file": str(path), "accepted": ok, "refused": bad,
                    "uncertain": len(uncertain), "unsent_lines": unsent, "results": results})
        return
    for r in results:
        if not r["ok"] and not r.get("uncertain"):
            err_console.print(f"line {r['line']}: {r['error']}", markup=False, soft_wrap=True)
    if uncertain:
        err_console.print(f"lines {uncertain[0]['line']}-{uncertain[-1]['line']}: may or may"
                          f" not have been accepted; {len(unsent)} line(s) after them not sent",
                          markup=False, soft_wrap=True)
    console.print(f"accepted {ok}, refused {bad}"
                  + (f", uncertain {len(uncertain)}" if uncertain else ""))
