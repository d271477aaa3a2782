"""OTP hygiene (issue 14): once an OTP is final its code is nowhere kirim keeps things.

The end-to-end test sends OTPs with fresh codes through a real API process to real workers,
beat, Flower and the sandbox, on a Redis with AOF as in production, and then looks for the
codes everywhere: every key of Redis (typed reads and raw DUMP), the AOF after a rewrite,
every process log, Flower's API and task pages. Each search has a control that must be
found (an SMS text, which is kept; the message ids), so a search that cannot find anything
fails instead of passing. The tests after it pin each part down on its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.client import KirimClient
from producer.core import lua
from producer.core.contract import Job, State
from producer.core.deadletters import UNREADABLE_OTP, DeadLetters, dead_letter_fields
from producer.core.errors import TextErased
from producer.core.quarantine import quarantine
from producer.core.records import Effects
from producer.core.segments import text_hash
from tests.support.api_server import ApiServer
from tests.support.flower import Flower
from tests.support.processes import RedisServer
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import Workers
from worker.state_writer import Attempt, StateWriter

pytestmark = pytest.mark.timeout(180)

DR_ENV = {"KIRIM_DR_POLL_INTERVAL_S": "0.5", "KIRIM_DR_FIRST_POLL_S": "0.2",
          "KIRIM_DR_BACKOFF_MAX_S": "1", "KIRIM_DR_EXPIRY_S": "3600"}
DELIVERED_NUMBER = "6281191100000"  # the sandbox accepts it, then reports D (delivered)
DEAD_NUMBER = "6281190013000"  # the sandbox answers -13: dead at once, never retried
FINAL = [State.SENT, State.DELIVERED, State.UNDELIVERED, State.FAILED, State.REJECTED,
         State.EXPIRED, State.DEAD]


def fresh_code() -> str:
    """A 6-digit code this run alone uses."""
    return f"{secrets.randbelow(900000) + 100000}"


def occurrences(code: str, blob: bytes | str) -> int:
    """How often `code` stands on its own in `blob` (not inside a longer number, word or a
    decimal fraction, where 6 digits of a timestamp or an id may match by chance)."""
    data = blob.encode() if isinstance(blob, str) else blob
    return len(re.findall(rb"(?<![0-9A-Za-z.])" + code.encode() + rb"(?![0-9A-Za-z])", data))


def redis_dump(client: redis_lib.Redis) -> tuple[bytes, bytes]:
    """(every key and its content read by type, every key's DUMP), as two blobs; a task
    message's body (base64 in kombu's envelope) is added decoded to the first."""
    typed, raw = [], []
    readers: dict[bytes, Callable[[bytes], Any]] = {
        b"string": client.get, b"hash": client.hgetall,
        b"list": lambda k: client.lrange(k, 0, -1), b"set": client.smembers,
        b"zset": lambda k: client.zrange(k, 0, -1, withscores=True),
        b"stream": lambda k: client.xrange(k, "-", "+")}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        assert isinstance(kind, bytes)
        typed.append(key + b" " + kind + b" " + repr(readers[kind](key)).encode())
        raw.append(key + b" " + (client.dump(key) or b""))
    text = b"\n".join(typed)
    bodies = [base64.b64decode(b) for b in re.findall(rb'"body": ?"([A-Za-z0-9+/=]+)"', text)]
    return b"\n".join([text, *bodies]), b"\n".join(raw)


def aof_bytes(folder: Path) -> bytes:
    """Every file of the AOF folder, concatenated."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def rewrite_aof(client: redis_lib.Redis) -> None:
    """BGREWRITEAOF and wait until it is done."""
    client.bgrewriteaof()
    wait_for(lambda: not int(client.info("persistence")["aof_rewrite_in_progress"])
             and not int(client.info("persistence")["aof_rewrite_scheduled"]),
             20, "the AOF rewrite to finish")


def succeeded(flower: Flower) -> set[str]:
    """Message ids of the kirim.send tasks Flower saw succeed (from their masked args)."""
    return {mid for t in flower.get("/api/tasks", taskname="kirim.send").values()
            if t.get("state") in ("SUCCESS", "FAILURE")
            for mid in re.findall(r"'id': '([^']+)'", str(t.get("args")))}


@pytest.fixture
def stack(aof_redis: RedisServer, kirim_env: dict[str, str], api_env: dict[str, str],
          api_factory: Callable[[dict[str, str]], ApiServer], tmp_path: Path,
          sandbox: Any) -> Iterator[dict[str, Any]]:
    """Redis with AOF, a worker, beat, Flower and the API on it; fast delivery reports."""
    # Task events on: Flower's task pages are among the places searched.
    env = {**kirim_env, **DR_ENV, "KIRIM_REDIS_URL": aof_redis.url,
           "KIRIM_WORKER_TASK_EVENTS": "1"}
    client = redis_lib.Redis.from_url(aof_redis.url)
    # Plain files to search: the AOF rewritten as commands, DUMP payloads not compressed.
    client.config_set("aof-use-rdb-preamble", "no")
    client.config_set("rdbcompression", "no")
    # Every command in SLOWLOG (which keeps up to 32 arguments of 128 bytes each).
    client.config_set("slowlog-log-slower-than", "0")
    client.config_set("slowlog-max-len", "100000")
    logs = tmp_path / "logs"
    logs.mkdir()
    pool = Workers(env, logs)
    flower = Flower(env, logs).start()
    pool.start(name="hygiene")
    pool.beat()
    api = api_factory({**api_env, **DR_ENV, "KIRIM_REDIS_URL": aof_redis.url})
    kirim = KirimClient(settings_from_env(env), source="test")
    sandbox.configure(dr_delay_s=0.2)
    try:
        wait_for(lambda: any(n.startswith("hygiene0@")
                             for n in flower.get("/api/workers", refresh=1)),
                 30, "Flower to list the worker", interval_s=0.5)
        yield {"redis": client, "kirim": kirim, "api": api, "flower": flower, "logs": logs,
               "aof": aof_redis.workdir, "workers": pool}
    finally:
        kirim.close()
        pool.stop_all()
        flower.stop()
        client.close()


def test_a_final_otps_code_is_nowhere(stack: dict[str, Any]) -> None:
    api: ApiServer = stack["api"]
    kirim: KirimClient = stack["kirim"]
    client: redis_lib.Redis = stack["redis"]
    flower: Flower = stack["flower"]
    sent_code, dead_code = fresh_code(), fresh_code()
    sent_text, dead_text = f"Kode OTP Anda {sent_code}", f"Kode OTP Anda {dead_code}"
    control = f"Pesanan {secrets.token_hex(6)} dikirim"  # an SMS text: kept, so found

    def post(to: str, text: str, channel: str = "otp") -> str:
        reply = api.client.post("/v1/messages", json={"channel": channel, "to": to,
                                                      "text": text})
        assert reply.status_code == 202, reply.text
        return str(reply.json()["id"])

    otp, dead, sms = (post(DELIVERED_NUMBER, sent_text), post(DEAD_NUMBER, dead_text),
                      post(DELIVERED_NUMBER, control, "sms"))
    wait_states(kirim, [otp, sms], {State.DELIVERED}, timeout_s=60)
    wait_states(kirim, [dead], {State.DEAD})
    # The send tasks were acked (kombu's unacked hash is empty) and Flower saw them end.
    wait_for(lambda: not client.hlen("unacked") and not client.llen("otp")
             and not client.llen("sms"), 30, "the send tasks to be acked")
    wait_for(lambda: {otp, dead, sms} <= succeeded(flower), 30,
             "Flower to see the three kirim.send tasks succeed", interval_s=0.5)

    # The records: the OTPs' jobs without their text, marked; the SMS's as it was.
    for mid in (otp, dead):
        record = kirim.status(mid)
        assert record.get("text_erased") == "1"
        assert record.job.text == "" and record.job.text_erased and record.job.id == mid
    assert kirim.status(sms).job.text == control and kirim.status(sms).get("text_erased") is None

    # Redis: every key, read by type and dumped raw.
    typed, raw = redis_dump(client)
    assert control.encode() in typed and control.encode() in raw, "the search finds nothing"
    for code in (sent_code, dead_code):
        assert occurrences(code, typed) == 0, f"OTP code {code} in Redis"
        assert occurrences(code, raw) == 0, f"OTP code {code} in a DUMP"
    # Nor an unkeyed hash of the text, which would give the code back (the guard's keys and
    # the idempotency fingerprint hold keyed hashes only).
    for text in (sent_text, dead_text):
        plain = hashlib.sha256(text.encode()).hexdigest()
        assert plain[:16].encode() not in typed + raw and plain.encode() not in typed + raw
    keyed = text_hash(sent_text, kirim.settings.hash_key_bytes).encode()
    assert keyed in typed, "the guard and the record keep the keyed hash"

    # SLOWLOG, which keeps commands' arguments: accept.lua's job is past its 32 arguments,
    # and the task message's first 128 bytes end before the text.
    slowlog = repr(client.execute_command("SLOWLOG", "GET", "-1")).encode()
    assert otp.encode() in slowlog, "SLOWLOG searched in vain"
    fragments = [base64.b64decode(b[:len(b) // 4 * 4])
                 for b in re.findall(rb'"body":"([A-Za-z0-9+/=]+)', slowlog)]
    assert fragments, "no task message in SLOWLOG"
    for code in (sent_code, dead_code):
        assert occurrences(code, b"\n".join([slowlog, *fragments])) == 0, f"{code} in SLOWLOG"

    # The AOF held the code from the write that accepted it; a rewrite leaves none of it.
    assert occurrences(sent_code, aof_bytes(stack["aof"])) > 0, "AOF searched in vain"
    rewrite_aof(client)
    wait_for(lambda: occurrences(sent_code, aof_bytes(stack["aof"])) == 0, 10,
             "the old AOF files to be deleted after the rewrite")
    rewritten = aof_bytes(stack["aof"])
    assert control.encode() in rewritten
    assert occurrences(sent_code, rewritten) == occurrences(dead_code, rewritten) == 0

    # Logs of the worker, beat, Flower and the API.
    logs = {p.name: p.read_bytes() for p in stack["logs"].glob("*.log")}
    logs |= {api.log.name: api.log.read_bytes()}
    assert {"hygiene0.log", "beat1.log", "flower.log"} <= set(logs)
    assert otp.encode() in logs["hygiene0.log"], "the worker's log names the message"
    for name, content in logs.items():
        for code in (sent_code, dead_code):
            assert occurrences(code, content) == 0, f"OTP code {code} in {name}"

    # Flower: the task list and each task's page.
    tasks = flower.get("/api/tasks", taskname="kirim.send")
    listed = json.dumps(tasks)
    assert otp in listed and dead in listed
    for task_id in tasks:
        page = flower.http.get(f"/task/{task_id}")
        assert page.status_code == 200 and "kirim.send" in page.text
        for code in (sent_code, dead_code):
            assert occurrences(code, listed) == 0 and occurrences(code, page.text) == 0, \
                f"OTP code {code} in Flower"

    # The dead OTP's letter has no text, and it cannot be replayed: the user asks again.
    letters = api.client.get("/v1/dead-letters").json()["items"]
    assert [d["message_id"] for d in letters] == [dead]
    letter = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).get(dead)
    assert letter is not None and letter.code == "-13"
    assert letter.job["text"] == "" and letter.job["text_erased"] is True
    assert letter.job["id"] == dead and letter.job["to"] == DEAD_NUMBER
    refused = api.client.post(f"/v1/dead-letters/{dead}/replay")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "text_erased" and "request a new code" in error["message"]
    assert kirim.status(dead).state == State.DEAD


def test_the_search_sees_a_code_inside_a_waiting_task_message(kirim: KirimClient) -> None:
    # The search's own control: a task on its queue carries the job base64-encoded.
    mid = kirim.send_otp("6281234567890", "Kode OTP Anda 739107")
    kirim.redis.delete(kirim.keys.message(mid))  # only the task message has the code now
    typed, _ = redis_dump(kirim.redis)
    assert occurrences("739107", typed) == 1


# --- each part on its own, on the session's Redis ----------------------------------------------

def _otp(kirim: KirimClient, text: str = "Kode OTP Anda 739104", channel: str = "otp") -> str:
    return kirim.send(channel, f"62812345{secrets.randbelow(10**5):05d}", text)


def _move(kirim: KirimClient, mid: str, *path: State) -> None:
    for state in path:
        assert kirim.store.move(mid, state).ok, f"{mid} did not move to {state}"


PATHS = {State.SENT: [State.SENDING, State.SENT],
         State.DELIVERED: [State.SENDING, State.SENT, State.DELIVERED],
         State.UNDELIVERED: [State.SENDING, State.SENT, State.UNDELIVERED],
         State.FAILED: [State.SENDING, State.SENT, State.FAILED],
         State.REJECTED: [State.SENDING, State.UNKNOWN, State.REJECTED],
         State.EXPIRED: [State.EXPIRED], State.DEAD: [State.DEAD]}


@pytest.mark.parametrize("final", FINAL)
def test_the_move_to_a_final_state_erases_an_otps_text(kirim: KirimClient, final: State) -> None:
    mid = _otp(kirim)
    before = kirim.status(mid).job
    _move(kirim, mid, *PATHS[final])
    record = kirim.status(mid)
    assert record.state == final and record.get("text_erased") == "1"
    after = record.job
    assert after.text == "" and after.text_erased
    # Everything else is exactly as it was, created_at to the last digit.
    assert after.model_copy(update={"text": before.text, "text_erased": False}) == before
    assert "739104" not in record.fields["job"]


@pytest.mark.parametrize("channel", ["sms", "wa"])
def test_sms_and_whatsapp_keep_their_text(kirim: KirimClient, channel: str) -> None:
    ids = {final: _otp(kirim, "Pesanan 739104 dikirim", channel) for final in FINAL}
    for final, mid in ids.items():
        _move(kirim, mid, *PATHS[final])
        record = kirim.status(mid)
        assert record.job.text == "Pesanan 739104 dikirim" and not record.job.text_erased
        assert record.get("text_erased") is None


@pytest.mark.parametrize("path", [[], [State.SENDING], [State.SENDING, State.UNKNOWN],
                                  [State.DEFERRED]])
def test_an_otp_not_yet_final_keeps_its_text(kirim: KirimClient, path: list[State]) -> None:
    # An `unknown` one too: an operator may still resend it (`kirim settle --as resend`).
    mid = _otp(kirim)
    _move(kirim, mid, *path)
    assert kirim.status(mid).job.text == "Kode OTP Anda 739104"


def test_a_dead_otp_is_never_queued_again(kirim: KirimClient) -> None:
    mid = _otp(kirim)
    writer = StateWriter(kirim.store, kirim.requeuer, 1.0)
    job = kirim.status(mid).job
    _move(kirim, mid, State.SENDING)
    assert writer.dead(job, Attempt(-13, "INVALID_DESTINATION_ADDRESS", '{"status":"-13"}', None,
                                    1), "permanent -13")
    letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
    letter = letters.get(mid)
    assert letter is not None and letter.job["text"] == "" and letter.text_erased
    with pytest.raises(TextErased, match="request a new code"):
        letters.replay(letter)
    assert letters.replay_where() == (0, 1)
    assert letters.count() == 1, "a refused replay keeps its letter"
    # Below the replay, the transition itself refuses: nothing left to send.
    assert not kirim.requeuer.requeue(mid, allowed_from=[State.DEAD], note="forced")
    assert kirim.status(mid).state == State.DEAD


def test_an_old_dead_letter_with_its_text_is_refused_by_its_record(kirim: KirimClient) -> None:
    # Written before issue 14 (the job with its text), its record erased since.
    mid = _otp(kirim)
    old = {"id": mid, "reason": "old", "code": "-13", "code_name": "X", "attempts": "1",
           "last_reply": "", "at": f"{time.time():.3f}", "job": kirim.status(mid).fields["job"]}
    _move(kirim, mid, State.DEAD)
    kirim.redis.xadd(kirim.keys.dead_letters, dict(old))  # type: ignore[arg-type]
    letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
    letter = letters.get(mid)
    assert letter is not None and not letter.text_erased
    with pytest.raises(TextErased):
        letters.replay(letter)


def test_a_dead_sms_is_still_replayed(kirim: KirimClient) -> None:
    mid = _otp(kirim, "Pesanan dikirim", "sms")
    job = kirim.status(mid).job
    _move(kirim, mid, State.SENDING)
    StateWriter(kirim.store, kirim.requeuer, 1.0).dead(job, Attempt(-13, "X", ""), "permanent")
    letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
    letter = letters.get(mid)
    assert letter is not None and letter.job["text"] == "Pesanan dikirim"
    assert letters.replay(letter) and kirim.status(mid).state == State.QUEUED


def test_a_quarantined_otp_keeps_no_text(kirim: KirimClient) -> None:
    readable, unreadable = _otp(kirim), _otp(kirim, "Kode OTP Anda 739105")
    key = kirim.keys.message(unreadable)
    kirim.redis.hset(key, "job", '{"v": 9, "text": "Kode OTP Anda 739105", ')  # cut off
    assert quarantine(kirim.store, readable, "a test says so")
    assert quarantine(kirim.store, unreadable, "unreadable job")
    letters = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer)
    first, second = letters.get(readable), letters.get(unreadable)
    assert first is not None and first.job["text"] == "" and first.text_erased
    assert second is not None and second.job == json.loads(UNREADABLE_OTP)
    assert kirim.status(readable).job.text == ""
    assert kirim.redis.hget(key, "job") is None and kirim.redis.hget(key, "text_erased") == b"1"
    # (Their task messages still wait on the queue, with no worker here to take them.)
    kept = repr([kirim.redis.hgetall(kirim.keys.message(readable)), kirim.redis.hgetall(key),
                 kirim.redis.xrange(kirim.keys.dead_letters)])
    assert occurrences("739104", kept) == occurrences("739105", kept) == 0


def test_a_poisoned_otp_payload_is_dead_lettered_without_its_text(kirim: KirimClient) -> None:
    from pydantic import ValidationError

    raw = {"v": 1, "id": "foreign00000001", "channel": "otp", "to": "6281234567890",
           "text": "Kode OTP Anda 739106", "parts": "many"}
    with pytest.raises(ValidationError) as info:
        Job.model_validate(raw)
    StateWriter(kirim.store, kirim.requeuer, 1.0).poisoned(raw, info.value)
    letter = DeadLetters(kirim.redis, kirim.keys, kirim.requeuer).get("foreign00000001")
    assert letter is not None and letter.job["text"] == "" and letter.job["parts"] == "many"
    typed, _ = redis_dump(kirim.redis)
    assert occurrences("739106", typed) == 0


def test_a_transition_effect_cannot_bring_the_text_back(kirim: KirimClient) -> None:
    # The erasure runs after the state is set, before the caller's own field updates, which
    # never name `job`: a move with effects still ends erased.
    mid = _otp(kirim)
    _move(kirim, mid, State.SENDING)
    assert kirim.store.move(mid, State.SENT, set_fields={"provider_id": "p1"},
                            effects=Effects(zrem=[(kirim.keys.sending, mid)])).ok
    assert kirim.status(mid).job.text == "" and kirim.status(mid).get("provider_id") == "p1"


# --- the Lua JSON edit, against Python's json ------------------------------------------------

json_text = st.text(st.characters(codec="utf-8"), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | json_text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.dictionaries(json_text.filter(lambda k: k not in ("text", "text_erased")),
                              json_values, max_size=4),
       after=st.dictionaries(json_text.filter(lambda k: k not in ("text", "text_erased")),
                             json_values, max_size=4),
       text=json_text, ascii_only=st.booleans(), compact=st.booleans())
def test_the_lua_edit_replaces_only_the_top_level_text(redis: redis_lib.Redis,
                                                       before: dict[str, Any],
                                                       after: dict[str, Any], text: str,
                                                       ascii_only: bool, compact: bool) -> None:
    edit = redis.register_script(lua.source("producer.core", "erase_text")
                                 + "\nreturn erased_job(ARGV[1])")
    after = {k: v for k, v in after.items() if k not in before}
    comma, colon = (",", ":") if compact else (", ", ": ")

    def members(obj: dict[str, Any]) -> str:
        return json.dumps(obj, ensure_ascii=ascii_only, separators=(comma, colon))[1:-1]

    def job_json(text_value: str, mark: str = "") -> str:
        listed = [members(before), f'"text"{colon}{text_value}', members(after)]
        return "{" + comma.join(m for m in listed if m) + mark + "}"

    encoded = job_json(json.dumps(text, ensure_ascii=ascii_only))
    erased = edit(args=[encoded])
    # Exactly the same bytes but for the text: numbers keep every digit they were written with.
    assert erased == job_json('""', ',"text_erased":true')
    assert json.loads(erased) == {**before, "text": "", **after, "text_erased": True}


@pytest.mark.parametrize("stored", ["not json", "[1, 2]", '{"text": 5}', '{"a": 1}',
                                    '{"text": "cut off', "{}"])
def test_the_lua_edit_gives_up_on_what_is_not_a_job(redis: redis_lib.Redis, stored: str) -> None:
    edit = redis.register_script(lua.source("producer.core", "erase_text")
                                 + "\nreturn erased_job(ARGV[1])")
    assert edit(args=[stored]) is None


def test_dead_letter_fields_keep_an_otps_job_without_its_text() -> None:
    otp = '{"id":"m1","channel":"otp","text":"Kode 739104","created_at":1718000000.123456789}'
    sms = '{"id":"m2","channel":"sms","text":"Pesanan 739104","created_at":1.5}'

    def kept(job_json: str, channel: str | None = None) -> str:
        fields = dead_letter_fields("m", "why", None, "X", 0, "", 1.0, job_json, channel)
        return fields[fields.index("job") + 1]

    assert json.loads(kept(otp)) == {"id": "m1", "channel": "otp", "text": "",
                                     "created_at": 1718000000.123456789, "text_erased": True}
    assert kept(sms) == sms  # byte for byte
    assert json.loads(kept(sms, "otp"))["text"] == ""  # the record says OTP: that counts
    assert kept("garbage 739104", "otp") == UNREADABLE_OTP
    assert kept("garbage 739104", "sms") == kept("garbage 739104") == "garbage 739104"


def test_inspect_shows_a_waiting_otp_without_its_text(kirim_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    """An OTP waiting out a retry countdown sits in the worker's timer (`inspect scheduled`,
    Flower's Scheduled tab), and a backlog in `reserved`: both show the masked arguments."""
    from producer.core.broker import make_celery

    env = {**kirim_env, "KIRIM_VISIBILITY_TIMEOUT_S": "300", "KIRIM_RETRY_BASE_DELAY_S": "60",
           "KIRIM_RETRY_MAX_DELAY_S": "120"}
    settings = settings_from_env(env)
    pool = Workers(env, tmp_path)
    code = "Kode 604417"
    try:
        pool.start(queues="otp", concurrency=1)
        with KirimClient(settings, source="test") as client:
            mid = client.send_otp("6281195900000", code)  # the sandbox answers -26 nine times
            app = make_celery(settings)
            inspector = app.control.inspect(timeout=3)
            found: dict[str, Any] = {}

            def scheduled() -> bool:
                found.update(inspector.scheduled() or {})
                return any(found.values())

            wait_for(scheduled, 30, "the retry of the OTP in the worker's timer")
            [entries] = [e for e in found.values() if e]
            request = entries[0]["request"]
            assert mid in json.dumps(request) and code not in json.dumps(request)
            by_id = inspector.query_task([request["id"]]) or {}
            assert by_id and code not in json.dumps(by_id) and mid in json.dumps(by_id)
            assert code not in json.dumps(inspector.reserved() or {})
            assert "6281195900000" not in json.dumps(found)  # the number is masked too
            app.close()
    finally:
        pool.stop_all()
