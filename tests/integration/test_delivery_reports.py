"""Delivery reports by poll: real worker and beat processes, real Redis, the sandbox over HTTP."""

from __future__ import annotations

import pytest

from producer.core.contract import State
from tests.support.waiting import wait_for, wait_states
from worker.delivery import Applied, DeliveryReports
from worker.dr_poll import DRPoller
from worker.nusasms import report_from_fields

pytestmark = pytest.mark.timeout(90)

DR_ENV = {
    "KIRIM_DR_POLL_INTERVAL_S": "0.5",
    "KIRIM_DR_FIRST_POLL_S": "0.2",
    "KIRIM_DR_BACKOFF_MAX_S": "1",
    "KIRIM_DR_BATCH_SIZE": "50",
    "KIRIM_DR_CONCURRENCY": "4",
    "KIRIM_DR_EXPIRY_S": "3600",
    "KIRIM_DR_PAUSE_MIN_S": "0.5",
    "KIRIM_DR_PAUSE_MAX_S": "1",
}
QUEUES = "otp,sms,wa,maintenance,reports"


@pytest.fixture
def kirim_env(kirim_env: dict[str, str]) -> dict[str, str]:
    """The integration env with fast delivery-report polling."""
    return {**kirim_env, **DR_ENV}


def magic(letter_digit: int) -> str:
    """The sandbox number whose final DR letter is chosen by `letter_digit`."""
    return f"6281191{letter_digit}00000"


def start(workers, beat: bool = True):
    workers.start(queues=QUEUES)
    if beat:
        workers.beat()


def field(kirim, mid: str, name: str) -> str | None:
    return kirim.status(mid).get(name)


def test_each_final_letter_is_applied_by_the_poll(kirim, workers, sandbox):
    sandbox.configure(dr_delay_s=0.2)
    start(workers)
    expected = {1: ("D", State.DELIVERED), 2: ("U", State.UNDELIVERED), 3: ("F", State.FAILED),
                4: ("R", State.REJECTED), 5: ("E", State.EXPIRED)}
    ids = {digit: kirim.send_sms(magic(digit), "Pesanan dikirim") for digit in expected}
    for digit, (letter, state) in expected.items():
        wait_states(kirim, [ids[digit]], {state})
        record = kirim.status(ids[digit])
        assert record.get("dr_letter") == letter and record.get("dr_sent_date")
        assert record.get("dr_err_code") == ("0" if letter == "D" else "1")
        assert record.timeline[-2:][0]["state"] == "sent"
        assert f"delivery report {letter} (poll)" == record.timeline[-1]["note"]
        assert kirim.redis.zscore(kirim.keys.dr_pending, ids[digit]) is None


def test_pending_then_final(kirim, workers, sandbox):
    sandbox.configure(dr_delay_s=2.0)
    start(workers)
    mid = kirim.send_sms(magic(1), "later delivered")
    wait_for(lambda: field(kirim, mid, "dr_letter") == "P", 20, "a pending report")
    assert kirim.status(mid).state == State.SENT
    wait_states(kirim, [mid], {State.DELIVERED})
    record = kirim.status(mid)
    assert int(record.get("dr_polls") or 0) >= 1 and record.get("dr_letter") == "D"
    assert [e["state"] for e in record.timeline][-2:] == ["sent", "delivered"]


def test_pending_and_unknown_letters_are_kept_and_counted(kirim, workers, sandbox):
    sandbox.configure(dr_delay_s=0.1)
    start(workers)
    pending = kirim.send_sms(magic(6), "stays pending")
    odd = kirim.send_sms(magic(7), "odd letter")
    wait_for(lambda: int(field(kirim, odd, "dr_polls") or 0) >= 2
             and int(field(kirim, pending, "dr_polls") or 0) >= 2, 20, "two polls of each")
    assert kirim.store.states([pending, odd]) == [State.SENT, State.SENT]
    assert field(kirim, odd, "dr_letter") == "X" and field(kirim, pending, "dr_letter") == "P"
    assert int(kirim.redis.hget(kirim.keys.dr_letters, "X")) >= 2
    assert kirim.redis.hget(kirim.keys.dr_letters, "P") is None
    # Backoff: the next poll is scheduled later than the first poll's delay.
    assert kirim.redis.zscore(kirim.keys.dr_pending, odd) is not None


def test_no_final_report_within_the_expiry_is_expired(kirim, workers, sandbox, settings):
    start(workers)
    mid = kirim.send_sms(magic(6), "never final")
    wait_states(kirim, [mid], {State.SENT})
    sent_at = float(field(kirim, mid, "sent_at") or 0)
    kirim.redis.hset(kirim.keys.message(mid), "sent_at", sent_at - settings.dr_expiry_s - 1)
    wait_states(kirim, [mid], {State.EXPIRED})
    record = kirim.status(mid)
    assert record.get("reason") == "dr_expired" and record.timeline[-1]["from"] == "sent"
    assert kirim.redis.zscore(kirim.keys.dr_pending, mid) is None


def test_a_failed_poll_changes_nothing_and_is_retried(kirim, workers, sandbox):
    sandbox.configure(dr_delay_s=0.1)
    start(workers, beat=False)
    mid = kirim.send_sms(magic(1), "poll fails first")
    wait_states(kirim, [mid], {State.SENT})
    before = kirim.status(mid)
    sandbox.configure(password="changed")  # every DR pull now answers -5
    workers.beat()
    wait_for(lambda: sum(r["cmd"] == "DR" and r["status"] == "-5" for r in sandbox.requests())
             >= 3, 20, "three polls refused with -5")
    after = kirim.status(mid)
    assert after.state == State.SENT and after.timeline == before.timeline
    assert after.get("dr_letter") is None
    assert after.get("dr_failures") is None  # refused for the account: the message not charged
    assert kirim.redis.zscore(kirim.keys.dr_pending, mid) is not None
    sandbox.configure(password="demo")
    wait_states(kirim, [mid], {State.DELIVERED})


def test_duplicate_and_late_reports_do_not_move_backwards(kirim, workers, sandbox, settings):
    sandbox.configure(dr_delay_s=0.1)
    start(workers)
    mid = kirim.send_sms(magic(1), "delivered once")
    wait_states(kirim, [mid], {State.DELIVERED})
    before = kirim.status(mid)
    pid = before.get("provider_id")
    reports = DeliveryReports(kirim.store, settings)
    for letter in ("D", "U", "P", "X"):
        report = report_from_fields({"ref_no": pid, "status": letter})
        assert reports.apply(mid, report, "push") == Applied.IGNORED
    after = kirim.status(mid)
    assert after.state == State.DELIVERED and after.timeline == before.timeline
    assert after.get("dr_letter") == "D"


def _make_unknown(kirim, sandbox, number: str = "6281193000000") -> tuple[str, str]:
    """A message the provider accepted but whose reply was lost; and its provider id."""
    mid = kirim.send_sms(number, "reply lost")
    wait_states(kirim, [mid], {State.UNKNOWN})
    return mid, sandbox.messages(gsm=number)[0]["messageid"]


def test_unknown_message_becomes_delivered_by_its_report(kirim, workers, sandbox):
    sandbox.configure(dr_delay_s=0.1)
    start(workers)
    mid, pid = _make_unknown(kirim, sandbox)
    # What knowing its provider id looks like (e.g. `kirim settle` or a late push mapping).
    kirim.redis.hset(kirim.keys.message(mid), "provider_id", pid)
    kirim.redis.zadd(kirim.keys.dr_pending, {mid: 0})
    wait_states(kirim, [mid], {State.DELIVERED})
    record = kirim.status(mid)
    assert [e["state"] for e in record.timeline][-3:] == ["unknown", "sent", "delivered"]
    assert kirim.redis.zscore(kirim.keys.unknown, mid) is None


def test_unknown_message_past_the_expiry_is_left_for_an_operator(kirim, workers, sandbox,
                                                                  settings):
    start(workers)
    mid, _ = _make_unknown(kirim, sandbox)
    old = float(field(kirim, mid, "updated_at") or 0) - settings.dr_expiry_s - 1
    kirim.redis.hset(kirim.keys.message(mid), mapping={"provider_id": "999999999999999999",
                                                       "updated_at": old})
    kirim.redis.zadd(kirim.keys.dr_pending, {mid: 0})
    wait_for(lambda: kirim.redis.zscore(kirim.keys.dr_pending, mid) is None, 20,
             "the poll to give up on it")
    assert kirim.status(mid).state == State.UNKNOWN
    assert kirim.redis.zscore(kirim.keys.unknown, mid) is not None


def test_two_polls_at_once_do_not_take_the_same_ids(kirim, settings):
    ids = [f"msg-lease-{i:03d}" for i in range(10)]
    kirim.redis.zadd(kirim.keys.dr_pending, {mid: i for i, mid in enumerate(ids)})
    one = DRPoller(DeliveryReports(kirim.store, settings))
    two = DRPoller(DeliveryReports(kirim.store, settings))
    first, second = one.take_due(100.0), two.take_due(100.0)
    assert first == ids and second == []


@pytest.fixture
def cli(kirim_env, monkeypatch):
    from typer.testing import CliRunner

    from producer.cli import app

    for name, value in kirim_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_operator_lists_and_settles_unknown_messages(cli, kirim, workers, sandbox):
    from producer.core.deadletters import DeadLetters

    sandbox.configure(dr_delay_s=0.1)
    start(workers)
    ids = [kirim.send_sms("6281193000000", f"lost reply {i}") for i in range(4)]
    wait_states(kirim, ids, {State.UNKNOWN})
    listed = cli("status", "--unknown")
    assert listed.exit_code == 0, listed.output
    assert all(mid in listed.output for mid in ids) and "4 unknown" in listed.output
    assert "628119****000" in listed.output and "6281193000000" not in listed.output

    assert cli("settle", ids[0], "--as", "delivered").exit_code == 0
    assert cli("settle", ids[1], "--as", "dead").exit_code == 0
    pid = sandbox.messages(gsm="6281193000000")[2]["messageid"]
    assert cli("settle", ids[2], "--as", "sent", "--provider-id", pid).exit_code == 0
    assert cli("settle", ids[3], "--as", "resend").exit_code == 0
    assert cli("settle", ids[0], "--as", "failed").exit_code == 1  # no longer unknown

    assert kirim.store.states(ids[:2]) == [State.DELIVERED, State.DEAD]
    assert DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).get(ids[1]) is not None
    wait_states(kirim, [ids[2]], {State.DELIVERED})  # followed by DR once settled as sent
    wait_for(lambda: "queued" in [e["state"] for e in kirim.status(ids[3]).timeline[3:]], 10,
             "the resend to be queued")
    assert kirim.status(ids[0]).timeline[-1]["note"] == "settled by an operator as delivered"
    assert cli("status", "--unknown").output.count("lost reply") == 0
