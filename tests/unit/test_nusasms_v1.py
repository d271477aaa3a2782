"""NusaSMSV1Client over httpx.MockTransport: request shape, the v1 table, replies, secrecy."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import httpx
import pytest

from worker.nusasms import (
    Action,
    DeliveryState,
    NusaSMSError,
    NusaSMSV1Client,
    OutcomeUnknown,
    ProtocolError,
    ProviderHTTPError,
    ProviderRejected,
    ProviderThrottled,
    ReplyLost,
    RequestNotSent,
    Scope,
    V1Config,
)
from worker.nusasms.v1_status import lookup_v1

API_KEY = "k3y-Very-S3cret-0123456789"
BASE = "https://api.nusasms.test/nusasms_api/1.0"
DEST = "6281234567890"
REF = "008078391643125660"
OK_SEND = {"error": False, "error_code": 0, "message": "WA send message",
           "data": {"sender": "6281100000000", "queue": None, "destination": DEST,
                    "message": "hi", "ref_no": REF}}
OK_BALANCE = {"error": False, "error_code": 0, "message": "Balance",
              "data": {"sms_balance": 1250, "sms_expired_date": "2027-01-31",
                       "wa_balance": "30.5", "wa_expired_date": "2026-12-31 23:59:59"}}
OK_KEY = {"error": False, "error_code": 0, "message": "API key",
          "data": {"userid": "demo", "idPerson": 12, "idClient": 34}}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler answering `status` + `body`, keeping every request."""

    def __init__(self, body: object = OK_SEND, status: int = 200,
                 headers: dict[str, str] | None = None) -> None:
        self.body, self.status, self.headers = body, status, headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return httpx.Response(self.status, text=text, headers=self.headers)


def client_for(handler: Handler, sender: str | None = None) -> NusaSMSV1Client:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return NusaSMSV1Client(V1Config(BASE, API_KEY, sender=sender), http)


def test_send_wa_posts_json_with_the_key_in_the_header_only() -> None:
    rec = Recorder()
    result = client_for(rec).send_wa(DEST, "hi", sender="6281100000000")
    (req,) = rec.requests
    assert (req.method, str(req.url)) == ("POST", BASE + "/whatsapp/message")
    assert req.headers["APIKey"] == API_KEY
    assert json.loads(req.content) == {"destination": DEST, "message": "hi",
                                       "sender": "6281100000000"}
    assert API_KEY not in str(req.url) and API_KEY.encode() not in req.content
    assert (result.status.action, result.message_id, result.destination) == (
        Action.DONE, REF, DEST)


def test_send_wa_uses_the_configured_sender_unless_given_and_none_when_blank() -> None:
    rec = Recorder()
    client_for(rec, sender="62811").send_wa(DEST, "a")
    client_for(rec, sender="62811").send_wa(DEST, "a", sender="62822")
    client_for(rec).send_wa(DEST, "a", sender="  ")
    bodies = [json.loads(r.content) for r in rec.requests]
    assert [b.get("sender") for b in bodies] == ["62811", "62822", None]


def test_send_wa_media_by_url_and_inline() -> None:
    rec = Recorder({**OK_SEND, "message": "WA Send Media"})
    client = client_for(rec)
    client.send_wa_media(DEST, "look", media_url="https://x.test/a.png")
    client.send_wa_media(DEST, "look", media_base64="aGk=", file_name="a.txt")
    url_body, inline_body = (json.loads(r.content) for r in rec.requests)
    assert str(rec.requests[0].url) == BASE + "/whatsapp/media"
    assert url_body == {"destination": DEST, "caption": "look", "media_url": "https://x.test/a.png"}
    assert inline_body == {"destination": DEST, "caption": "look", "media_base64": "aGk=",
                           "file_name": "a.txt"}


@pytest.mark.parametrize("kwargs", [
    {}, {"media_url": "https://x.test/a", "media_base64": "aGk=", "file_name": "a"},
    {"media_base64": "aGk="},
])
def test_send_wa_media_refuses_bad_argument_sets(kwargs: dict[str, str]) -> None:
    rec = Recorder()
    with pytest.raises(ValueError):
        client_for(rec).send_wa_media(DEST, "c", **kwargs)
    assert rec.requests == []


# The v1 table, row by row: (HTTP status, body) → (action, scope, name).
SENDER_400 = {"error": True, "message": "Invalid WA Sender", "description": None}
FILE_400 = {"error": True, "message": "File exceed limits (max 512 KB)", "description": None}
DETAIL_422 = {"detail": [{"loc": ["body", "destination"], "msg": "Invalid destination format",
                          "type": "value_error"}]}


@pytest.mark.parametrize(("status", "body", "action", "scope", "name"), [
    (400, SENDER_400, Action.PAUSE, Scope.SENDER, "INVALID_WA_SENDER"),
    (400, FILE_400, Action.DEAD, Scope.NONE, "FILE_TOO_LARGE"),
    (400, {"error": True, "message": "Insufficient balance"}, Action.PAUSE, Scope.PRODUCT,
     "NOT_ENOUGH_CREDITS"),
    (400, {"error": True, "message": "Spam pattern: too many"}, Action.DEFER, Scope.TEXT,
     "SPAM_PATTERN"),
    (400, {"error": True, "message": "Limit reached for destination"}, Action.DEFER,
     Scope.RECIPIENT, "LIMIT_REACHED_FOR_DESTINATION"),
    (400, {"error": True, "message": "Balance expired"}, Action.PAUSE, Scope.PRODUCT,
     "BALANCE_EXPIRED"),
    (400, {"error": True, "message": "Something else"}, Action.DEAD, Scope.NONE, "BAD_REQUEST"),
    (400, "<html>Bad Request</html>", Action.PAUSE, Scope.ACCOUNT, "UNREADABLE_ERROR"),
    (401, {"error": True, "message": "Invalid API Key"}, Action.PAUSE, Scope.PRODUCT,
     "UNAUTHORIZED"),
    (403, "", Action.PAUSE, Scope.PRODUCT, "FORBIDDEN"),
    (404, {"detail": "Not Found"}, Action.PAUSE, Scope.ACCOUNT, "NOT_FOUND"),
    (405, {"detail": "Method Not Allowed"}, Action.PAUSE, Scope.ACCOUNT, "METHOD_NOT_ALLOWED"),
    (413, "<html>too large</html>", Action.DEAD, Scope.NONE, "PAYLOAD_TOO_LARGE"),
    (422, DETAIL_422, Action.DEAD, Scope.NONE, "VALIDATION_ERROR"),
    (200, SENDER_400, Action.PAUSE, Scope.SENDER, "INVALID_WA_SENDER"),
    (200, {"error": True, "message": "odd"}, Action.DEAD, Scope.NONE, "BAD_REQUEST"),
])
def test_send_error_replies_follow_the_v1_table(
    status: int, body: object, action: Action, scope: Scope, name: str
) -> None:
    result = client_for(Recorder(body, status)).send_wa(DEST, "hi")
    assert (result.status.action, result.status.scope, result.status.name) == (
        action, scope, name)
    assert result.status.code == (400 if status == 200 else status)
    assert result.message_id is None


def test_422_names_the_refused_field_and_the_providers_words() -> None:
    result = client_for(Recorder(DETAIL_422, 422)).send_wa(DEST, "hi")
    assert "'destination'" in result.status.meaning
    assert "Invalid destination format" in result.status.meaning


def test_429_raises_throttled_with_retry_after() -> None:
    rec = Recorder({"error": True, "message": "Too many requests"}, 429, {"Retry-After": "3"})
    with pytest.raises(ProviderThrottled) as caught:
        client_for(rec).send_wa(DEST, "hi")
    assert (caught.value.action, caught.value.retry_after_s) == (Action.RETRY, 3.0)


@pytest.mark.parametrize(("status", "action"), [
    (500, Action.RETRY), (502, Action.RETRY), (503, Action.RETRY), (504, Action.UNKNOWN),
    (408, Action.RETRY), (302, Action.PAUSE), (409, Action.PAUSE),
])
def test_other_statuses_raise_as_on_the_legacy_path(status: int, action: Action) -> None:
    with pytest.raises(ProviderHTTPError) as caught:
        client_for(Recorder("oops", status)).send_wa(DEST, "hi")
    assert caught.value.action == action


@pytest.mark.parametrize("body", [
    "", "<html>gateway</html>", '{"error":false,"data":{"ref_no":"0080', "[]",
    {"error": False, "data": {}}, {"error": False, "data": None},
])
def test_an_unreadable_2xx_on_a_send_is_unknown(body: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        client_for(Recorder(body)).send_wa(DEST, "hi")
    assert caught.value.action == Action.UNKNOWN


@pytest.mark.parametrize(("exc", "error", "action"), [
    (httpx.ConnectError("refused"), RequestNotSent, Action.RETRY),
    (httpx.ConnectTimeout("slow"), RequestNotSent, Action.RETRY),
    (httpx.ReadTimeout("slow"), OutcomeUnknown, Action.UNKNOWN),
    (httpx.RemoteProtocolError("dropped"), OutcomeUnknown, Action.UNKNOWN),
])
def test_transport_failures_on_a_send(
    exc: Exception, error: type[NusaSMSError], action: Action
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(error) as caught:
        client_for(fail).send_wa(DEST, "hi")
    assert caught.value.action == action


def test_a_dropped_reply_on_a_query_is_retried_not_unknown() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    with pytest.raises(ReplyLost) as caught:
        client_for(fail).wa_status(REF)
    assert caught.value.action == Action.RETRY


def test_balance_reads_both_products() -> None:
    rec = Recorder(OK_BALANCE)
    balances = client_for(rec).balance()
    assert (rec.requests[0].method, str(rec.requests[0].url)) == ("GET", BASE + "/balance")
    assert (balances.sms.value, balances.sms.expires) == (Decimal(1250), date(2027, 1, 31))
    assert (balances.wa.value, balances.wa.expires) == (Decimal("30.5"), date(2026, 12, 31))


@pytest.mark.parametrize("data", [{"sms_balance": 1}, {"sms_balance": "x", "wa_balance": 1}])
def test_a_balance_without_both_numbers_is_a_retried_protocol_error(data: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        client_for(Recorder({"error": False, "data": data})).balance()
    assert caught.value.action == Action.RETRY


def test_check_key_reads_the_ids_and_a_wrong_key_pauses_wa() -> None:
    info = client_for(Recorder(OK_KEY)).check_key()
    assert (info.userid, info.id_person, info.id_client) == ("demo", "12", "34")
    with pytest.raises(ProviderRejected) as caught:
        client_for(Recorder({"error": True, "message": "Invalid API Key"}, 401)).check_key()
    assert (caught.value.action, caught.value.status.scope) == (Action.PAUSE, Scope.PRODUCT)


def _status_body(**fields: object) -> dict[str, object]:
    data = {"destination": DEST, "ref_no": REF, "status": "D", "sent_date": "2026-01-01T10:00:00",
            "delivered_date": None, "read_date": None, **fields}
    return {"error": False, "error_code": 0, "message": "Message data", "data": data}


@pytest.mark.parametrize(("fields", "state", "final"), [
    ({"status": "P"}, DeliveryState.PENDING, False),
    ({"status": "D", "delivered_date": "2026-01-01T10:00:05"}, DeliveryState.DELIVERED, False),
    ({"status": "S", "delivered_date": "2026-01-01T10:00:05"}, DeliveryState.DELIVERED, False),
    ({"status": "D", "read_date": "2026-01-01T10:01:00"}, DeliveryState.READ, True),
    ({"status": "X", "read_date": "2026-01-01T10:01:00"}, DeliveryState.READ, True),
    ({"status": "R"}, DeliveryState.DELIVERED, False),
    ({"status": "U"}, DeliveryState.UNDELIVERED, True),
    ({"status": "X"}, DeliveryState.UNKNOWN_LETTER, False),
])
def test_wa_status_fields_decide_not_the_letter(
    fields: dict[str, object], state: DeliveryState, final: bool
) -> None:
    rec = Recorder(_status_body(**fields))
    status = client_for(rec).wa_status(REF)
    assert str(rec.requests[0].url) == f"{BASE}/whatsapp/status/{REF}"
    assert (status.ref_no, status.state, status.final) == (REF, state, final)
    assert status.sent_date == "2026-01-01T10:00:00"


def test_wa_status_404_in_the_envelope_is_retried_a_bare_404_pauses() -> None:
    with pytest.raises(ProviderRejected) as caught:
        client_for(Recorder({"error": True, "message": "Message not found"}, 404)).wa_status(REF)
    assert caught.value.action == Action.RETRY
    with pytest.raises(ProviderRejected) as caught:
        client_for(Recorder({"detail": "Not Found"}, 404)).wa_status(REF)
    assert (caught.value.action, caught.value.status.scope) == (Action.PAUSE, Scope.ACCOUNT)


def test_wa_status_quotes_the_ref_no_into_the_path() -> None:
    rec = Recorder(_status_body())
    client_for(rec).wa_status("a/../b")
    assert rec.requests[0].url.raw_path.endswith(b"/whatsapp/status/a%2F..%2Fb")


def test_the_key_never_shows_in_repr_errors_or_results() -> None:
    echo = {"error": True, "message": f"bad key APIKey: {API_KEY}", "apikey": API_KEY}
    client = client_for(Recorder(echo, 401))
    assert API_KEY not in repr(client) and API_KEY not in repr(client.config)
    result = client.send_wa(DEST, "hi")
    assert API_KEY not in result.raw and API_KEY not in result.status.meaning
    for status in (401, 500, 429):
        with pytest.raises(NusaSMSError) as caught:
            client_for(Recorder(echo, status)).balance()
        assert API_KEY not in str(caught.value)
        assert API_KEY.encode() not in pickle.dumps(caught.value)


@pytest.mark.parametrize(("url", "key"), [
    ("ftp://x.test", API_KEY), ("https://u:p@x.test", API_KEY), ("https://x.test", " "),
])
def test_config_refuses_bad_urls_and_an_empty_key(url: str, key: str) -> None:
    with pytest.raises(ValueError):
        V1Config(url, key)


def test_lookup_v1_is_case_and_space_tolerant() -> None:
    row = lookup_v1(400, "  invalid   WA sender ")
    assert (row.action, row.scope) == (Action.PAUSE, Scope.SENDER)


def test_a_refused_sender_the_message_named_kills_only_that_message() -> None:
    named = client_for(Recorder(SENDER_400, 400), sender="6281100000000").send_wa(
        DEST, "hi", sender="6281100000009")
    assert (named.status.action, named.status.scope) == (Action.DEAD, Scope.NONE)
    default = client_for(Recorder(SENDER_400, 400), sender="6281100000000").send_wa(
        DEST, "hi", sender="6281100000000")  # the configured default, named: still the lane's
    assert (default.status.action, default.status.scope) == (Action.PAUSE, Scope.SENDER)
