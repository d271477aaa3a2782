"""Recipient numbers: one canonical form, the provider's `GSM` field (spec §1.1).

The canonical form is the international number in ASCII digits with no `+` and no leading
`0`: `6281234567890`. How input is read, after dropping spaces, `-`, `.`, `(` and `)`:

- `+62 812…`, `+65 9123 4567`: international.
- `0062 812…`, `0065 9123 4567`: `00` is the ITU international prefix. An Indonesian
  national number never starts with `00`, so this cannot be mistaken for one. Carrier
  prefixes (`001`, `007`, `01017`) are not recognised: `001 65…` reads as +1 65….
- `0812-3456-7890`: one leading `0` is the trunk prefix of a national number of
  `default_region` (Indonesia unless told otherwise).
- bare digits, `6281234567890` or `6591234567`: the provider's own form, so international.
  This is what makes `normalize_recipient` idempotent (its output reads back as itself) and
  lets the NusaSMS-compatible endpoint pass `GSM` through with the provider's meaning. The
  price: an Indonesian mobile written without its `0` or `62` (`812…`) reads as +81…
  (Japan), as it would at the provider. About 9 in 10 such numbers are invalid there and are
  refused with a hint; the rest (`812-3456-7890` among them) are valid Japanese, Korean,
  Taiwanese … numbers and cannot be told apart from them. A deployment that only sends to
  Indonesia should refuse other country codes where it has that policy (the contract).

A number must be valid for `phonenumbers` (right length and range for its country); its type
(mobile, fixed line) is not checked, because WhatsApp Business numbers can be fixed lines.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers

from producer.core.errors import InvalidMessage

FIELD = "to"

# Longer than any sane way of writing a 15-digit number; stops pathological input early.
_MAX_INPUT_CHARS = 64
# Separators people paste: whitespace (NBSP too), ASCII and Unicode dashes, dots, brackets.
_SEPARATORS = re.compile(r"[\s().\-\u2010-\u2015\u2212]")
# ASCII digits only: a full-width or Arabic-Indic digit is more likely a mistake than a number.
_COMPACT = re.compile(r"\+?[0-9]+")
_E164 = phonenumbers.PhoneNumberFormat.E164
# Fast path for the common case, an Indonesian mobile, from phonenumbers' own metadata: a
# national number of a mobile length matching the mobile and general patterns is one that
# `is_valid_number` accepts (a test checks the two agree), at a fifth of the cost.
_ID_META: Any = phonenumbers.PhoneMetadata.metadata_for_region("ID")
_ID_MOBILE = re.compile(_ID_META.mobile.national_number_pattern)
_ID_GENERAL = re.compile(_ID_META.general_desc.national_number_pattern)
_ID_MOBILE_LENGTHS = frozenset(_ID_META.mobile.possible_length)
_ID_INTERNATIONAL = re.compile(r"(?:\+62|0062|62)(8[0-9]+)")
_ID_NATIONAL = re.compile(r"0(8[0-9]+)")


def normalize_recipient(raw: str, default_region: str = "ID") -> str:
    """The provider's form of a phone number (`6281234567890`), or `InvalidMessage`."""
    if default_region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {default_region!r}; use a code like 'ID'")
    compact = _compact(raw, default_region)
    fast = _indonesian_mobile(compact, default_region)
    if fast is not None:
        return fast
    text, region = _parseable(compact, default_region)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise _invalid(raw, compact, default_region) from exc
    if not phonenumbers.is_valid_number(number):
        raise _invalid(raw, compact, default_region)
    return phonenumbers.format_number(number, _E164).removeprefix("+")


def mask_recipient(number: str) -> str:
    """`number` for logs: a short prefix and the last 3 digits kept, at least 4 hidden."""
    if len(number) < 8:
        return "*" * len(number)
    head = min(6, len(number) - 7)
    return number[:head] + "*" * (len(number) - head - 3) + number[-3:]


def _compact(raw: object, region: str) -> str:
    """`raw` without separators: an optional leading `+` and digits, or `InvalidMessage`."""
    if not isinstance(raw, str):
        reason = f"a phone number must be a string, not {type(raw).__name__}"
        raise InvalidMessage(FIELD, f"{reason}; {_hint(region)}", value=raw)
    if len(raw) > _MAX_INPUT_CHARS:
        reason = f"{_shown(raw)} is too long to be a phone number"
        raise InvalidMessage(FIELD, f"{reason}; {_hint(region)}", value=raw)
    compact = _SEPARATORS.sub("", raw)
    if not compact:
        raise InvalidMessage(FIELD, f"the phone number is empty; {_hint(region)}", value=raw)
    if not _COMPACT.fullmatch(compact):
        reason = (
            f"{_shown(raw)} is not a phone number: only digits, spaces, '-', '.', '(', ')'"
            " and a leading '+' are allowed"
        )
        raise InvalidMessage(FIELD, f"{reason}; {_hint(region)}", value=raw)
    return compact


def _indonesian_mobile(compact: str, region: str) -> str | None:
    """`62…` for a valid Indonesian mobile number, else None (the full parse decides)."""
    match = _ID_INTERNATIONAL.fullmatch(compact)
    if match is None and region == "ID":
        match = _ID_NATIONAL.fullmatch(compact)
    if match is None:
        return None
    national = match.group(1)
    if (len(national) in _ID_MOBILE_LENGTHS and _ID_MOBILE.fullmatch(national)
            and _ID_GENERAL.fullmatch(national)):
        return "62" + national
    return None


def _parseable(compact: str, region: str) -> tuple[str, str | None]:
    """What to hand `phonenumbers.parse`: the text and the region for national numbers."""
    if compact.startswith("+"):
        return compact, None
    if compact.startswith("00"):
        return "+" + compact[2:], None
    if compact.startswith("0"):
        return compact, region
    return "+" + compact, None


def _invalid(raw: str, compact: str, region: str) -> InvalidMessage:
    """The error for a well-formed but invalid number, with a hint for the usual slip."""
    reason = f"{_shown(raw)} is not a valid phone number; {_hint(region)}"
    if region == "ID" and compact.startswith("8"):
        # The common Indonesian slip: a mobile number with its leading 0 dropped.
        reason += f" (for an Indonesian number write 0{compact} or 62{compact})"
    return InvalidMessage(FIELD, reason, value=raw)


def _hint(region: str) -> str:
    """The forms we accept, in words a user can act on."""
    if region == "ID":
        return (
            "use the international form like 6281234567890 or +6281234567890,"
            " or a local Indonesian number like 081234567890"
        )
    return f"use the international form like +6281234567890, or a {region} number starting 0"


def _shown(raw: str) -> str:
    """`raw` quoted for an error message, cut short so a huge value cannot flood a log."""
    return repr(raw) if len(raw) <= 24 else repr(raw[:24]) + "…"
