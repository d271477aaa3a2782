"""The `kirim` CLI against a real Redis and real workers."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from producer.cli import app
from producer.core.contract import State
from tests.support.waiting import wait_states

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cli(kirim_env, monkeypatch):  # type: ignore[no-untyped-def]
    for name, value in kirim_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables to the terminal width
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_send_then_status_shows_the_timeline(cli, kirim, workers):
    workers.start()
    out = cli("send", "sms", "0812-3456-7890", "Halo dari CLI")
    assert out.exit_code == 0, out.output
    mid = out.output.split()[0]
    wait_states(kirim, [mid], {State.SENT})
    status = cli("status", mid)
    assert status.exit_code == 0
    for word in ("sent", "sending", "queued", "6281234567890", "provider_id"):
        assert word in status.output


def test_bad_input_is_a_clear_error_and_exit_65(cli):
    out = cli("send", "sms", "12345", "hi")
    assert out.exit_code == 65  # EX_DATAERR: see `kirim --help`
    assert "is not a valid phone number" in out.output


def test_send_file_reports_each_refused_line(cli, kirim, tmp_path):
    batch = tmp_path / "batch.csv"
    batch.write_text("channel,to,text\nsms,081234567890,satu\nsms,not-a-number,dua\n"
                     "wa,081234567891,tiga\n")
    out = cli("send", "--file", str(batch))
    assert out.exit_code == 65
    assert "accepted 2, refused 1" in out.output and "line 3:" in out.output


def test_dead_letters_list_show_and_replay(cli, kirim, workers):
    workers.start()
    mid = kirim.send_sms("6281195500000", "five failures then fine")
    wait_states(kirim, [mid], {State.DEAD})
    listed = cli("dlq", "list")
    assert mid in listed.output and "-26" in listed.output
    assert "retries exhausted" in cli("dlq", "show", mid).output
    replayed = cli("dlq", "replay", mid)
    assert "replayed 1" in replayed.output
    wait_states(kirim, [mid], {State.SENT})


def test_a_dead_otp_is_not_replayed_and_the_cli_says_why(cli, kirim, workers):
    workers.start()
    mid = kirim.send_otp("6281190013000", "Kode OTP Anda 739104")  # -13: dead at once
    wait_states(kirim, [mid], {State.DEAD})
    assert '"text_erased": true' in cli("dlq", "show", mid).output
    refused = cli("dlq", "replay", mid)
    assert refused.exit_code == 65
    assert "text was erased" in refused.output and "request a new code" in refused.output
    assert "replayed 0, skipped 1" in cli("dlq", "replay", "--all").output
    assert kirim.status(mid).state == State.DEAD


def test_account_status_and_resume(cli, kirim, workers, sandbox):
    workers.start()
    sandbox.set_credits(0)
    mid = kirim.send_sms("6281234567890", "no credit")
    wait_states(kirim, [mid], {State.DEFERRED})
    assert "paused" in cli("account", "status").output
    sandbox.set_credits(10)
    assert "1 held message(s) requeued" in cli("account", "resume").output
    wait_states(kirim, [mid], {State.SENT})
