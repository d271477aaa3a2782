"""SMS length by the provider's rules (spec §1.9): encoding, units and parts.

- GSM 7-bit when every character is in the GSM 03.38 default alphabet or its extension
  table: one unit per character, two for an extension character (an escape and the
  character) and, by the provider's rule, two for a newline (`\\n`; `\\r` is a basic
  character, so `\\r\\n` costs 3). 160 units fit one SMS; a longer text is split into parts
  of 153 (the rest carries the concatenation header).
- UCS-2 otherwise: one unit per UTF-16 code unit, so a character beyond U+FFFF (most emoji)
  costs 2. 70 units fit one SMS, 67 per part. The newline rule is not applied: the provider
  states it for GSM 7-bit only.

A part holds at most 153 (GSM) or 67 (UCS-2) units, and a character is never split across
two parts: an escape pair or a surrogate pair split in two would not decode on the handset, so
SMSCs pack whole characters. A text with 2-unit characters can therefore need more parts
than `ceil(units / 153)` (at most `ceil(units / 152)`; 67 and 66 for UCS-2).
`sandbox/segments.py` counts the same way, independently.

Counting reads the text as given: `é` written as `e` + U+0301 is UCS-2 where the composed `é`
is GSM 7-bit. An empty text is 0 units in 0 parts: the provider sends nothing (it answers
-12) and charges nothing. The contract refuses empty text before it gets here.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]

GSM7_SINGLE_UNITS = 160
GSM7_PART_UNITS = 153
UCS2_SINGLE_UNITS = 70
UCS2_PART_UNITS = 67

# GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1), row by row in code order 0x00–0x7F.
# 0x09 is Ç (U+00C7, per the Unicode mapping; ç is not in the table). 0x1B is the escape to
# the extension table, not a character, so the second row has 15. The Greek capitals are the
# Greek code points (Δ is U+0394, not the math increment U+2206).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension characters a GSM 7-bit text may use; each is sent as ESC + code, 2 units.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION
# Characters that cost exactly one unit: basic ones, less the newline when it counts double.
_GSM7_SINGLE = GSM7_BASIC - {"\n"}
_GSM7_BASIC_ONLY = GSM7_BASIC


@dataclass(frozen=True, slots=True)
class Segments:
    """How a text goes out as SMS: its encoding, its length in units and its part count."""

    encoding: Encoding
    units: int
    parts: int


def count_segments(text: str, *, newline_counts_double: bool = True) -> Segments:
    """Encoding, units and SMS parts of `text` by the provider's counting rules."""
    chars = set(text)
    if chars <= _GSM7_SINGLE if newline_counts_double else chars <= _GSM7_BASIC_ONLY:
        # Fast path, the usual text: every character costs one unit, so parts pack evenly.
        return Segments("gsm7", len(text), _even_parts(len(text), GSM7_SINGLE_UNITS,
                                                       GSM7_PART_UNITS))
    if is_gsm7(text):
        costs = [_gsm7_cost(ch, newline_counts_double) for ch in text]
        return Segments("gsm7", sum(costs), _parts(costs, GSM7_SINGLE_UNITS, GSM7_PART_UNITS))
    # A character beyond the BMP is a surrogate pair in UTF-16; a lone surrogate is one unit.
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return Segments("ucs2", sum(costs), _parts(costs, UCS2_SINGLE_UNITS, UCS2_PART_UNITS))


def is_gsm7(text: str) -> bool:
    """True when every character of `text` can be sent in GSM 7-bit (basic or extension)."""
    return set(text) <= _GSM7


def _even_parts(units: int, single: int, per_part: int) -> int:
    """Parts for `units` one-unit characters: whole parts of `per_part` beyond one SMS."""
    if units <= single:
        return 1 if units else 0
    return -(-units // per_part)


# Prefixed to the text: a digest under this key means this use only (v1: a later change of
# normalisation or length gets a new prefix).
TEXT_HASH_DOMAIN = b"kirim/text-hash/v1\x00"


def text_hash(text: str, key: bytes) -> str:
    """The recipient guard's text key: HMAC-SHA256 of the NFC form of `text`, keyed by the
    server secret `key` (KIRIM_HASH_KEY), as 16 hex digits.

    Keyed because the hash is stored next to the message and in the guard's key names: an
    unkeyed hash of a 6-digit code inside a known template comes back by trying every code.
    NFC makes texts that look identical hash equal (composed `é` and `e` + U+0301), so the
    guard counts them as one text, the cautious side of the provider's -77 rule. Texts that
    differ in any visible way, whitespace included, hash differently. 64 bits is plenty:
    without the key no text can be tried against it, and it is only compared among one
    recipient's texts in 24 hours (a collision would need ~2^32 of them).
    """
    if not key:
        raise ValueError("text_hash needs the server's hash key (KIRIM_HASH_KEY)")
    nfc = unicodedata.normalize("NFC", text)
    data = TEXT_HASH_DOMAIN + nfc.encode("utf-8", "surrogatepass")
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:16]


def _gsm7_cost(ch: str, newline_counts_double: bool) -> int:
    """Units one GSM 7-bit character costs: 2 for an escape pair or a doubled newline."""
    if ch in GSM7_EXTENSION or (newline_counts_double and ch == "\n"):
        return 2
    return 1


def _parts(costs: list[int], single: int, per_part: int) -> int:
    """Parts for characters of these unit costs, packed whole into parts of `per_part`."""
    total = sum(costs)
    if total <= single:
        return 1 if total else 0
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts
