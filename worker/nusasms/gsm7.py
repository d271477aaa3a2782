"""Whether a text fits the GSM 03.38 7-bit alphabet, or NusaSMS must send it as UCS-2.

Kept local (the client imports nothing of `producer`); segment counting lives in `producer`.
"""

from __future__ import annotations

# 3GPP TS 23.038 default alphabet, in code order, without 0x1B (the escape to the extension).
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

# Reached through the escape: each costs two septets, but still needs no UCS-2.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM7_CHARS: frozenset[str] = GSM7_BASIC | GSM7_EXTENSION


def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the GSM 7-bit basic or extension table."""
    return all(char in GSM7_CHARS for char in text)


def needs_unicode(text: str) -> bool:
    """True when `text` must go as UCS-2 (`unicode=True`): some character is not GSM 7-bit."""
    return not is_gsm7(text)
