"""SMS part counting per the provider's length page (spec §1.9), used to charge credits.

The sandbox keeps its own copy (it never imports `producer`), so a disagreement between the
client's count and this one shows up in tests as a credit mismatch.

- GSM 7-bit: 160 units in one SMS, 153 per part when split; the GSM 03.38 extension table
  (``^ { } \\ [ ~ ] |`` ``€`` and form feed) costs 2 units, and so does a newline when
  ``newline_counts_double`` (NusaSMS's page says it does).
- UCS-2: 70 UTF-16 code units in one SMS, 67 per part; a character outside the BMP costs 2.
- A character's units are never split across two parts (an escape sequence or a surrogate
  pair stays whole), as real SMSCs pack them.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True, slots=True)
class Segments:
    """How one text is encoded and how many parts (credits) it takes."""

    encoding: str  # "gsm7" or "ucs2"
    units: int
    parts: int


GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION


def is_gsm7(text: str) -> bool:
    """True if every character of text is in the GSM 7-bit basic or extension table."""
    return GSM7_ALL.issuperset(text)


def gsm7_units(ch: str, newline_counts_double: bool) -> int:
    """Septets one GSM-7 character costs."""
    if ch in GSM7_EXTENSION or (ch == "\n" and newline_counts_double):
        return 2
    return 1


def ucs2_units(ch: str) -> int:
    """UTF-16 code units one character costs."""
    return 2 if ord(ch) > 0xFFFF else 1


def pack(units: list[int], per_part: int) -> int:
    """Parts needed for characters of the given unit costs, never splitting a character."""
    parts, used = 1, 0
    for cost in units:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts


def count(text: str, unicode: bool = False, newline_counts_double: bool = True) -> Segments:
    """Encoding and part count of text; UCS-2 if asked for or if any character needs it."""
    if unicode or not is_gsm7(text):
        total = len(text.encode("utf-16-le")) // 2
        if total <= UCS2_SINGLE:
            return Segments("ucs2", total, 1 if total else 0)
        return Segments("ucs2", total, pack([ucs2_units(ch) for ch in text], UCS2_PART))
    doubled = sum(text.count(ch) for ch in GSM7_EXTENSION)
    total = len(text) + doubled + (text.count("\n") if newline_counts_double else 0)
    if total <= GSM7_SINGLE:
        return Segments("gsm7", total, 1 if total else 0)
    units = [gsm7_units(ch, newline_counts_double) for ch in text]
    return Segments("gsm7", total, pack(units, GSM7_PART))
