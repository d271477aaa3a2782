"""NusaSMS API v1.0: HTTP status + body → kirim's action (pure data and one lookup).

API v1.0 answers errors with real HTTP codes and a JSON body (docs/nusasms-api.md §2):
`{"error":true,"message":"Invalid WA Sender",…}`, or FastAPI's `{"detail":[…]}` for a 422.
The status decides first, then the body's message. The HTTP codes of the documented error
bodies are our decision (§2: validation 422, sender and file 400, auth 401/403, rate 429).
Change a decision here and nowhere else.

429, 408 and 5xx are not in this table: they raise (`transport.error_for_status`), as on
the legacy path. A send's row is a result (`SendResult.status`); a query's row is raised as
a `ProviderRejected`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from worker.nusasms.status import Action, Scope, StatusInfo

_D, _R, _P, _X = Action.DONE, Action.RETRY, Action.PAUSE, Action.DEAD
_NONE, _ACC, _PROD, _SEND = Scope.NONE, Scope.ACCOUNT, Scope.PRODUCT, Scope.SENDER

ACCEPTED = StatusInfo(0, "ACCEPTED", "accepted", _D)

# HTTP statuses this table answers (anything else non-2xx raises ProviderHTTPError).
V1_HTTP_STATUSES = frozenset({400, 401, 403, 404, 405, 413, 422})

# Known messages of a 400 (or of a 2xx with "error": true), matched case-insensitively on
# their start: (prefix, name, meaning, action, scope).
_MESSAGES: tuple[tuple[str, str, str, Action, Scope], ...] = (
    ("invalid wa sender", "INVALID_WA_SENDER", "the WhatsApp sender is not one of the account's",
     _P, _SEND),
    ("file exceed limits", "FILE_TOO_LARGE", "the media file is over 512 KB", _X, _NONE),
    # Not documented [decision]: how v1.0 says the WA wallet is empty or expired.
    ("insufficient balance", "NOT_ENOUGH_CREDITS", "the product's balance is used up",
     _P, _PROD),
    ("balance expired", "BALANCE_EXPIRED", "the product's balance has expired", _P, _PROD),
    # Not documented either [decision]: the legacy -77 / -78 daily caps, as v1.0 words them.
    ("spam pattern", "SPAM_PATTERN", "too many identical messages to one recipient today",
     Action.DEFER, Scope.TEXT),
    ("limit reached for destination", "LIMIT_REACHED_FOR_DESTINATION",
     "too many messages to one number in 24 hours", Action.DEFER, Scope.RECIPIENT),
)

_BY_STATUS: Mapping[int, tuple[str, str, Action, Scope]] = MappingProxyType({
    # The key is for v1.0 only (SMS stays on the legacy API): stop WhatsApp, not SMS.
    401: ("UNAUTHORIZED", "the API key is missing or wrong: check KIRIM_NUSASMS_API_KEY",
          _P, _PROD),
    403: ("FORBIDDEN", "the API key may not do this (or the IP is not whitelisted)", _P, _PROD),
    # A route kirim calls does not exist or takes another method: KIRIM_NUSASMS_V1_URL or
    # kirim is wrong, and every message would hit it.
    404: ("NOT_FOUND", "no such route: check KIRIM_NUSASMS_V1_URL", _P, _ACC),
    405: ("METHOD_NOT_ALLOWED", "the route takes another method", _P, _ACC),
    413: ("PAYLOAD_TOO_LARGE", "the request body is too large", _X, _NONE),
    422: ("VALIDATION_ERROR", "the provider refused a field", _X, _NONE),
    # A 400 whose message is not known: the provider refused this message, and says why.
    400: ("BAD_REQUEST", "the provider refused the request", _X, _NONE),
})

# A 404 that comes in the v1.0 envelope is about the thing asked for (a ref_no the
# provider does not know yet), not the route: ask again later.
ENVELOPE_404 = StatusInfo(404, "REF_NOT_FOUND", "the provider does not know this ref_no", _R)


def lookup_v1(http_status: int, message: str = "", field: str | None = None) -> StatusInfo:
    """The row for an error reply: its HTTP status, the body's `message` and, for a 422,
    the refused field. A 2xx with `"error": true` is looked up as a 400."""
    code = http_status if http_status in V1_HTTP_STATUSES else 400
    said = " ".join(message.split())
    if code == 400:
        for prefix, name, meaning, action, scope in _MESSAGES:
            if said.lower().startswith(prefix):
                return StatusInfo(code, name, f"{meaning} ({said})", action, scope)
    name, meaning, action, scope = _BY_STATUS[code]
    if code == 422 and field:
        meaning = f"the provider refused field {field!r}"
    return StatusInfo(code, name, f"{meaning}: {said}" if said else meaning, action, scope)
