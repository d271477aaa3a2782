"""Signatures a receiver can trust (issue 14): real worker and beat processes POST status
callbacks to local receivers (tests/support/receiver.py), and every check is the Standard
Webhooks reference verifier, `standardwebhooks.Webhook(secret).verify(body, headers)`, as a
producer's receiver runs it, or the receivers docs/callbacks.md gives (Python, and PHP when a
php CLI is installed), run as written."""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from standardwebhooks import Webhook, WebhookVerificationError

from producer.client import KirimClient
from producer.core.contract import State
from producer.core.keys import Keys
from producer.core.tenants import decode_secret
from tests.support.receiver import Receiver, all_posted_in_order, life, states_posted
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import CALLBACK_SECRETS, Workers
from worker.callbacks import sign

pytestmark = pytest.mark.timeout(120)

KEYS = Keys()
NO_DR = {"KIRIM_DR_FIRST_POLL_S": "600"}  # a message's life ends at sent: a fixed count


def fresh_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secrets_setting(table: dict[str, str]) -> str:
    return ",".join(f"{name}:{value}" for name, value in table.items())


def verifies(secret: str, hit: dict[str, Any]) -> bool:
    """Whether the reference verifier, holding `secret`, accepts this delivery."""
    try:
        Webhook(secret).verify(hit["body"], hit["headers"])
    except WebhookVerificationError:
        return False
    return True


def log_lines(workers: Workers, event: str) -> list[dict[str, Any]]:
    """Every JSON log line of every worker whose event is `event`."""
    found = []
    for path in sorted(workers.logdir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                entry = json.loads(line)
                if entry.get("event") == event:
                    found.append(entry)
    return found


def hits_of(receiver: Receiver, mid: str) -> list[dict[str, Any]]:
    return [h for h in receiver.hits if json.loads(h["body"])["id"] == mid]


def test_each_source_signs_with_its_own_secret_and_one_without_gets_no_post(
        kirim_env: dict[str, str], workers: Workers, redis: Redis, receiver: Receiver) -> None:
    # The producers know a secret for "orphan"; the workers do not (a secret removed, or the
    # workers configured apart from the API): its callbacks must not go out unsigned.
    producer_env = {**kirim_env, "KIRIM_CALLBACK_SECRETS": secrets_setting(
        {**CALLBACK_SECRETS, "orphan": fresh_secret()})}
    settings = settings_from_env(producer_env)
    workers.start(extra_env=NO_DR)
    workers.beat()
    with KirimClient(settings, source="shop") as shop, \
            KirimClient(settings, source="billing") as billing, \
            KirimClient(settings, source="orphan") as orphan:
        by_shop = shop.send_sms("6281255500001", "shop", callback_url=receiver.url)
        by_billing = billing.send_sms("6281255500002", "billing", callback_url=receiver.url)
        unsigned = orphan.send_sms("6281255500003", "no secret", callback_url=receiver.url)
        wait_states(shop, [by_shop, by_billing, unsigned], {State.SENT, State.DELIVERED})
        wait_for(lambda: all_posted_in_order(shop, receiver, [by_shop, by_billing]), 30,
                 "the shop and billing callbacks")
        wait_for(lambda: redis.xlen(KEYS.events) == 0, 15, "every event finished")
        orphan_events = len(life(shop, unsigned))

    shop_hits, billing_hits = hits_of(receiver, by_shop), hits_of(receiver, by_billing)
    assert shop_hits and billing_hits
    for hit in shop_hits:
        assert verifies(CALLBACK_SECRETS["shop"], hit)
        assert not verifies(CALLBACK_SECRETS["billing"], hit), "billing's secret verifies shop"
    for hit in billing_hits:
        assert verifies(CALLBACK_SECRETS["billing"], hit)
        assert not verifies(CALLBACK_SECRETS["shop"], hit), "shop's secret verifies billing"

    assert hits_of(receiver, unsigned) == [], "a callback went out without a secret"
    assert states_posted(receiver, unsigned) == []
    assert redis.hget(KEYS.callback_stats, "unsigned") == str(orphan_events)
    lines = log_lines(workers, "status_callback_unsigned")
    assert len(lines) == orphan_events, lines
    assert {line["message_id"] for line in lines} == {unsigned}
    assert all(line["source"] == "orphan" and "KIRIM_CALLBACK_SECRETS" in line["error"]
               for line in lines)


def test_during_a_rotation_a_receiver_with_either_secret_verifies(
        kirim_env: dict[str, str], workers: Workers, redis: Redis,
        receiver_factory: Any) -> None:
    old, new = CALLBACK_SECRETS["shop"], fresh_secret()
    rotating = {**kirim_env,
                "KIRIM_CALLBACK_SECRETS": secrets_setting({**CALLBACK_SECRETS,
                                                           "shop": f"{new}|{old}"})}
    workers.start(extra_env={**NO_DR,
                             "KIRIM_CALLBACK_SECRETS": rotating["KIRIM_CALLBACK_SECRETS"]})
    workers.beat()
    keeps_old, has_new = receiver_factory(), receiver_factory()
    with KirimClient(settings_from_env(rotating), source="shop") as shop:
        first = shop.send_sms("6281255500011", "to old", callback_url=keeps_old.url)
        second = shop.send_sms("6281255500012", "to new", callback_url=has_new.url)
        wait_states(shop, [first, second], {State.SENT, State.DELIVERED})
        wait_for(lambda: all_posted_in_order(shop, keeps_old, [first])
                 and all_posted_in_order(shop, has_new, [second]), 30, "both receivers' posts")

    for hit in keeps_old.hits + has_new.hits:
        assert len(hit["headers"]["webhook-signature"].split(" ")) == 2  # one per secret
    assert all(verifies(old, h) for h in keeps_old.hits), "a receiver not yet rotated"
    assert all(verifies(new, h) for h in has_new.hits), "a receiver already rotated"
    assert all(verifies(old, h) and verifies(new, h) for h in keeps_old.hits + has_new.hits)
    stranger = fresh_secret()
    assert not any(verifies(stranger, h) for h in keeps_old.hits + has_new.hits)
    assert not any(verifies(CALLBACK_SECRETS["billing"], h) for h in keeps_old.hits)

    # A replay, changed: the signature covers the id, the timestamp and the body.
    hit = keeps_old.hits[0]
    assert verifies(old, hit)  # as delivered (a receiver drops it as seen, by webhook-id)
    moved = {**hit, "headers": {**hit["headers"], "webhook-timestamp": str(
        int(hit["headers"]["webhook-timestamp"]) + 60)}}
    other_id = {**hit, "headers": {**hit["headers"], "webhook-id": "1-0"}}
    body = json.loads(hit["body"])
    changed = {**hit, "body": json.dumps({**body, "state": "delivered"},
                                         separators=(",", ":")).encode()}
    for forged in (moved, other_id, changed):
        assert not verifies(old, forged) and not verifies(new, forged)


DOC = Path(__file__).resolve().parents[2] / "docs" / "callbacks.md"


def doc_snippet(language: str) -> str:
    """The one fenced `language` block of docs/callbacks.md."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, f"docs/callbacks.md has {len(blocks)} {language} blocks"
    return blocks[0]


def python_doc_verifier(secret_list: list[str]) -> Callable[[dict[str, Any]], bool]:
    """docs/callbacks.md's Python receiver, run as written, holding `secret_list`."""
    namespace: dict[str, Any] = {}
    exec(doc_snippet("python"), namespace)  # the documented code itself
    namespace["SECRETS"] = secret_list

    def accepts(hit: dict[str, Any]) -> bool:
        try:
            return namespace["verify"](hit["body"], hit["headers"]) == json.loads(hit["body"])
        except WebhookVerificationError:
            return False

    return accepts


def php_doc_verifier(tmp_path: Path) -> Callable[[dict[str, Any], list[str]], bool]:
    """docs/callbacks.md's PHP function, run by the php CLI on one delivery."""
    php = shutil.which("php")
    assert php is not None, ("no php CLI to run the documented PHP receiver: apt-get install"
                             " -y php-cli (.ci/run installs it)")
    function = doc_snippet("php").split("$callback = kirim_callback(")[0]
    script = tmp_path / "verify.php"
    script.write_text(function + """
$in = json_decode(file_get_contents($argv[1]), true);
$result = kirim_callback(base64_decode($in['body']), $in['server'], $in['secrets']);
echo json_encode($result);
""")

    def accepts(hit: dict[str, Any], secret_list: list[str]) -> bool:
        server = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in hit["headers"].items()}
        request = tmp_path / "request.json"
        request.write_text(json.dumps({"body": base64.b64encode(hit["body"]).decode(),
                                       "server": server, "secrets": secret_list}))
        out = subprocess.run([php, str(script), str(request)], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        return json.loads(out) is not None and json.loads(out) == json.loads(hit["body"])

    return accepts


def test_the_documented_receivers_accept_kirims_callbacks_and_nothing_else(
        kirim_env: dict[str, str], workers: Workers, receiver: Receiver, tmp_path: Path) -> None:
    php_accepts = php_doc_verifier(tmp_path)
    workers.start(extra_env=NO_DR)
    workers.beat()
    with KirimClient(settings_from_env(kirim_env), source="shop") as shop:
        mid = shop.send_sms("6281255500021", "docs", callback_url=receiver.url)
        wait_states(shop, [mid], {State.SENT})
        wait_for(lambda: all_posted_in_order(shop, receiver, [mid]), 30, "the callbacks")
    shop_secret, other = CALLBACK_SECRETS["shop"], CALLBACK_SECRETS["billing"]
    hit = receiver.hits[0]
    stale_ts = int(time.time()) - 301  # signed correctly, but older than 5 minutes
    stale = {**hit, "headers": {**hit["headers"], "webhook-timestamp": str(stale_ts),
                                "webhook-signature": sign([decode_secret(shop_secret)],
                                                          hit["headers"]["webhook-id"],
                                                          stale_ts, hit["body"])}}
    moved = {**hit, "headers": {**hit["headers"], "webhook-timestamp": str(
        int(hit["headers"]["webhook-timestamp"]) - 1)}}
    changed = {**hit, "body": hit["body"].replace(b'"queued"', b'"delivered"')}
    assert changed["body"] != hit["body"]
    python_accepts = python_doc_verifier([shop_secret])
    for accepts in (python_accepts, lambda h: php_accepts(h, [shop_secret])):
        assert all(accepts(h) for h in receiver.hits)
        assert not any(accepts(forged) for forged in (stale, moved, changed))
    assert not python_doc_verifier([other])(hit) and not php_accepts(hit, [other])
    # A receiver in the middle of its own rotation holds two secrets: either may match.
    assert python_doc_verifier([other, shop_secret])(hit)
    assert php_accepts(hit, [other, shop_secret])
