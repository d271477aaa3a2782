"""Recipient normalisation: hand-checked cases, then properties over generated numbers."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from producer.core import recipient
from producer.core.errors import InvalidMessage
from producer.core.recipient import mask_recipient, normalize_recipient

# Every expected value below was worked out by hand from the number's country code and
# national number, not copied from the function's output.
VALID = [
    # One Indonesian mobile (0812-3456-7890) in every way people write it.
    ("0812-3456-7890", "6281234567890"),
    ("+62 812 3456 7890", "6281234567890"),
    ("6281234567890", "6281234567890"),
    ("(0812) 3456 7890", "6281234567890"),
    ("+62 (812) 3456-7890", "6281234567890"),
    ("(+62) 812-3456-7890", "6281234567890"),
    ("+62 (0) 812 3456 7890", "6281234567890"),
    ("62081234567890", "6281234567890"),  # 62 with the trunk 0 left in
    ("0062 812 3456 7890", "6281234567890"),
    ("0812.3456.7890", "6281234567890"),
    ("  0812 3456 7890\n", "6281234567890"),
    ("+62\u00a0812\u00a03456\u00a07890", "6281234567890"),  # NBSP pasted from a web page
    ("0812\u20133456\u20137890", "6281234567890"),  # en dashes
    # Other Indonesian lengths and a Jakarta fixed line (021).
    ("08123456789", "628123456789"),
    ("0811234567", "62811234567"),
    ("021 5551234", "62215551234"),
    ("+62 21 5551234", "62215551234"),
    ("6221 5551234", "62215551234"),  # bare digits are international: Jakarta, not 0622
    # Other countries, in international form.
    ("+65 9123 4567", "6591234567"),
    ("0065 9123 4567", "6591234567"),
    ("6591234567", "6591234567"),
    ("+1 650 253 0000", "16502530000"),
    ("16502530000", "16502530000"),
    ("+44 20 7946 0958", "442079460958"),
    ("+60 12-345 6789", "60123456789"),
    ("+81 3 1234 5678", "81312345678"),
]

INVALID = [
    "",
    "   ",
    "()",
    "12345",
    "0812",
    "abc",
    "0812-3456-78ab",
    "1-800-FLOWERS",
    "+62 812 3456 7890 ext 12",
    "tel:+6281234567890",
    "+081234567890",  # + then a trunk 0: no country code starts with 0
    "+6281234567",  # too short for an Indonesian mobile
    "+628123456789012",  # too long
    "08123456789012",
    "++6281234567890",
    "0812+34567890",
    "6281234567890+",
    "０８１２３４５６７８９０",  # full-width digits
    "٠٨١٢٣٤٥٦٧٨٩٠",  # Arabic-Indic digits
    "0812²3456789",
    "0812/3456/7890",
    "0812_3456_7890",
    "0812\x003456789",
    "001 65 9123 4567",  # carrier IDD 001 is not recognised: +1 659… is not valid
    "0" * 30,
    "9" * 65,
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_numbers_normalise_to_the_provider_form(raw: str, expected: str) -> None:
    assert normalize_recipient(raw) == expected


@pytest.mark.parametrize("raw", INVALID)
def test_invalid_numbers_are_refused_on_field_to(raw: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        normalize_recipient(raw)
    assert info.value.field == "to"
    assert info.value.value == raw


@pytest.mark.parametrize("raw", [None, 6281234567890, 6.2e12, b"081234567890", ["0812"]])
def test_non_strings_are_refused(raw: object) -> None:
    with pytest.raises(InvalidMessage, match=type(raw).__name__) as info:
        normalize_recipient(raw)  # type: ignore[arg-type]
    assert info.value.value is raw


def test_error_shows_the_input_and_the_expected_form() -> None:
    with pytest.raises(InvalidMessage) as info:
        normalize_recipient("12345")
    message = str(info.value)
    assert message.startswith("to: '12345' is not a valid phone number")
    assert "6281234567890" in message and "+6281234567890" in message
    assert "081234567890" in message
    assert isinstance(info.value, ValueError)


def test_error_hints_at_a_dropped_leading_zero() -> None:
    # Read as +852 1234 5678: Hong Kong numbers never start with 1, so it is refused and the
    # hint for the Indonesian slip (0852… written without its 0) applies.
    with pytest.raises(InvalidMessage, match="085212345678 or 6285212345678"):
        normalize_recipient("852-1234-5678")


def test_error_cuts_a_long_input_short() -> None:
    with pytest.raises(InvalidMessage) as info:
        normalize_recipient("x" * 1000)
    assert len(str(info.value)) < 300
    assert info.value.value == "x" * 1000


def test_indonesian_mobile_without_0_or_62_reads_as_japan() -> None:
    # The documented price of reading bare digits as international, like the provider:
    # 812-3456-7890 is +81 2-3456-7890, a valid Japanese number.
    assert normalize_recipient("812-3456-7890") == "81234567890"


def test_another_default_region_reads_national_numbers() -> None:
    assert normalize_recipient("020 7946 0958", "GB") == "442079460958"
    assert normalize_recipient("+62 812 3456 7890", "GB") == "6281234567890"


def test_unknown_default_region_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="'XX'") as info:
        normalize_recipient("0812 3456 7890", "XX")
    assert not isinstance(info.value, InvalidMessage)


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("6281234567890", "628123****890"),  # brief's example: 6 kept, 4 hidden, 3 kept
        ("62812345678901", "628123*****901"),
        ("628123456789", "62812****789"),
        ("6591234567", "659****567"),
        ("12345678", "1****678"),
        ("1234567", "*******"),
        ("", ""),
    ],
)
def test_mask_recipient(number: str, masked: str) -> None:
    assert mask_recipient(number) == masked


# --- properties ---------------------------------------------------------------------------

REGIONS = ["ID", "SG", "MY", "US", "GB", "AU", "JP", "IN", "DE", "NL", "SA", "PH"]
TYPES = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]


@st.composite
def valid_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """A valid number: a region's example number with its last digits redrawn."""
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(TYPES)))
    assert example is not None  # every region in REGIONS has both example types
    national = str(example.national_number)
    tail = draw(st.text("0123456789", min_size=4, max_size=4))
    number = phonenumbers.parse(f"+{example.country_code}{national[:-4]}{tail}")
    assume(phonenumbers.is_valid_number(number))
    return number


@st.composite
def indonesian_mobiles(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """A valid Indonesian mobile: a real operator prefix and random subscriber digits."""
    prefix = draw(st.sampled_from(["811", "812", "813", "821", "852", "857", "878", "896"]))
    rest = draw(st.text("0123456789", min_size=6, max_size=9))
    number = phonenumbers.parse(f"+62{prefix}{rest}")
    assume(phonenumbers.is_valid_number(number))
    return number


def _e164_digits(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


@st.composite
def written_forms(draw: st.DrawFn, number: phonenumbers.PhoneNumber) -> str:
    """One of the ways a person or a system might write `number`."""
    digits = _e164_digits(number)
    forms = [
        "+" + digits,
        "00" + digits,
        digits,
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
    ]
    if number.country_code == 62:  # national forms only read as such in the default region
        forms.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
        forms.append("0" + str(number.national_number))
    form = draw(st.sampled_from(forms))
    return _sprinkle(draw, form)


def _sprinkle(draw: st.DrawFn, form: str) -> str:
    """`form` with random separators between its characters and spaces around it."""
    separators = st.sampled_from(["", "", "", " ", "-", ".", "\u00a0"])
    chars = [form[0], *(draw(separators) + ch for ch in form[1:])]
    return draw(st.sampled_from(["", " "])) + "".join(chars) + draw(st.sampled_from(["", "\t"]))


any_valid_number = st.one_of(valid_numbers(), indonesian_mobiles())
Case = tuple[phonenumbers.PhoneNumber, str, str]
# A number and two independent ways of writing it.
number_written_twice = any_valid_number.flatmap(
    lambda n: st.tuples(st.just(n), written_forms(n), written_forms(n))
)


@settings(deadline=None)
@given(number_written_twice)
def test_formatting_variants_normalise_equal(case: Case) -> None:
    number, one, other = case
    assert normalize_recipient(one) == normalize_recipient(other) == _e164_digits(number)


@settings(deadline=None)
@given(any_valid_number)
def test_normalise_is_idempotent_on_valid_numbers(number: phonenumbers.PhoneNumber) -> None:
    once = normalize_recipient("+" + _e164_digits(number))
    assert normalize_recipient(once) == once


@settings(deadline=None)
@given(st.one_of(st.text(max_size=30), st.text("0123456789+-() ", max_size=20)))
def test_anything_is_refused_or_comes_out_canonical(raw: str) -> None:
    try:
        out = normalize_recipient(raw)
    except InvalidMessage as exc:
        assert exc.field == "to"
        return
    assert re.fullmatch(r"[1-9][0-9]{5,14}", out)
    assert normalize_recipient(out) == out


# Letters, symbols and controls, less the ones that are separators or the leading plus.
odd_characters = st.characters(
    categories=["Lu", "Ll", "Lo", "So", "Sm", "Cc"],
    exclude_characters="+\u2212" + "".join(chr(c) for c in range(0x2000) if chr(c).isspace()),
)


@given(st.text(max_size=10), odd_characters, st.text(max_size=10))
def test_a_letter_or_symbol_never_passes(before: str, odd: str, after: str) -> None:
    with pytest.raises(InvalidMessage):
        normalize_recipient(before + odd + after)


@given(st.sampled_from(["", "+", "00", "0"]), st.text("0123456789", max_size=5))
def test_too_few_digits_never_pass(prefix: str, digits: str) -> None:
    with pytest.raises(InvalidMessage):
        normalize_recipient(prefix + digits)


@given(st.sampled_from(["", "+", "00", "0"]), st.text("0123456789", min_size=18, max_size=40))
def test_too_many_digits_never_pass(prefix: str, digits: str) -> None:
    with pytest.raises(InvalidMessage):
        normalize_recipient(prefix + digits)


@given(st.text("0123456789", max_size=20))
def test_mask_hides_at_least_four_and_shows_at_most_nine(number: str) -> None:
    masked = mask_recipient(number)
    assert len(masked) == len(number)
    assert masked.count("*") >= min(4, len(number))
    assert len(number) - masked.count("*") <= 9


def full_parse(compact: str, region: str) -> str | None:
    """What phonenumbers alone answers for a compact number (the path before the fast one)."""
    text, parse_region = recipient._parseable(compact, region)
    try:
        number = phonenumbers.parse(text, parse_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


@settings(max_examples=3000)
@given(st.sampled_from(["+62", "0062", "62", "0"]), st.sampled_from(["8", "8", "8", "08", "9"]),
       st.text("0123456789", min_size=6, max_size=13), st.sampled_from(["ID", "SG"]))
def test_indonesian_mobile_fast_path_agrees_with_phonenumbers(
        prefix: str, lead: str, digits: str, region: str) -> None:
    compact = prefix + lead + digits
    fast = recipient._indonesian_mobile(compact, region)
    if fast is not None:
        assert fast == full_parse(compact, region), compact
    event("fast path" if fast is not None else "full parse")
    try:
        assert normalize_recipient(compact, region) == full_parse(compact, region)
    except InvalidMessage:
        assert full_parse(compact, region) is None, compact
