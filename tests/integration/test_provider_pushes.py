"""What authenticates NusaSMS's pushes, and what a push may do: a long random path token
(a short one stops the process at start), an optional source-address allowlist (another
address gets the wrong token's 404 and a warning), and a pushed report never settles an
`unknown` message by itself: a DR pull confirms it first.

Real processes throughout: the API (uvicorn), workers and beat, Redis, the sandbox over HTTP.
Today kirim maps a provider id to a message only when it records the message `sent`, so a
test that needs a pushed report to reach an `unknown` message writes that mapping itself
(`Keys.by_provider_id`), as a late mapping would: the rule holds whatever made the mapping.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from producer.core.contract import State
from tests.support.api_server import ApiServer
from tests.support.processes import python_module, spawn, stop
from tests.support.waiting import wait_for, wait_states

pytestmark = pytest.mark.timeout(120)

TOKEN = "push-token-9f2c7a41e6b83d05c1a7e92b4f6d8a3e"
DR_ENV = {
    "KIRIM_DR_POLL_INTERVAL_S": "0.5",
    "KIRIM_DR_FIRST_POLL_S": "0.2",
    "KIRIM_DR_BACKOFF_MAX_S": "1",
    "KIRIM_DR_EXPIRY_S": "3600",
}
LOST_REPLY = "6281193000000"  # the sandbox accepts it, then drops the reply: `unknown`
NEVER_ISSUED = "999999999999999999"  # a provider id the sandbox never gave out (DR: -22)


@pytest.fixture
def kirim_env(kirim_env: dict[str, str]) -> dict[str, str]:
    """The integration env with a callback token and fast DR polling."""
    return {**kirim_env, **DR_ENV, "KIRIM_CALLBACK_TOKEN": TOKEN}


@pytest.fixture
def api(api_factory, api_env) -> ApiServer:
    """This module's API process (the session's has no callback token)."""
    return api_factory(api_env)


def _from(address: str) -> httpx.Client:
    """An HTTP client whose connections leave from `address` (any 127.x is loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def _dr(url: str, ref_no: str, status: str) -> str:
    return f"{url}/callbacks/{TOKEN}/dr?ref_no={ref_no}&status={status}"


def test_a_short_callback_token_stops_the_api_and_the_worker_at_start(
        kirim_env: dict[str, str], tmp_path: Path) -> None:
    for name, code, text in _start_api_and_worker({**kirim_env, "KIRIM_CALLBACK_TOKEN":
                                                   "change-me"}, tmp_path):
        assert code != 0, f"{name} started with a 9-character callback token:\n{text[-2000:]}"
        assert "KIRIM_CALLBACK_TOKEN" in text and "at least 32 characters" in text, text[-2000:]


def _start_api_and_worker(env: dict[str, str], tmp_path: Path) -> list[tuple[str, int, str]]:
    """Start an API and a worker with `env`; (name, exit code, log) of each once it exits."""
    procs = {"api": python_module("uvicorn", "producer.api:app", "--host", "127.0.0.1",
                                  "--port", "0"),
             "worker": python_module("celery", "-A", "worker.app", "worker", "-P", "threads",
                                     "-Q", "reports")}
    ended = []
    for name, args in procs.items():
        log = tmp_path / f"refused-{name}.log"
        proc = spawn(args, env=env, log=log)
        try:
            code = proc.wait(60)
        finally:
            stop([proc], timeout_s=5)
        ended.append((name, code, log.read_text(errors="replace")))
    return ended


def test_a_push_from_an_address_not_allowed_gets_404_and_a_warning(
        kirim, api_factory, api_env) -> None:
    api = api_factory({**api_env, "KIRIM_CALLBACK_ALLOWED_IPS": "192.0.2.0/24, 127.0.0.2"})
    form = {"id": "in-1", "gateway_number": "6281100000000", "originator": "6281234567890",
            "msg": "STOP", "receive_date": "2026-01-02 03:04:05"}
    with _from("127.0.0.1") as other, _from("127.0.0.2") as nusasms:
        refused = [other.get(_dr(api.url, "123456789", "D")),
                   other.post(f"{api.url}/callbacks/{TOKEN}/inbound", data=form)]
        assert [r.status_code for r in refused] == [404, 404]
        wrong = nusasms.get(f"{api.url}/callbacks/{TOKEN[:-1]}x/dr?ref_no=1&status=D")
        assert wrong.status_code == 404 and wrong.json() == refused[0].json()
        assert kirim.redis.llen("reports") == 0
        assert kirim.redis.xlen(f"{kirim.keys.prefix}:inbound") == 0

        assert nusasms.get(_dr(api.url, "123456789", "D")).status_code == 200
        assert nusasms.post(f"{api.url}/callbacks/{TOKEN}/inbound", data=form).json() == {
            "ok": True, "duplicate": False}
    assert kirim.redis.llen("reports") == 1
    assert kirim.redis.xlen(f"{kirim.keys.prefix}:inbound") == 1
    refusals = [json.loads(line) for line in api.log.read_text().splitlines()
                if "callback_address_refused" in line]
    assert [(r["address"], r["route"], r["token_ok"]) for r in refusals] == [
        ("127.0.0.1", "dr", True), ("127.0.0.1", "inbound", True)], refusals
    assert TOKEN not in api.log.read_text()


def _make_unknown(kirim, sandbox) -> tuple[str, str]:
    """A message NusaSMS accepted but whose reply was lost, and the id NusaSMS gave it."""
    mid = kirim.send_sms(LOST_REPLY, "reply lost")
    wait_states(kirim, [mid], {State.UNKNOWN})
    record = kirim.status(mid)
    assert not record.get("provider_id") and kirim.redis.zscore(kirim.keys.dr_pending, mid) is None
    return mid, sandbox.messages(gsm=LOST_REPLY)[-1]["messageid"]


def _map(kirim, provider_id: str, mid: str) -> None:
    kirim.redis.set(kirim.keys.by_provider_id(provider_id), mid, ex=3600)


def test_a_forged_push_for_an_unknown_message_leaves_it_unknown(kirim, workers, sandbox, api):
    workers.start()
    workers.beat()
    mid, _ = _make_unknown(kirim, sandbox)
    before = kirim.status(mid)
    _map(kirim, NEVER_ISSUED, mid)
    pushed = httpx.get(_dr(api.url, NEVER_ISSUED, "D"), timeout=10)
    assert pushed.status_code == 200
    # The push made it due for a pull, and the pull asked NusaSMS, which does not know the id.
    def pulled_or_moved() -> bool:
        record = kirim.status(mid)
        return int(record.get("dr_failures") or 0) >= 2 or record.state != State.UNKNOWN

    wait_for(pulled_or_moved, 30, "two DR pulls of the pushed id, both refused")
    assert sum(r["cmd"] == "DR" and r["status"] == "-22" for r in sandbox.requests()) >= 2
    after = kirim.status(mid)
    assert after.state == State.UNKNOWN and after.timeline == before.timeline
    assert after.get("dr_letter") is None and after.get("provider_id") == NEVER_ISSUED
    assert kirim.redis.zscore(kirim.keys.unknown, mid) is not None
    assert "dr_push_unconfirmed" in _all_logs(workers)


def test_a_push_for_an_unknown_message_is_confirmed_by_a_pull(kirim, workers, sandbox, api):
    """NusaSMS's own push (the sandbox's) for a message it delivered: the pull that the push
    asked for settles it; a sent message's push still applies at once."""
    sandbox.configure(dr_delay_s=0.3, dr_callback_url=f"{api.url}/callbacks/{TOKEN}/dr")
    # A sent message's first poll comes after its push (0.3 s): the push must settle it. The
    # unknown one is polled when its push makes it due, whatever this says.
    workers.start(extra_env={"KIRIM_DR_FIRST_POLL_S": "8"})
    workers.beat()
    sent = kirim.send_sms("6281191100000", "pushed D")
    mid, pid = _make_unknown(kirim, sandbox)
    _map(kirim, pid, mid)  # an unmapped push is retried by the task until this appears
    wait_states(kirim, [mid, sent], {State.DELIVERED}, timeout_s=40)
    record = kirim.status(mid)
    assert [e["state"] for e in record.timeline][-3:] == ["unknown", "sent", "delivered"]
    assert record.timeline[-2]["note"] == "delivery report D shows NusaSMS accepted it"
    assert record.timeline[-1]["note"] == "delivery report D (poll)"
    assert record.get("provider_id") == pid
    assert kirim.redis.zscore(kirim.keys.unknown, mid) is None
    assert kirim.status(sent).timeline[-1]["note"] == "delivery report D (push)"
    assert {p["status_code"] for p in sandbox.pushes() if p["kind"] == "dr"} == {200}
    assert "dr_push_unconfirmed" in _all_logs(workers)


def test_a_forged_letter_for_an_unknown_message_is_overruled_by_the_pull(
        kirim, workers, sandbox, api):
    """A push claims D for a message NusaSMS reports undelivered: the pull's U is what counts."""
    sandbox.configure(dr_delay_s=0.1, dr_default_letter="u")
    workers.start()
    workers.beat()
    mid, pid = _make_unknown(kirim, sandbox)
    _map(kirim, pid, mid)
    assert httpx.get(_dr(api.url, pid, "D"), timeout=10).status_code == 200
    wait_states(kirim, [mid], {State.UNDELIVERED}, timeout_s=30)
    record = kirim.status(mid)
    assert [e["state"] for e in record.timeline][-3:] == ["unknown", "sent", "undelivered"]
    assert record.timeline[-1]["note"] == "delivery report U (poll)"
    assert record.get("dr_letter") == "U"


def test_no_hash_key_stops_the_api_and_the_worker_at_start(
        kirim_env: dict[str, str], tmp_path: Path) -> None:
    # os.environ's test key is overridden, not kept.
    for name, code, text in _start_api_and_worker({**kirim_env, "KIRIM_HASH_KEY": ""},
                                                  tmp_path):
        assert code != 0, f"{name} started without KIRIM_HASH_KEY:\n{text[-2000:]}"
        assert "KIRIM_HASH_KEY not set" in text, text[-2000:]


def _all_logs(workers) -> str:  # type: ignore[no-untyped-def]
    """Every worker log in full (Workers.logs() keeps only each one's tail)."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(workers.logdir.glob("*.log")))
