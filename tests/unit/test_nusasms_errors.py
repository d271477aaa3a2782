"""The exception tree and the httpx boundary: every httpx error mapped, no password leaked."""

from __future__ import annotations

import inspect
import pickle
from datetime import UTC, datetime

import httpx
import pytest

from worker.nusasms import errors
from worker.nusasms.errors import (
    ClientMisconfigured,
    NusaSMSError,
    OutcomeUnknown,
    ProtocolError,
    ProviderHTTPError,
    ProviderRejected,
    ProviderThrottled,
    ReplyLost,
    RequestNotSent,
    excerpt,
    scrub,
)
from worker.nusasms.status import Action, lookup
from worker.nusasms.transport import (
    HTTPX_STAGES,
    Stage,
    http_status_action,
    httpx_errors,
    parse_retry_after,
    translate_httpx_error,
)

PASSWORD = "Sup3r-S3cret&x"


def _httpx_exception_classes() -> set[type[Exception]]:
    """Every exception class httpx exposes or defines under HTTPError, plus InvalidURL."""
    found: set[type[Exception]] = {httpx.InvalidURL}
    for obj in vars(httpx).values():
        if inspect.isclass(obj) and issubclass(obj, httpx.HTTPError):
            found.add(obj)
    todo = [httpx.HTTPError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("httpx"):
            found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_httpx_exception_class_is_mapped_explicitly() -> None:
    classes = _httpx_exception_classes()
    assert len(classes) >= 22  # the walk itself works
    unmapped = sorted(c.__name__ for c in classes if c not in HTTPX_STAGES)
    assert not unmapped, f"map these in worker/nusasms/transport.py HTTPX_STAGES: {unmapped}"


def _raise(exc_type: type[Exception]) -> Exception:
    if exc_type is httpx.HTTPStatusError:
        request = httpx.Request("POST", "https://api.nusasms.com/api/v3/sendsms/plain")
        response = httpx.Response(503, request=request)
        return httpx.HTTPStatusError("503", request=request, response=response)
    return exc_type("boom")


# (httpx class, our class on a send, our class on a CREDITS/DR query)
EXPECTED_TRANSLATION = [
    (httpx.ConnectError, RequestNotSent, RequestNotSent),
    (httpx.ConnectTimeout, RequestNotSent, RequestNotSent),
    (httpx.PoolTimeout, RequestNotSent, RequestNotSent),
    (httpx.WriteTimeout, RequestNotSent, RequestNotSent),
    (httpx.WriteError, RequestNotSent, RequestNotSent),
    (httpx.ReadTimeout, OutcomeUnknown, ReplyLost),
    (httpx.ReadError, OutcomeUnknown, ReplyLost),
    (httpx.RemoteProtocolError, OutcomeUnknown, ReplyLost),
    (httpx.CloseError, OutcomeUnknown, ReplyLost),
    (httpx.DecodingError, OutcomeUnknown, ReplyLost),
    (httpx.TimeoutException, OutcomeUnknown, ReplyLost),
    (httpx.NetworkError, OutcomeUnknown, ReplyLost),
    (httpx.TransportError, OutcomeUnknown, ReplyLost),
    (httpx.RequestError, OutcomeUnknown, ReplyLost),
    (httpx.HTTPError, OutcomeUnknown, ReplyLost),
    (httpx.ProtocolError, OutcomeUnknown, ReplyLost),
    (httpx.LocalProtocolError, ClientMisconfigured, ClientMisconfigured),
    (httpx.UnsupportedProtocol, ClientMisconfigured, ClientMisconfigured),
    (httpx.ProxyError, ClientMisconfigured, ClientMisconfigured),
    (httpx.TooManyRedirects, ClientMisconfigured, ClientMisconfigured),
    (httpx.InvalidURL, ClientMisconfigured, ClientMisconfigured),
    (httpx.HTTPStatusError, ProviderHTTPError, ProviderHTTPError),
]


def test_translation_table_covers_every_httpx_class() -> None:
    assert {row[0] for row in EXPECTED_TRANSLATION} == _httpx_exception_classes()


@pytest.mark.parametrize(("httpx_type", "on_send", "on_query"), EXPECTED_TRANSLATION)
def test_translation(
    httpx_type: type[Exception], on_send: type[NusaSMSError], on_query: type[NusaSMSError]
) -> None:
    sent = translate_httpx_error(_raise(httpx_type), "send_sms", is_send=True)
    queried = translate_httpx_error(_raise(httpx_type), "credits", is_send=False)
    assert type(sent) is on_send
    assert type(queried) is on_query
    assert sent.operation == "send_sms"
    assert httpx_type.__name__ in str(sent) or httpx_type is httpx.HTTPStatusError


@pytest.mark.parametrize(
    ("cls", "action"),
    [
        (RequestNotSent, Action.RETRY),
        (OutcomeUnknown, Action.UNKNOWN),
        (ReplyLost, Action.RETRY),
        (ClientMisconfigured, Action.PAUSE),
    ],
)
def test_outcome_follows_from_the_class(cls: type[NusaSMSError], action: Action) -> None:
    assert cls("send_sms", "x").action is action


def test_a_subclass_httpx_might_add_inherits_its_parents_stage() -> None:
    class SlowHandshake(httpx.ConnectTimeout):
        pass

    assert isinstance(translate_httpx_error(SlowHandshake("x"), "s", is_send=True), RequestNotSent)


def test_boundary_translates_and_chains() -> None:
    cause = httpx.ReadTimeout("timed out")
    with pytest.raises(OutcomeUnknown) as caught, httpx_errors("send_sms", is_send=True):
        raise cause
    assert caught.value.__cause__ is cause
    assert "do not resend" in str(caught.value)


def test_boundary_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), httpx_errors("send_sms", is_send=True):
        raise KeyError("not ours")


def test_translated_messages_never_carry_the_password() -> None:
    leaky = f"https://demo:{PASSWORD}@host/x?password={PASSWORD}"
    for httpx_type, _, _ in EXPECTED_TRANSLATION:
        if httpx_type is httpx.HTTPStatusError:
            continue
        exc = translate_httpx_error(
            httpx_type(leaky), "send_sms", is_send=True, secrets=(PASSWORD,)
        )
        assert PASSWORD not in str(exc) and PASSWORD not in repr(exc)
        assert "Sup3r" not in str(exc)


@pytest.mark.parametrize(
    ("status", "on_send", "on_query"),
    [
        (500, Action.RETRY, Action.RETRY),
        (502, Action.RETRY, Action.RETRY),
        (503, Action.RETRY, Action.RETRY),
        (504, Action.UNKNOWN, Action.RETRY),
        (599, Action.RETRY, Action.RETRY),
        (408, Action.RETRY, Action.RETRY),
        (429, Action.RETRY, Action.RETRY),
        (400, Action.PAUSE, Action.PAUSE),
        (401, Action.PAUSE, Action.PAUSE),
        (403, Action.PAUSE, Action.PAUSE),
        (404, Action.PAUSE, Action.PAUSE),
        (405, Action.PAUSE, Action.PAUSE),
        (301, Action.PAUSE, Action.PAUSE),
        (307, Action.PAUSE, Action.PAUSE),
    ],
)
def test_http_status_actions(status: int, on_send: Action, on_query: Action) -> None:
    assert http_status_action(status, is_send=True) is on_send
    assert http_status_action(status, is_send=False) is on_query


NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("30", 30.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("Sun, 01 Jun 2025 12:01:00 GMT", 60.0),
        ("Sun, 01 Jun 2025 11:00:00 GMT", 0.0),
        ("soon", None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def _samples() -> list[NusaSMSError]:
    return [
        RequestNotSent("send_sms", "ConnectError: refused"),
        OutcomeUnknown("send_sms", "ReadTimeout: timed out"),
        ReplyLost("credits", "ReadTimeout: timed out"),
        ClientMisconfigured("send_sms", "UnsupportedProtocol"),
        ProviderHTTPError("send_sms", 502, action=Action.RETRY, excerpt="<html>"),
        ProviderThrottled("send_sms", 429, action=Action.RETRY, retry_after_s=3.0),
        ProtocolError("send_sms", "empty body", "", action=Action.UNKNOWN),
        ProviderRejected("credits", lookup(-5)),
    ]


@pytest.mark.parametrize("exc", _samples(), ids=lambda e: type(e).__name__)
def test_errors_survive_pickle(exc: NusaSMSError) -> None:
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert str(copy) == str(exc)
    assert copy.action is exc.action
    assert copy.__dict__ == exc.__dict__


def test_the_docstring_tree_names_every_error() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, NusaSMSError)
    ]
    assert len(classes) == 9
    for cls in classes:
        assert cls.__name__ in (errors.__doc__ or "")


def test_throttled_is_an_http_error_with_retry_after() -> None:
    exc = ProviderThrottled("send_sms", 429, action=Action.RETRY, retry_after_s=12.0)
    assert isinstance(exc, ProviderHTTPError)
    assert exc.retry_after_s == 12.0
    assert "Retry-After 12s" in str(exc)


def test_rejected_takes_its_outcome_from_the_table() -> None:
    assert ProviderRejected("credits", lookup(-5)).action is Action.PAUSE
    assert ProviderRejected("credits", lookup(-1)).action is Action.RETRY


@pytest.mark.parametrize(
    "text",
    [
        f"user=demo&password={PASSWORD}&GSM=62811",
        "user=demo&password=Sup3r-S3cret%26x&GSM=62811",
        "user=demo&password=Sup3r-S3cret%26x",
        f'{{"user": "demo", "password": "{PASSWORD}"}}',
        f"<user>demo</user><password>{PASSWORD}</password>",
        f"echo: {PASSWORD}",
    ],
)
def test_scrub_masks_the_password(text: str) -> None:
    assert "Sup3r" not in scrub(text, (PASSWORD,))


def test_scrub_masks_an_unknown_password_by_its_field_name() -> None:
    assert "hunter2" not in scrub("user=x&password=hunter2&GSM=1")
    assert "hunter2" not in scrub('{"pwd":"hunter2"}')


def test_excerpt_is_short_flat_and_scrubbed() -> None:
    body = "<html>\n  <body>" + "x" * 500 + f"password={PASSWORD}</body></html>"
    short = excerpt(body, (PASSWORD,))
    assert len(short) <= 200
    assert "\n" not in short
    # The secret straddling the cut must not leak its first half either.
    straddling = "y" * 190 + PASSWORD
    assert "Sup3" not in excerpt(straddling, (PASSWORD,))


def test_unclassified_failures_are_never_safe_to_resend() -> None:
    for base in (httpx.HTTPError, httpx.RequestError, httpx.TransportError, httpx.NetworkError):
        assert HTTPX_STAGES[base] is Stage.SENT
