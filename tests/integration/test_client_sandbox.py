"""NusaSMSClient against the real sandbox over HTTP: every reply kind, magic numbers, faults."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import pytest

from sandbox.control import SandboxControl
from worker.nusasms import (
    Action,
    DeliveryState,
    NusaSMSClient,
    NusaSMSConfig,
    OutcomeUnknown,
    ProtocolError,
    ProviderHTTPError,
    ProviderRejected,
    ProviderThrottled,
    ReplyLost,
    build_http_client,
    lookup,
)

GSM = "6281234567890"


@contextmanager
def _client(
    sandbox: SandboxControl, password: str = "demo", read_s: float = 5.0
) -> Iterator[NusaSMSClient]:
    with build_http_client(connect_timeout_s=2.0, read_timeout_s=read_s, pool_size=4) as http:
        yield NusaSMSClient(NusaSMSConfig(sandbox.url, "demo", password), http)


@pytest.fixture
def nusasms(sandbox: SandboxControl) -> Iterator[NusaSMSClient]:
    """A client on the sandbox with the default demo/demo account."""
    with _client(sandbox) as client:
        yield client


@pytest.fixture
def impatient(sandbox: SandboxControl) -> Iterator[NusaSMSClient]:
    """A client whose read timeout (0.5 s) is far below the sandbox's hang."""
    sandbox.configure(hang_s=3.0)
    with _client(sandbox, read_s=0.5) as client:
        yield client


def test_send_sms_is_accepted_and_posted(nusasms: NusaSMSClient, sandbox: SandboxControl) -> None:
    result = nusasms.send_sms(GSM, "Halo dari kirim")
    assert result.status.action is Action.DONE
    assert result.message_id and result.message_id.isdigit()
    assert result.destination == GSM
    assert result.elapsed_s > 0
    [message] = sandbox.messages(gsm=GSM)
    assert (message["messageid"], message["unicode"], message["otp"]) == (
        result.message_id,
        False,
        False,
    )
    assert all(entry["method"] == "POST" for entry in sandbox.requests())


def test_unicode_reaches_the_provider(nusasms: NusaSMSClient, sandbox: SandboxControl) -> None:
    nusasms.send_sms(GSM, "Terima kasih 🙏")
    assert sandbox.messages(gsm=GSM)[0]["unicode"] is True


def test_otp_route(nusasms: NusaSMSClient, sandbox: SandboxControl) -> None:
    refused = nusasms.send_sms(GSM, "Kode OTP Anda 482913")
    assert (refused.status.code, refused.status.action) == (-10, Action.DEAD)
    accepted = nusasms.send_sms(GSM, "Kode OTP Anda 482913", otp=True)
    assert accepted.status.action is Action.DONE
    assert sandbox.messages(gsm=GSM)[0]["otp"] is True


@pytest.mark.parametrize("code", [-1, -2, -3, -7, -26, -33, -40, -77, -78, -88, -99, -123])
def test_magic_status_numbers_follow_the_table(nusasms: NusaSMSClient, code: int) -> None:
    result = nusasms.send_sms(f"6281190{-code:03d}000", "Halo")
    assert result.status == lookup(code)
    assert result.message_id is None


def test_bad_password(sandbox: SandboxControl) -> None:
    with _client(sandbox, password="wrong") as client:
        result = client.send_sms(GSM, "Halo")
        with pytest.raises(ProviderRejected) as caught:
            client.credits()
    assert (result.status.name, result.status.action) == ("INVALID_USER_OR_PASS", Action.PAUSE)
    assert caught.value.action is Action.PAUSE
    assert "wrong" not in str(caught.value)


def test_send_wa(nusasms: NusaSMSClient, sandbox: SandboxControl) -> None:
    result = nusasms.send_wa(GSM, "Halo 🙏 dari WhatsApp")
    assert result.status.action is Action.DONE
    assert sandbox.messages(gsm=GSM, channel="wa")[0]["messageid"] == result.message_id


def test_send_group(nusasms: NusaSMSClient) -> None:
    result = nusasms.send_group("Example", "Promo hari ini")
    assert (result.status.action, result.group) == (Action.DONE, "Example")
    assert result.campaign_name and result.campaign_name.startswith("Group-Api-Campaign-")
    missing = nusasms.send_group("Nobody", "Promo hari ini")
    assert (missing.status.name, missing.status.action) == ("GROUP_NOT_FOUND", Action.DEAD)


@pytest.mark.parametrize("as_string", [False, True])
def test_credits(nusasms: NusaSMSClient, sandbox: SandboxControl, as_string: bool) -> None:
    sandbox.configure(credits_as_string=as_string)
    sandbox.set_credits(1234, "2030-01-31")
    credits = nusasms.credits()
    assert (credits.value, credits.expires) == (Decimal(1234), date(2030, 1, 31))


@pytest.mark.parametrize(
    ("gsm", "state"),
    [
        ("6281191100000", DeliveryState.DELIVERED),
        ("6281191200000", DeliveryState.UNDELIVERED),
        ("6281191300000", DeliveryState.FAILED),
        ("6281191400000", DeliveryState.REJECTED),
        ("6281191500000", DeliveryState.EXPIRED),
    ],
)
def test_delivery_report_goes_final(
    nusasms: NusaSMSClient, sandbox: SandboxControl, gsm: str, state: DeliveryState
) -> None:
    sandbox.configure(dr_delay_s=60.0)
    sent = nusasms.send_sms(gsm, "Halo")
    assert sent.message_id
    pending = nusasms.delivery_report(sent.message_id)
    assert (pending.state, pending.final) == (DeliveryState.PENDING, False)
    sandbox.advance_clock(61.0)
    report = nusasms.delivery_report(sent.message_id)
    assert (report.ref_no, report.state, report.final) == (sent.message_id, state, True)
    assert report.sent_date


def test_unknown_letter_is_kept_raw(nusasms: NusaSMSClient, sandbox: SandboxControl) -> None:
    sandbox.configure(dr_delay_s=0.0)
    sent = nusasms.send_sms("6281191700000", "Halo")
    assert sent.message_id
    report = nusasms.delivery_report(sent.message_id)
    assert (report.letter, report.state, report.final) == ("X", DeliveryState.UNKNOWN_LETTER, False)


def test_delivery_report_of_an_unknown_message(nusasms: NusaSMSClient) -> None:
    with pytest.raises(ProviderRejected) as caught:
        nusasms.delivery_report("999999999999999999")
    assert caught.value.status.name == "SYNTAX_ERROR"


def test_dropped_after_accept_is_unknown(nusasms: NusaSMSClient, sandbox: SandboxControl) -> None:
    with pytest.raises(OutcomeUnknown):
        nusasms.send_sms("6281193000000", "Halo")
    # This is why an unknown action is never resent: the provider did take it.
    assert len(sandbox.messages(gsm="6281193000000")) == 1


def test_hanging_reply_is_unknown(impatient: NusaSMSClient, sandbox: SandboxControl) -> None:
    with pytest.raises(OutcomeUnknown):
        impatient.send_sms("6281194000000", "Halo")
    assert len(sandbox.messages(gsm="6281194000000")) == 1


def test_read_timeout_on_a_query_is_retryable(
    impatient: NusaSMSClient, sandbox: SandboxControl
) -> None:
    sandbox.configure(rate_timeout=1.0)
    with pytest.raises(ReplyLost) as caught:
        impatient.credits()
    assert caught.value.action is Action.RETRY


def test_server_errors_are_retryable(nusasms: NusaSMSClient, sandbox: SandboxControl) -> None:
    sandbox.configure(rate_5xx=1.0, seed=7)
    for _ in range(5):
        with pytest.raises(ProviderHTTPError) as caught:
            nusasms.send_sms(GSM, "Halo")
        assert caught.value.status_code in (500, 502, 503)
        assert caught.value.action is Action.RETRY


def test_throttled(nusasms: NusaSMSClient, sandbox: SandboxControl) -> None:
    sandbox.configure(rate_429=1.0)
    with pytest.raises(ProviderThrottled) as caught:
        nusasms.send_sms(GSM, "Halo")
    assert (caught.value.action, caught.value.retry_after_s) == (Action.RETRY, 1.0)


def test_malformed_replies_leave_a_send_unknown(
    nusasms: NusaSMSClient, sandbox: SandboxControl
) -> None:
    sandbox.configure(rate_malformed=1.0, seed=3)
    for _ in range(6):  # both variants: the reply cut in half and an HTML page
        with pytest.raises(ProtocolError) as caught:
            nusasms.send_sms(GSM, "Halo")
        assert caught.value.action is Action.UNKNOWN


def test_provider_down_is_unknown_for_a_send(
    nusasms: NusaSMSClient, sandbox: SandboxControl
) -> None:
    sandbox.configure(down=True)
    with pytest.raises(OutcomeUnknown):
        nusasms.send_sms(GSM, "Halo")
