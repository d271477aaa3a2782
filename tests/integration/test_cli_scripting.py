"""The `kirim` CLI in scripts: --version, completion, --json output (one JSON document on
stdout) and sysexits exit codes, with a one-line error on stderr and never a traceback.

Most tests run the CLI in-process (typer's CliRunner) against the test Redis; the ones about
the process itself (--version, a missing file, Redis down, bad settings) run the installed
`kirim` command."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import redis as redis_lib
from typer.testing import CliRunner

from producer.cli import app
from producer.core.contract import State
from producer.core.records import MessageStore
from tests.support.waiting import wait_states

pytestmark = pytest.mark.timeout(120)

KIRIM = shutil.which("kirim", path=str(Path(sys.executable).parent)) or "kirim"


@pytest.fixture
def cli(kirim_env, monkeypatch):
    """Run `kirim ARGS…` in-process; the result has .exit_code, .stdout and .stderr."""
    for name, value in kirim_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def run(kirim_env, tmp_path):
    """Run the installed `kirim ARGS…` as a process; `env` overrides kirim_env."""
    def run_(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, **kirim_env, **(env or {})}
        return subprocess.run([KIRIM, *args], env=full, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, check=False)
    return run_


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_version_and_completion_are_there(run):
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"kirim {version('kirim')}"
    shown = run("--help", env={"COLUMNS": "200"})
    assert shown.returncode == 0
    for word in ("--install-completion", "--show-completion", "--debug", "Exit codes",
                 "65", "66", "69", "75", "78"):
        assert word in shown.stdout, word


def test_send_and_status_json(cli):
    sent = cli("send", "sms", "0812-3456-7890", "Halo dari skrip", "--key", "k-1", "--json")
    assert sent.exit_code == 0, sent.output
    doc = json.loads(sent.stdout)
    assert doc["state"] == State.QUEUED and doc["to"] == "6281234567890" and doc["parts"] == 1
    assert doc["duplicate"] is False
    again = json.loads(cli("send", "sms", "0812-3456-7890", "Halo dari skrip", "--key", "k-1",
                           "--json").stdout)
    assert again["id"] == doc["id"] and again["duplicate"] is True
    status = cli("status", doc["id"], "--json")
    assert status.exit_code == 0, status.output
    record = json.loads(status.stdout)
    assert record["id"] == doc["id"] and record["state"] == State.QUEUED
    assert record["channel"] == "sms" and record["to"] == "6281234567890"
    assert [e["state"] for e in record["timeline"]][-1] == State.QUEUED
    assert all(isinstance(e["at"], float) for e in record["timeline"])
    assert "job" not in record and "Halo" not in status.stdout  # never the text
    unknown = json.loads(cli("status", "--unknown", "--json").stdout)
    assert unknown == {"count": 0, "unknown": []}


def test_send_file_json_reports_every_line_and_exits_65(cli, tmp_path):
    batch = tmp_path / "batch.csv"
    batch.write_text("channel,to,text\nsms,081234567890,satu\nsms,not-a-number,dua\n"
                     "wa,081234567891,tiga\nsms,081234567892,empat,extra\n")
    out = cli("send", "--file", str(batch), "--json")
    assert out.exit_code == 65
    doc = json.loads(out.stdout)
    assert (doc["accepted"], doc["refused"]) == (2, 2)
    by_line = {r["line"]: r for r in doc["results"]}
    assert by_line[2]["ok"] and by_line[2]["state"] == State.QUEUED
    assert not by_line[3]["ok"] and by_line[3]["field"] == "to"
    assert by_line[3]["exit_code"] == 65
    assert not by_line[5]["ok"] and "fields" in by_line[5]["error"]
    good = tmp_path / "good.csv"
    good.write_text("channel,to,text\nsms,081234567890,satu\n")
    assert json.loads(cli("send", "-f", str(good), "--json").stdout)["accepted"] == 1


def test_dead_letters_json(cli, kirim, workers):
    workers.start()
    mid = kirim.send_sms("6281190013000", "Invalid destination")  # -13: dead at once
    wait_states(kirim, [mid], {State.DEAD})
    listed = cli("dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    doc = json.loads(listed.stdout)
    assert doc["count"] == 1
    (letter,) = doc["dead_letters"]
    assert letter["message_id"] == mid and letter["code"] == "-13"
    assert letter["text_erased"] is False and "job" not in letter
    shown = json.loads(cli("dlq", "show", mid, "--json").stdout)
    assert shown["message_id"] == mid and shown["job"]["id"] == mid
    assert json.loads(cli("dlq", "list", "--code", "-26", "--json").stdout)["count"] == 0
    assert json.loads(cli("dlq", "replay", mid, "--json").stdout) == {"replayed": 1,
                                                                        "skipped": 0}


def test_credits_and_account_status_json(cli):
    credits = cli("credits", "--json")
    assert credits.exit_code == 0, credits.output
    doc = json.loads(credits.stdout)
    assert doc["sms"] is None and doc["sending"] is True and doc["paused"] == []
    assert isinstance(doc["warn_below"], float | int)
    account = cli("account", "status", "--json")
    assert account.exit_code == 0, account.output
    state = json.loads(account.stdout)
    assert state["sending"] is True and state["paused"] == []
    assert state["circuits"] and all(c["paused"] is False for c in state["circuits"])
    assert all(isinstance(c["stops_lanes"], list) for c in state["circuits"])


def test_bad_data_is_65_unknown_ids_66_usage_2(cli):
    bad = cli("send", "sms", "12345", "hi", "--json")
    assert bad.exit_code == 65 and bad.stdout == ""
    assert "is not a valid phone number" in one_line_error(bad.stderr)
    missing = cli("status", "0" * 22, "--json")
    assert missing.exit_code == 66 and missing.stdout == ""
    assert "no message" in one_line_error(missing.stderr)
    assert cli("dlq", "show", "nope").exit_code == 66
    assert cli("dlq", "replay", "nope").exit_code == 66
    assert cli("status").exit_code == 2
    assert cli("send", "sms").exit_code == 2
    assert cli("send", "--no-such-option").exit_code == 2


def test_a_missing_or_unreadable_file_is_66_without_a_traceback(run, tmp_path):
    out = run("send", "--file", str(tmp_path / "missing.csv"))
    assert out.returncode == 66
    assert one_line_error(out.stderr) == f"error: {tmp_path / 'missing.csv'}: no such file"
    assert run("send", "--file", str(tmp_path)).returncode == 66  # a directory
    latin = tmp_path / "latin.csv"
    latin.write_bytes("channel,to,text\nsms,081234567890,caf\xe9\n".encode("latin-1"))
    not_utf8 = run("send", "--file", str(latin))
    assert not_utf8.returncode == 65 and "UTF-8" in one_line_error(not_utf8.stderr)


@pytest.mark.parametrize("args", [
    ("send", "sms", "081234567890", "hi", "--json"),
    ("status", "abc", "--json"),
    ("dlq", "list", "--json"),
    ("credits", "--json"),
    ("account", "status", "--json"),
])
def test_redis_down_is_69_and_speaks_to_a_cli_user(run, args):
    out = run(*args, env={"KIRIM_REDIS_URL": f"redis://:s3cret@127.0.0.1:{closed_port()}/0"})
    assert out.returncode == 69 and out.stdout == ""
    line = one_line_error(out.stderr)
    assert "cannot reach Redis" in line and "nothing was done" in line
    assert "s3cret" not in line
    assert "Idempotency-Key" not in line and "GET /v1" not in line


def test_a_connection_lost_mid_write_is_75_and_names_the_message(cli, monkeypatch, tmp_path):
    def lost(*_args, **_kwargs):
        raise redis_lib.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(MessageStore, "accept_many", lost)
    out = cli("send", "sms", "081234567890", "hi", "--key", "k-75", "--json")
    assert out.exit_code == 75 and out.stdout == ""
    line = one_line_error(out.stderr)
    assert "may or may not have been accepted" in line and "kirim status" in line
    assert "--key" in line and "Idempotency-Key" not in line and "GET /v1" not in line
    batch = tmp_path / "batch.csv"
    batch.write_text("channel,to,text\nsms,081234567890,satu\nsms,bad,dua\n")
    filed = cli("send", "--file", str(batch), "--json")
    assert filed.exit_code == 75
    doc = json.loads(filed.stdout)  # what is known is still reported, line by line
    assert (doc["accepted"], doc["refused"], doc["uncertain"]) == (0, 1, 1)
    assert doc["results"][0]["uncertain"] is True and doc["results"][0]["id"]
    assert doc["results"][1]["field"] == "to"
    assert "Traceback" not in filed.stderr and "Idempotency-Key" not in filed.stderr


def test_a_bad_setting_is_78(run):
    out = run("status", "abc", env={"KIRIM_RETRY_MAX_ATTEMPTS": "many"})
    assert out.returncode == 78
    assert "KIRIM_RETRY_MAX_ATTEMPTS" in one_line_error(out.stderr)


def test_an_unexpected_error_is_one_line_and_exit_1_unless_debug(cli, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(MessageStore, "get", broken)
    out = cli("status", "abc")
    assert out.exit_code == 1
    assert "RuntimeError: boom" in one_line_error(out.stderr) and "--debug" in out.stderr
    debug = cli("--debug", "status", "abc")
    assert debug.exit_code == 1 and isinstance(debug.exception, RuntimeError)


def test_upgrade_guard_folds_the_layout_before_and_says_how_many(cli, redis):
    text_key = "kirim:guard:t:sms:6281234567890:" + "a" * 16
    redis.zadd(text_key, {"m1": 1, "m2": 2})
    result = cli("upgrade-guard", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"moved": 2}
    assert redis.zcard("kirim:guard:r:sms:6281234567890") == 2 and not redis.exists(text_key)
    assert json.loads(cli("upgrade-guard", "--json").output) == {"moved": 0}
