"""SMS segment counting: hand-checked boundaries, the GSM table, then properties."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.core.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Segments,
    count_segments,
    is_gsm7,
    text_hash,
)
from sandbox import segments as sandbox_segments

KEY = b"test-hash-key-0123456789abcdefghijklmnop"
OTHER_KEY = b"another-hash-key-0123456789abcdefghijk"

CYR = "я"  # one UTF-16 unit, not GSM: forces UCS-2
EMOJI = "😀"  # U+1F600: a surrogate pair, 2 UTF-16 units

# (text, encoding, units, parts), all with the provider's newline rule on. Every row was
# counted by hand: units from the rules, parts as 1 up to 160/70, else ceil(units / 153|67)
# unless a 2-unit character straddles a part boundary (the "packing" rows say so).
HAND_CHECKED = [
    ("", "gsm7", 0, 0),  # nothing is sent: the provider answers -12 and charges nothing
    ("a", "gsm7", 1, 1),
    ("a" * 160, "gsm7", 160, 1),
    ("a" * 161, "gsm7", 161, 2),
    ("a" * 306, "gsm7", 306, 2),  # 2 × 153
    ("a" * 307, "gsm7", 307, 3),
    ("a" * 459, "gsm7", 459, 3),  # 3 × 153
    ("a" * 460, "gsm7", 460, 4),
    ("a" * 158 + "€", "gsm7", 160, 1),  # extension char lands exactly on 160
    ("a" * 159 + "€", "gsm7", 161, 2),  # ... and one past it
    ("a" * 304 + "{", "gsm7", 306, 2),
    ("a" * 305 + "{", "gsm7", 307, 3),
    ("€" * 80, "gsm7", 160, 1),
    # packing: 152 letters, then € (2) does not fit the 1 unit left: it opens part 2, whose
    # 153 units are full after 151 more letters, so the last letter opens part 3.
    ("a" * 152 + "€" + "a" * 152, "gsm7", 306, 3),
    ("a" * 151 + "€" + "a" * 153, "gsm7", 306, 2),  # € ends part 1 exactly: no waste
    ("a" * 152 + "€" + "a" * 7, "gsm7", 161, 2),  # € opens part 2 either way
    ("a" * 152 + "\n" + "a" * 152, "gsm7", 306, 3),  # a doubled newline packs like €
    ("€" * 81, "gsm7", 162, 2),
    ("^{}\\[~]|€", "gsm7", 18, 1),  # the nine printable extension chars, 2 each
    ("\f", "gsm7", 2, 1),  # form feed is in the extension table too
    ("a\nb", "gsm7", 4, 1),  # newline costs 2 by the provider's rule
    ("\n" * 80, "gsm7", 160, 1),
    ("\n" * 81, "gsm7", 162, 2),
    ("\r\n", "gsm7", 3, 1),  # CR is a basic character (1), LF costs 2
    ("Kode OTP Anda 123456. Jangan berikan kode ini kepada siapa pun.", "gsm7", 63, 1),
    ("Harga Rp10.000 @ toko; diskon 5% & ongkir $0 ¡hoy!", "gsm7", 50, 1),
    ("ΔΦΓΛΩΠΨΣΘΞ", "gsm7", 10, 1),  # the Greek capitals of the basic table
    ("Çà¿§¤", "gsm7", 5, 1),
    (CYR * 70, "ucs2", 70, 1),
    (CYR * 71, "ucs2", 71, 2),
    (CYR * 134, "ucs2", 134, 2),  # 2 × 67
    (CYR * 135, "ucs2", 135, 3),
    (CYR * 201, "ucs2", 201, 3),  # 3 × 67
    (CYR * 202, "ucs2", 202, 4),
    ("a" * 69 + CYR, "ucs2", 70, 1),  # one non-GSM char turns every char into 1 unit
    ("€" * 69 + CYR, "ucs2", 70, 1),  # ... extension chars too (140 GSM units would be 1)
    ("€" * 80 + CYR, "ucs2", 81, 2),
    (EMOJI, "ucs2", 2, 1),
    (EMOJI * 35, "ucs2", 70, 1),
    (EMOJI * 35 + "a", "ucs2", 71, 2),
    ("a" * 69 + EMOJI, "ucs2", 71, 2),
    ("a" * 159 + EMOJI, "ucs2", 161, 3),  # 161 / 67 = 2.4
    # packing: 66 + a pair does not fit 67, so the pair opens part 2 (2 + 65), 1 left over.
    (CYR * 66 + EMOJI + CYR * 66, "ucs2", 134, 3),
    (CYR * 65 + EMOJI + CYR * 67, "ucs2", 134, 2),  # the pair ends part 1 exactly
    ("Terima kasih 🙏", "ucs2", 15, 1),  # 13 + a surrogate pair
    ("👨‍👩‍👧", "ucs2", 8, 1),  # a ZWJ family: 3 pairs + 2 joiners
    ("a\nb" + CYR, "ucs2", 4, 1),  # the newline rule is GSM-only: 1 unit in UCS-2
    ("\ud800", "ucs2", 1, 1),  # a lone surrogate is one code unit
]

# One character each, outside GSM 7-bit; several look like GSM characters.
NOT_GSM = [
    "`",
    "ç",  # only the capital Ç is in the table
    "ê",
    "á",
    "Á",
    "∆",  # U+2206 increment, not Greek Δ
    "Α",  # Greek capital alpha, not Latin A
    "\u00a0",  # NBSP
    "\t",
    "’",  # curly apostrophe, as phones and word processors type it
    "“",
    "…",
    "e\u0301",  # e + combining acute: the decomposed é
    "\u200b",
    "€\u200d",
]


@pytest.mark.parametrize(("text", "encoding", "units", "parts"), HAND_CHECKED)
def test_hand_checked_counts(text: str, encoding: str, units: int, parts: int) -> None:
    assert count_segments(text) == Segments(encoding, units, parts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "units", "parts"),
    [
        ("a\nb", 3, 1),
        ("\n" * 81, 81, 1),
        ("\n" * 160, 160, 1),
        ("\n" * 161, 161, 2),
        ("\r\n", 2, 1),
        ("a" * 158 + "\n", 159, 1),
        ("€\n", 3, 1),
    ],
)
def test_newline_counts_once_when_the_rule_is_off(text: str, units: int, parts: int) -> None:
    assert count_segments(text, newline_counts_double=False) == Segments("gsm7", units, parts)


def test_newline_rule_boundary() -> None:
    # 159 letters + newline: 161 units (2 parts) under the provider's rule, 160 (1) without.
    text = "a" * 159 + "\n"
    assert count_segments(text) == Segments("gsm7", 161, 2)
    assert count_segments(text, newline_counts_double=False) == Segments("gsm7", 160, 1)


@pytest.mark.parametrize("char", NOT_GSM)
def test_characters_outside_gsm7(char: str) -> None:
    assert not is_gsm7("abc" + char)
    assert count_segments("abc" + char).encoding == "ucs2"


def test_gsm_tables_are_exact() -> None:
    # 128 codes minus the escape; 9 printable extension characters plus form feed.
    assert len(GSM7_BASIC) == 127
    assert frozenset("^{}\\[~]|€\f") == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION
    ascii_not_gsm = {chr(c) for c in range(0x80)} - GSM7_BASIC - GSM7_EXTENSION
    # ASCII that GSM lacks or moved to the extension table: the controls but LF and CR, and `.
    expected = {chr(c) for c in range(0x20) if chr(c) not in "\n\r\f"} | {"`", "\x7f"}
    assert ascii_not_gsm == expected
    assert {chr(c) for c in (0x394, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3)} < GSM7_BASIC
    assert {"\u0398", "\u039e", "\u00c7", "\u00a4", "\u00a7", "\u00a1", "\u00bf"} < GSM7_BASIC
    latin1 = set("£¥èéùìòØøÅåÆæßÉÄÖÑÜäöñüà")
    assert latin1 < GSM7_BASIC


def test_is_gsm7() -> None:
    assert is_gsm7("")
    assert is_gsm7("".join(sorted(GSM7_BASIC | GSM7_EXTENSION)))
    assert not is_gsm7("Halo 😀")


def test_segments_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        count_segments("a").parts = 2  # type: ignore[misc]


def test_text_hash_known_value() -> None:
    # Computed by hand: HMAC-SHA256(KEY, b"kirim/text-hash/v1" NUL "hello"), first 16 hex.
    expected = hmac.new(KEY, b"kirim/text-hash/v1\x00hello", hashlib.sha256).hexdigest()[:16]
    assert text_hash("hello", KEY) == expected
    # Not the unkeyed sha256 prefix it was (2cf24dba5fb0a30e): that one gave OTPs away.
    assert text_hash("hello", KEY) != "2cf24dba5fb0a30e"


def test_text_hash_identical_visible_texts_hash_equal() -> None:
    assert text_hash("Kode caf\u00e9", KEY) == text_hash("Kode cafe\u0301", KEY)
    assert text_hash("Å", KEY) == text_hash("A\u030a", KEY)


@pytest.mark.parametrize(("one", "other"), [("a", "a "), ("OTP 1", "OTP 2"), ("a", "A"), ("", " ")])
def test_text_hash_different_texts_differ(one: str, other: str) -> None:
    assert text_hash(one, KEY) != text_hash(other, KEY)


def test_text_hash_tolerates_a_lone_surrogate() -> None:
    assert len(text_hash("\ud800", KEY)) == 16


def test_text_hash_depends_on_the_key() -> None:
    code = "Kode OTP Anda 739104"
    assert text_hash(code, KEY) == text_hash(code, KEY)
    assert text_hash(code, KEY) != text_hash(code, OTHER_KEY)
    assert text_hash(code, KEY) != text_hash(code, KEY + b"x")


def test_text_hash_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError, match="KIRIM_HASH_KEY"):
        text_hash("Kode 1", b"")


# --- properties ---------------------------------------------------------------------------

gsm_text = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=400)
any_text = st.one_of(gsm_text, st.text(max_size=300))
non_gsm_char = st.characters(codec="utf-8").filter(lambda c: c not in GSM7_BASIC | GSM7_EXTENSION)
newline_rule = st.booleans()


@given(any_text, st.characters(), newline_rule)
def test_appending_never_lowers_units_or_parts(text: str, char: str, rule: bool) -> None:
    before = count_segments(text, newline_counts_double=rule)
    after = count_segments(text + char, newline_counts_double=rule)
    assert after.parts >= before.parts
    # Switching to UCS-2 may lower units (a 2-unit € becomes 1), so compare within one encoding.
    if after.encoding == before.encoding:
        assert after.units > before.units


@given(any_text, non_gsm_char, st.integers(min_value=0), newline_rule)
def test_a_non_gsm_char_never_lowers_parts(text: str, char: str, at: int, rule: bool) -> None:
    at %= len(text) + 1
    before = count_segments(text, newline_counts_double=rule)
    after = count_segments(text[:at] + char + text[at:], newline_counts_double=rule)
    assert after.encoding == "ucs2"
    assert after.parts >= before.parts


def _expected_parts(units: int, single: int, per_part: int, all_one_unit: bool) -> range:
    """The part counts packing allows: exactly ceil when no character costs 2, else a range."""
    if units <= single:
        return range(min(units, 1), min(units, 1) + 1)
    low = math.ceil(units / per_part)
    high = low if all_one_unit else math.ceil(units / (per_part - 1))
    return range(low, high + 1)


@given(st.one_of(gsm_text, st.text("abc ", max_size=400)), newline_rule)
def test_gsm_units_and_parts(text: str, rule: bool) -> None:
    seg = count_segments(text, newline_counts_double=rule)
    extension = sum(ch in GSM7_EXTENSION for ch in text)
    newlines = text.count("\n") if rule else 0
    assert seg.encoding == "gsm7"
    assert seg.units == len(text) + extension + newlines
    assert seg.parts in _expected_parts(seg.units, 160, 153, seg.units == len(text))


@given(st.text(max_size=300).filter(lambda t: not is_gsm7(t)), newline_rule)
def test_ucs2_units_are_utf16_code_units(text: str, rule: bool) -> None:
    seg = count_segments(text, newline_counts_double=rule)
    assert seg.encoding == "ucs2"
    assert seg.units == len(text.encode("utf-16-le", "surrogatepass")) // 2
    assert seg.parts in _expected_parts(seg.units, 70, 67, seg.units == len(text))


@given(any_text)
def test_text_hash_is_a_prefix_of_the_keyed_nfc_hmac(text: str) -> None:
    digest = text_hash(text, KEY)
    assert len(digest) == 16 and set(digest) <= set("0123456789abcdef")
    assert digest == text_hash(text, KEY)
    assert digest != text_hash(text, OTHER_KEY)
    if text.isascii():  # ASCII is its own NFC form
        mac = hmac.new(KEY, b"kirim/text-hash/v1\x00" + text.encode(), hashlib.sha256)
        assert digest == mac.hexdigest()[:16]
        assert digest != hashlib.sha256(text.encode()).hexdigest()[:16]


@given(any_text, newline_rule)
def test_agrees_with_the_sandbox_count(text: str, rule: bool) -> None:
    # The sandbox charges credits with its own copy of the rules; the two must not drift.
    ours = count_segments(text, newline_counts_double=rule)
    theirs = sandbox_segments.count(text, newline_counts_double=rule)
    assert (ours.encoding, ours.units, ours.parts) == (theirs.encoding, theirs.units, theirs.parts)
