"""Bad input over real HTTP: thousands of random requests, never a 5xx, every refusal clear.

The examples run inside each test (hypothesis `@given` on an inner function) so they share one
live uvicorn process; each test stays under ~30 s on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox import segments as oracle

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=1500, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
GSM_EXTENSION = "^{}\\[~]|€\f"
TRICKY_TEXTS = [
    "Kode OTP " + GSM_EXTENSION,                      # every GSM extension char
    "Pesanan 👍🏽 sudah dikirim 🚚",                    # emoji (surrogate pairs in UCS-2)
    "مرحبا، طلبك في الطريق",                          # RTL Arabic
    "שלום \u202eabc\u202c",                            # RTL Hebrew with bidi overrides
    "nul\x00in the middle",
    "\x00",
    "a\r\nb\nc",
    "é" * 70, "é" * 71, "a" * 160, "a" * 161, "€" * 80,  # part boundaries
    " \t\n",
]
ODD_NUMBERS = ["0812-3456-7890", "+62 (812) 3456 7890", "62 812.3456.7890",
               "０８１２３４５６７８９０", "٠٨١٢٣٤٥٦٧٨٩٠",
               "+1 650 253 0000", "+", "", "0", "62", "628", "6281234567890" * 3,
               "+62812345678901234567", "6281234567890\x00", "tel:+6281234567890", "-6281234567890"]

valid_phones = st.builds(
    lambda prefix, digits, sep: prefix + sep.join([digits[:3], digits[3:7], digits[7:]]),
    st.sampled_from(["0812", "+62812", "62812", "+62 812", "0813"]),
    st.from_regex(r"[0-9]{8}", fullmatch=True), st.sampled_from(["", "-", " ", "."]))
phones = st.one_of(valid_phones, valid_phones, st.sampled_from(ODD_NUMBERS),
                   st.from_regex(r"[+0-9 ()\-.]{0,22}", fullmatch=True),
                   st.text(max_size=25))
texts = st.one_of(st.sampled_from(TRICKY_TEXTS), st.text(max_size=400),
                  st.text(alphabet=st.characters(codec="utf-8"), max_size=50))
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite_floats | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6)
channels = st.one_of(st.sampled_from(["sms", "wa", "otp"]),
                     st.sampled_from(["sms", "wa", "otp", "SMS", "fax", ""]), json_values)
messages = st.fixed_dictionaries(
    {"channel": channels, "to": st.one_of(phones, phones, json_values),
     "text": st.one_of(texts, texts, json_values)},
    optional={"idempotency_key": st.one_of(st.text(max_size=140), json_values),
              "callback_url": st.one_of(st.sampled_from(["http://x.test/cb", "ftp://x", ""]),
                                        st.text(max_size=30)),
              "send_at": st.one_of(finite_floats, st.text(max_size=5)),
              "otp_validity_s": json_values, "metadata": json_values, "group": json_values,
              "bogus": json_values})
bodies = st.one_of(messages, messages, messages, json_values)


def assert_refusal_or_accepted(reply: httpx.Response, body: Any = None) -> None:
    """A 2xx, or a 4xx whose JSON says code, field and message; never a 5xx."""
    assert reply.status_code < 500, (reply.status_code, reply.text[:300], repr(body)[:300])
    data = reply.json()
    if reply.status_code >= 400:
        error = data["error"]
        assert set(error) == {"code", "field", "message"}, data
        assert error["code"] and error["message"], data
        if reply.status_code == 422:
            assert error["field"], data
    elif reply.status_code == 202:
        _check_segments(data, body)


def _check_segments(data: dict[str, Any], body: Any) -> None:
    """Encoding and parts agree with the sandbox's independent counting (built from the spec)."""
    text = body["text"] if isinstance(body, dict) else None
    if not isinstance(text, str) or data["channel"] == "wa":
        return
    expected = oracle.count(text)
    assert (data["encoding"], data["parts"]) == (expected.encoding, expected.parts), text


def test_fuzz_send_one_never_5xx(api):
    seen = []

    @FUZZ
    @given(body=bodies, as_json=st.sampled_from([True, True, True, False]))
    def one(body: Any, as_json: bool) -> None:
        if as_json:
            reply = api.client.post("/v1/messages", json=body)
        else:  # the same as bytes, maybe cut: invalid JSON or invalid UTF-8
            raw = json.dumps(body).encode()[: max(1, len(json.dumps(body)) // 2)]
            reply = api.client.post("/v1/messages", content=raw + b"\xff",
                                    headers={"Content-Type": "application/json"})
        assert_refusal_or_accepted(reply, body)
        seen.append(reply.status_code)

    one()
    print(f"[fuzz] POST /v1/messages: {len(seen)} requests, {Counter(seen)}")


def test_fuzz_batch_never_5xx(api):
    seen = []

    @settings(FUZZ, max_examples=300)
    @given(items=st.one_of(st.lists(bodies, max_size=12), json_values))
    def batch(items: Any) -> None:
        reply = api.client.post("/v1/messages/batch", json={"messages": items})
        assert_refusal_or_accepted(reply)
        if reply.status_code in (200, 207):
            results = reply.json()["results"]
            assert [r["index"] for r in results] == list(range(len(items)))
            for item, result in zip(items, results, strict=True):
                if result["ok"]:
                    _check_segments(result, item)
                else:
                    assert result["error"]["code"] and result["error"]["message"], result
        seen.append(reply.status_code)

    batch()
    print(f"[fuzz] POST /v1/messages/batch: {len(seen)} requests, {Counter(seen)}")


dropin_params = st.dictionaries(
    st.one_of(st.sampled_from(["user", "username", "password", "GSM", "SMSText", "text",
                               "output", "unicode", "otp"]), st.text(max_size=8)),
    st.one_of(phones, texts, st.sampled_from(["json", "xml", "Y", "N", "shop"])), max_size=9)


def test_fuzz_dropin_always_answers_in_nusasms_shape(api):
    seen = []

    @settings(FUZZ, max_examples=1200)
    @given(params=dropin_params, authed=st.booleans(), post=st.booleans(),
           wa=st.booleans(), gsm=phones, text=texts)
    def dropin(params: dict[str, str], authed: bool, post: bool, wa: bool, gsm: str,
               text: str) -> None:
        if authed:
            params = {**params, "user": api.key_name, "password": api.key}
            params.setdefault("GSM", gsm)
            params.setdefault("text" if wa else "SMSText", text)
        path = "/api/v3/sendwa/plain" if wa else "/api/v3/sendsms/plain"
        reply = (api.anon.post(path, data=params) if post
                 else api.anon.get(path, params=params))
        assert reply.status_code == 200, (reply.status_code, reply.text[:300], params)
        status = _dropin_status(reply, params)
        assert status == "0" or status.startswith("-"), (status, params)
        if not authed and status == "0":
            assert params.get("password") == api.key
        seen.append(status)

    dropin()
    print(f"[fuzz] drop-in: {len(seen)} requests, statuses {Counter(seen)}")


def _dropin_status(reply: httpx.Response, params: dict[str, str]) -> str:
    if params.get("output", "xml").lower() == "json":
        return str(reply.json()["results"][0]["status"])
    root = ET.fromstring(reply.content)  # must be well-formed XML
    return root.findtext("result/status") or ""


@pytest.mark.parametrize("text", TRICKY_TEXTS)
@pytest.mark.parametrize("channel", ["sms", "wa"])
def test_tricky_text_gets_the_right_encoding_or_a_clear_refusal(api, text, channel):
    reply = api.client.post("/v1/messages", json={"channel": channel, "to": "6281234567890",
                                                  "text": text})
    assert_refusal_or_accepted(reply, {"text": text})
    if not text.strip():
        assert reply.status_code == 422 and reply.json()["error"]["field"] == "text"


@pytest.mark.parametrize("number", ODD_NUMBERS)
def test_odd_number_is_normalised_or_refused_naming_to(api, number):
    reply = api.client.post("/v1/messages", json={"channel": "sms", "to": number, "text": "x"})
    assert_refusal_or_accepted(reply)
    if reply.status_code == 202:
        assert reply.json()["to"].isdigit() and reply.json()["to"].isascii()
    else:
        assert reply.json()["error"]["field"] == "to", reply.text


def read_http_reply(sock: socket.socket) -> str:
    """Head and body of one HTTP/1.1 reply (uvicorn may write them in separate packets)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return data.decode(errors="replace")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def test_ten_megabyte_body_is_refused_before_parsing(api):
    # Declared: the reply comes before the body is sent.
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 10485760\r\nAuthorization: Bearer "
                     + api.key.encode() + b"\r\n\r\n")
        reply = read_http_reply(sock)
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert '"body_too_large"' in reply
    # Chunked, no Content-Length: counted as it arrives.
    chunk = b"x" * 65536

    def stream() -> Iterator[bytes]:
        for _ in range(160):
            yield chunk

    try:
        reply = api.client.post("/v1/messages", content=stream(),
                                headers={"Content-Type": "application/json"})
    except httpx.TransportError:  # the server may close while we still write: not a 5xx
        return
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "body_too_large"
