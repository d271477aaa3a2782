"""NusaSMSV1Client against the real sandbox's API v1.0 over HTTP: every route and reply."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import httpx
import pytest

from sandbox.control import SandboxControl
from worker.nusasms import (
    Action,
    DeliveryState,
    NusaSMSV1Client,
    OutcomeUnknown,
    ProtocolError,
    ProviderHTTPError,
    ProviderRejected,
    ProviderThrottled,
    ReplyLost,
    Scope,
    V1Config,
    build_http_client,
)

GSM = "6281234567890"
KEY = "demo-api-key"
PREFIX = "/nusasms_api/1.0"


@contextmanager
def _client(sandbox: SandboxControl, key: str = KEY, read_s: float = 5.0
            ) -> Iterator[NusaSMSV1Client]:
    with build_http_client(connect_timeout_s=2.0, read_timeout_s=read_s, pool_size=4) as http:
        yield NusaSMSV1Client(V1Config(sandbox.url + PREFIX, key), http)


@pytest.fixture
def v1(sandbox: SandboxControl) -> Iterator[NusaSMSV1Client]:
    with _client(sandbox) as client:
        yield client


@pytest.fixture
def impatient(sandbox: SandboxControl) -> Iterator[NusaSMSV1Client]:
    sandbox.configure(hang_s=3.0)
    with _client(sandbox, read_s=0.5) as client:
        yield client


def test_check_key_answers_whose_key_it_is(v1: NusaSMSV1Client) -> None:
    info = v1.check_key()
    assert (info.userid, info.id_person, info.id_client) == ("demo", "1001", "2001")


def test_a_wrong_key_is_refused_everywhere_and_pauses_wa(sandbox: SandboxControl) -> None:
    with _client(sandbox, key="wrong-key") as wrong:
        for call in (wrong.check_key, wrong.balance, lambda: wrong.wa_status("1")):
            with pytest.raises(ProviderRejected) as caught:
                call()
            assert (caught.value.status.code, caught.value.action, caught.value.status.scope) == (
                401, Action.PAUSE, Scope.PRODUCT)
            assert "wrong-key" not in str(caught.value)
        result = wrong.send_wa(GSM, "Halo")
    assert (result.status.code, result.status.action, result.status.scope) == (
        401, Action.PAUSE, Scope.PRODUCT)
    assert sandbox.messages(gsm=GSM) == []


def test_a_missing_key_is_403(sandbox: SandboxControl) -> None:
    reply = httpx.get(sandbox.url + PREFIX + "/balance")
    assert (reply.status_code, reply.json()) == (403, {"detail": "Not authenticated"})


def test_balance_keeps_the_products_apart(v1: NusaSMSV1Client, sandbox: SandboxControl) -> None:
    sandbox.set_credits(1234, "2027-01-31", product="sms")
    sandbox.set_credits(56, "2026-12-31", product="wa")
    balances = v1.balance()
    assert (balances.sms.value, balances.sms.expires) == (Decimal(1234), date(2027, 1, 31))
    assert (balances.wa.value, balances.wa.expires) == (Decimal(56), date(2026, 12, 31))


def test_send_wa_text_with_sender_is_accepted_and_charged_to_wa(
    v1: NusaSMSV1Client, sandbox: SandboxControl
) -> None:
    sandbox.set_credits(10, product="wa")
    result = v1.send_wa(GSM, "Halo dari kirim", sender="6281100000000")
    assert result.status.action is Action.DONE
    assert result.message_id and result.message_id.isdigit() and result.destination == GSM
    [message] = sandbox.messages(gsm=GSM)
    assert (message["channel"], message["text"], message["sender"], message["api"]) == (
        "wa", "Halo dari kirim", "6281100000000", "v1")
    assert v1.balance().wa.value == 9


def test_send_wa_media_by_url_and_inline(v1: NusaSMSV1Client, sandbox: SandboxControl) -> None:
    by_url = v1.send_wa_media(GSM, "lihat", media_url="https://example.com/a.png")
    inline = v1.send_wa_media(GSM, "file", media_base64=base64.b64encode(b"x" * 1000).decode(),
                              file_name="a.txt")
    assert by_url.status.action is inline.status.action is Action.DONE
    stored = {m["messageid"]: m for m in sandbox.messages(gsm=GSM)}
    assert stored[by_url.message_id]["media_url"] == "https://example.com/a.png"
    assert (stored[inline.message_id]["file_name"], stored[inline.message_id]["media_bytes"]) == (
        "a.txt", 1000)


def test_a_file_of_exactly_512_kb_passes_one_byte_more_is_dead(
    v1: NusaSMSV1Client, sandbox: SandboxControl
) -> None:
    fits = v1.send_wa_media(GSM, "c", media_base64=base64.b64encode(
        b"\0" * 512 * 1024).decode(), file_name="fits.bin")
    assert fits.status.action is Action.DONE
    over = v1.send_wa_media(GSM, "c", media_base64=base64.b64encode(
        b"\0" * (512 * 1024 + 1)).decode(), file_name="big.bin")
    assert (over.status.code, over.status.name, over.status.action) == (
        400, "FILE_TOO_LARGE", Action.DEAD)
    assert over.message_id is None and len(sandbox.messages(gsm=GSM)) == 1


def test_an_invalid_sender_a_message_named_kills_that_message(
        v1: NusaSMSV1Client, sandbox: SandboxControl) -> None:
    sandbox.configure(wa_senders=["6281100000000"])
    for sender in ("6281100000001", "KIRIM"):
        result = v1.send_wa(GSM, "Halo", sender=sender)
        assert (result.status.code, result.status.name, result.status.action,
                result.status.scope) == (400, "INVALID_WA_SENDER", Action.DEAD, Scope.NONE)
    assert v1.send_wa(GSM, "Halo", sender="6281100000000").status.action is Action.DONE


def test_an_invalid_default_sender_pauses_the_lane(sandbox: SandboxControl) -> None:
    sandbox.configure(wa_senders=["6281100000000"])
    with build_http_client(connect_timeout_s=2.0, read_timeout_s=5.0, pool_size=1) as http:
        client = NusaSMSV1Client(V1Config(sandbox.url + PREFIX, KEY, sender="6281100000001"),
                                 http)
        for sender in (None, "6281100000001"):  # the default, by omission or by name
            result = client.send_wa(GSM, "Halo", sender=sender)
            assert (result.status.name, result.status.action, result.status.scope) == (
                "INVALID_WA_SENDER", Action.PAUSE, Scope.SENDER)


@pytest.mark.parametrize(("destination", "field"), [("08123", "destination"), ("", "destination")])
def test_validation_is_422_dead_naming_the_field(
    v1: NusaSMSV1Client, destination: str, field: str
) -> None:
    result = v1.send_wa(destination, "Halo")
    assert (result.status.code, result.status.action) == (422, Action.DEAD)
    assert repr(field) in result.status.meaning


def test_a_too_long_message_and_a_bad_media_set_are_422(v1: NusaSMSV1Client) -> None:
    assert v1.send_wa(GSM, "x" * 1001).status.code == 422
    bad_url = v1.send_wa_media(GSM, "c", media_url="ftp://example.com/a")
    assert (bad_url.status.code, bad_url.status.action) == (422, Action.DEAD)
    assert "'media_url'" in bad_url.status.meaning


def test_no_wa_credit_pauses_the_wa_product(v1: NusaSMSV1Client, sandbox: SandboxControl) -> None:
    sandbox.set_credits(0, product="wa")
    result = v1.send_wa(GSM, "Halo")
    assert (result.status.action, result.status.scope, result.status.name) == (
        Action.PAUSE, Scope.PRODUCT, "NOT_ENOUGH_CREDITS")
    sandbox.set_credits(10, "2020-01-01", product="wa")
    assert v1.send_wa(GSM, "Halo").status.name == "BALANCE_EXPIRED"


def test_status_progresses_sent_delivered_read(
    v1: NusaSMSV1Client, sandbox: SandboxControl
) -> None:
    sandbox.configure(dr_delay_s=30.0, wa_read_delay_s=60.0)
    ref = v1.send_wa(GSM, "Halo").message_id
    assert ref
    sent = v1.wa_status(ref)
    assert (sent.letter, sent.state, sent.final, sent.delivered_date, sent.read_date) == (
        "P", DeliveryState.PENDING, False, None, None)
    assert sent.sent_date
    sandbox.advance_clock(31)
    delivered = v1.wa_status(ref)
    assert (delivered.state, delivered.final, delivered.read_date) == (
        DeliveryState.DELIVERED, False, None)
    assert delivered.delivered_date
    sandbox.advance_clock(60)
    read = v1.wa_status(ref)
    assert (read.letter, read.state, read.final) == ("D", DeliveryState.READ, True)
    assert read.read_date and read.read_date >= (read.delivered_date or "")


def test_status_of_a_magic_failure_letter_and_an_unknown_ref(
    v1: NusaSMSV1Client, sandbox: SandboxControl
) -> None:
    sandbox.configure(dr_delay_s=0.0)
    ref = v1.send_wa("6281191200000", "Halo").message_id  # magic: letter U
    assert ref
    failed = v1.wa_status(ref)
    assert (failed.letter, failed.state, failed.final) == ("U", DeliveryState.UNDELIVERED, True)
    with pytest.raises(ProviderRejected) as caught:
        v1.wa_status("999999999999999999")
    assert (caught.value.status.code, caught.value.action) == (404, Action.RETRY)


def test_magic_status_numbers_apply(v1: NusaSMSV1Client) -> None:
    assert v1.send_wa("6281190002000", "Halo").status.name == "NOT_ENOUGH_CREDITS"
    assert v1.send_wa("6281190034000", "Halo").status.scope is Scope.SENDER
    assert v1.send_wa("6281190078000", "Halo").status.action is Action.DEFER
    with pytest.raises(ProviderHTTPError) as caught:  # -26, transient: a 500
        v1.send_wa("6281190026000", "Halo")
    assert caught.value.action is Action.RETRY


def test_429_carries_retry_after(v1: NusaSMSV1Client, sandbox: SandboxControl) -> None:
    sandbox.configure(rate_429=1.0)
    for call in (lambda: v1.send_wa(GSM, "Halo"), v1.balance):
        with pytest.raises(ProviderThrottled) as caught:
            call()
        assert (caught.value.status_code, caught.value.action, caught.value.retry_after_s) == (
            429, Action.RETRY, 1.0)


def test_server_errors_are_retryable(v1: NusaSMSV1Client, sandbox: SandboxControl) -> None:
    sandbox.configure(rate_5xx=1.0, seed=7)
    for _ in range(4):
        with pytest.raises(ProviderHTTPError) as caught:
            v1.send_wa(GSM, "Halo")
        assert (caught.value.status_code in (500, 502, 503), caught.value.action) == (
            True, Action.RETRY)


def test_a_dropped_reply_leaves_a_send_unknown_and_the_provider_has_it(
    v1: NusaSMSV1Client, sandbox: SandboxControl
) -> None:
    sandbox.configure(rate_drop_after_accept=1.0)
    with pytest.raises(OutcomeUnknown) as caught:
        v1.send_wa(GSM, "Halo")
    assert caught.value.action is Action.UNKNOWN
    assert len(sandbox.messages(gsm=GSM)) == 1  # why an unknown send is never resent
    with pytest.raises(ReplyLost) as lost:
        v1.balance()
    assert lost.value.action is Action.RETRY


def test_magic_drop_and_hang_are_unknown(
    impatient: NusaSMSV1Client, sandbox: SandboxControl
) -> None:
    for gsm in ("6281193000000", "6281194000000"):
        with pytest.raises(OutcomeUnknown):
            impatient.send_wa(gsm, "Halo")
        assert len(sandbox.messages(gsm=gsm)) == 1


def test_malformed_replies_leave_a_send_unknown(
    v1: NusaSMSV1Client, sandbox: SandboxControl
) -> None:
    sandbox.configure(rate_malformed=1.0, seed=3)
    for _ in range(6):
        with pytest.raises(ProtocolError) as caught:
            v1.send_wa(GSM, "Halo")
        assert caught.value.action is Action.UNKNOWN
    assert sandbox.messages(gsm=GSM) == []


def test_routes_and_methods_the_api_lacks(sandbox: SandboxControl) -> None:
    headers = {"APIKey": KEY}
    missing = httpx.get(sandbox.url + PREFIX + "/sms/message", headers=headers)
    wrong = httpx.get(sandbox.url + PREFIX + "/whatsapp/message", headers=headers)
    assert (missing.status_code, wrong.status_code) == (404, 405)
    bad_json = httpx.post(sandbox.url + PREFIX + "/whatsapp/message", headers=headers,
                          content=b"{not json", )
    assert bad_json.status_code == 422 and bad_json.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize(("route", "body", "field"), [
    ("/whatsapp/message", {"destination": GSM}, "message"),
    ("/whatsapp/message", {"message": "Halo"}, "destination"),
    ("/whatsapp/message", {"destination": GSM, "message": 5}, "message"),
    ("/whatsapp/media", {"destination": GSM, "caption": "c", "media_base64": "aGk="},
     "file_name"),
    ("/whatsapp/media", {"destination": GSM, "caption": "c", "media_base64": "not base64!",
                         "file_name": "a"}, "media_base64"),
])
def test_422_detail_names_the_field_as_fastapi_does(
    sandbox: SandboxControl, route: str, body: dict[str, object], field: str
) -> None:
    reply = httpx.post(sandbox.url + PREFIX + route, headers={"APIKey": KEY}, json=body)
    assert reply.status_code == 422
    [detail] = reply.json()["detail"]
    assert detail["loc"] == ["body", field] and detail["msg"] and detail["type"]
    assert sandbox.messages() == []
