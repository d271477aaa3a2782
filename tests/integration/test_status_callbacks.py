"""Status callbacks: real worker and beat, the sandbox, and a local HTTP receiver
(tests/support/receiver.py) that checks signatures (Standard Webhooks, with the scheme's
reference verifier), sees every state of a message's life in order, and fails once to force a
retry. Tenant isolation and rotation of the secrets: test_callback_signatures.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from producer.client import KirimClient
from producer.core.contract import State
from producer.core.settings import Settings
from tests.support.receiver import all_posted_in_order, states_posted
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import CALLBACK_SECRETS, Workers

pytestmark = pytest.mark.timeout(120)


def _stack(kirim_env: dict[str, str], tmp_path: Path) -> tuple[Workers, Settings]:
    pool = Workers(kirim_env, tmp_path)
    pool.start()
    pool.beat()
    return pool, settings_from_env(kirim_env)


def test_every_state_change_is_posted_signed_and_in_order(kirim_env, tmp_path, sandbox,
                                                          receiver):
    pool, settings = _stack(kirim_env, tmp_path)
    try:
        with KirimClient(settings, source="shop") as kirim:
            ids = [kirim.send_sms(f"62812555{i:05d}", f"order {i}", callback_url=receiver.url)
                   for i in range(3)]
            dead = kirim.send_sms("6281190013000", "bad number", callback_url=receiver.url)
            quiet = kirim.send_sms("6281255599999", "no callback")
            wait_states(kirim, [*ids, quiet], {State.SENT, State.DELIVERED})
            wait_states(kirim, [dead], {State.DEAD})
            wait_for(lambda: all_posted_in_order(kirim, receiver, [*ids, dead]), 30,
                     "every state change of every message posted in order")
    finally:
        pool.stop_all()
    bodies = receiver.json_ok()
    assert {b["id"] for b in bodies} == {*ids, dead}, "no callback without a callback_url"
    assert states_posted(receiver, ids[0])[:3] == ["queued", "sending", "sent"]
    assert states_posted(receiver, dead)[-1] == "dead"
    assert all(set(b) == {"id", "state", "from", "code", "provider_id", "at"} for b in bodies)
    shop = Webhook(CALLBACK_SECRETS["shop"])
    for hit in receiver.hits:
        assert shop.verify(hit["body"], hit["headers"]) == json.loads(hit["body"])
        assert abs(int(hit["headers"]["webhook-timestamp"]) - hit["t"]) < 5
    assert len({h["headers"]["webhook-id"] for h in receiver.hits}) == len(receiver.hits)


def test_a_refused_callback_is_retried_and_order_is_kept(kirim_env, tmp_path, sandbox,
                                                         receiver):
    receiver.fail_first = 1
    pool, settings = _stack(kirim_env, tmp_path)
    try:
        with KirimClient(settings, source="shop") as kirim:
            mid = kirim.send_sms("6281255500001", "retry me", callback_url=receiver.url)
            wait_states(kirim, [mid], {State.SENT, State.DELIVERED})
            wait_for(lambda: all_posted_in_order(kirim, receiver, [mid]), 30,
                     "the refused callback retried and every state posted in order")
    finally:
        pool.stop_all()
    first, *rest = receiver.hits
    assert first["status"] == 500
    event = first["headers"]["webhook-id"]
    retried = [h for h in rest if h["headers"]["webhook-id"] == event]
    assert retried and retried[0]["status"] == 200 and retried[0]["body"] == first["body"]
    shop = Webhook(CALLBACK_SECRETS["shop"])
    for hit in (first, retried[0]):  # each attempt signed afresh: it verifies on its own
        shop.verify(hit["body"], hit["headers"])
