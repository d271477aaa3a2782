"""The status table, row by row against docs/design.md, and the delivery letters of §1.7."""

from __future__ import annotations

import pytest

from worker.nusasms.status import (
    STATUS_TABLE,
    Action,
    DeliveryState,
    Scope,
    lookup,
    lookup_letter,
)

D, R, P, F, X, U = (Action.DONE, Action.RETRY, Action.PAUSE, Action.DEFER, Action.DEAD,
                    Action.UNKNOWN)

# Written out again from docs/nusasms-api.md §1.5 and docs/design.md, not derived from the code.
EXPECTED: dict[int, tuple[str, Action]] = {
    0: ("ALL_RECIPIENTS_PROCESSED", D),
    -1: ("SEND_ERROR", R),
    -2: ("NOT_ENOUGH_CREDITS", P),
    -3: ("NETWORK_NOTCOVERED", X),
    -5: ("INVALID_USER_OR_PASS", P),
    -6: ("MISSING_DESTINATION_ADDRESS", X),
    -7: ("BALANCE_EXPIRED", P),
    -9: ("NO_ROUTE", X),
    -10: ("REJECTED", X),
    -11: ("INVALID_DESTINATION_ADDRESS", X),
    -12: ("MISSING_MESSAGE", X),
    -13: ("INVALID_DESTINATION_ADDRESS", X),
    -22: ("SYNTAX_ERROR", P),
    -23: ("ERROR_PROCESSING", R),
    -26: ("COMMUNICATION_ERROR", R),
    -27: ("INVALID_SENDDATETIME", X),
    -28: ("INVALID_DELIVERY_REPORT_PUSH_URL", X),
    -30: ("INVALID_CLIENT_APPID", X),
    -33: ("DUPLICATE_MESSAGEID", U),
    -34: ("SENDER_NOT_ALLOWED", P),
    -40: ("IP_ADDRESS_FORBIDDEN", P),
    -55: ("GROUP_NOT_FOUND", X),
    -77: ("SPAM_PATTERN", F),
    -78: ("LIMIT_REACHED_FOR_DESTINATION", F),
    -88: ("REJECTED_ROUTE", X),
    -99: ("GENERAL_ERROR", R),
}


# How far each pause or deferral reaches (issue 12: circuits per product and cause).
EXPECTED_SCOPE: dict[int, Scope] = {
    -2: Scope.PRODUCT, -7: Scope.PRODUCT,  # one product's wallet (SMS with OTP, or WA)
    -5: Scope.ACCOUNT, -40: Scope.ACCOUNT,  # credentials, IP: nothing can go
    -22: Scope.ACCOUNT,  # kirim built a bad request: a bug that hits everything
    -34: Scope.SENDER,  # the lanes that use the configured sender
    -77: Scope.TEXT, -78: Scope.RECIPIENT,
}


def test_table_has_exactly_the_documented_codes() -> None:
    assert set(STATUS_TABLE) == set(EXPECTED)


@pytest.mark.parametrize(("code", "name", "action"), [(c, n, o) for c, (n, o) in EXPECTED.items()])
def test_each_code_has_its_name_and_outcome(code: int, name: str, action: Action) -> None:
    info = lookup(code)
    assert (info.code, info.name, info.action) == (code, name, action)
    assert info.meaning
    assert STATUS_TABLE[code] is info


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_code_has_its_scope(code: int) -> None:
    assert lookup(code).scope == EXPECTED_SCOPE.get(code, Scope.NONE)
    if lookup(code).action in (P, F):
        assert code in EXPECTED_SCOPE, "every pause and deferral says how far it reaches"


def test_minus_10_on_an_otp_send_means_no_otp_route() -> None:
    assert lookup(-10).action == X  # OTP-looking text without otp=Y: this message only
    on_otp = lookup(-10, otp=True)
    assert (on_otp.action, on_otp.scope, on_otp.name) == (P, Scope.OTP_ROUTE, "REJECTED")
    assert lookup(-2, otp=True) is lookup(-2)  # other codes mean the same on either route


@pytest.mark.parametrize("code", [1, -4, -8, -100, 999_999, -2_147_483_648])
def test_unknown_code_is_dead_and_keeps_its_value(code: int) -> None:
    info = lookup(code)
    assert info.action is Action.DEAD
    assert info.name == "UNKNOWN_CODE"
    assert info.code == code
    assert str(code) in info.meaning


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        STATUS_TABLE[1] = lookup(0)  # type: ignore[index]


def test_outcomes_are_plain_strings() -> None:
    assert {str(o) for o in Action} == {"done", "retry", "pause", "defer", "dead", "unknown"}


@pytest.mark.parametrize(
    ("letter", "state", "final"),
    [
        ("D", DeliveryState.DELIVERED, True),
        ("U", DeliveryState.UNDELIVERED, True),
        ("F", DeliveryState.FAILED, True),
        ("R", DeliveryState.REJECTED, True),
        ("E", DeliveryState.EXPIRED, True),
        ("P", DeliveryState.PENDING, False),
        ("S", DeliveryState.PENDING, False),
        ("Q", DeliveryState.PENDING, False),
        ("A", DeliveryState.PENDING, False),
        ("d", DeliveryState.DELIVERED, True),
        (" D ", DeliveryState.DELIVERED, True),
        ("X", DeliveryState.UNKNOWN_LETTER, False),
        ("0", DeliveryState.UNKNOWN_LETTER, False),
        ("DELIVRD", DeliveryState.UNKNOWN_LETTER, False),
        ("", DeliveryState.UNKNOWN_LETTER, False),
    ],
)
def test_delivery_letters(letter: str, state: DeliveryState, final: bool) -> None:
    assert lookup_letter(letter) == (state, final)
