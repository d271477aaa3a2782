"""NusaSMS-shaped message ids for the drop-in: 18 digits, mapped both ways to kirim's id.

Client code written for NusaSMS stores `messageid` in a BIGINT column, parses it with
`Long.parseLong` or `intval`, or sizes it `CHAR(18)`. The drop-in therefore answers an id of
that shape: 18 random digits, never starting with 0 (so it round-trips through a number and
fits a signed 64-bit integer: at most 999…9 < 2^63). It is stored on the record
(`nusasms_id`) and in `Keys.alias(nid)` → kirim's id, written in the same atomic step as the
record (accept.lua); `GET /v1/messages/{id}`, `kirim status` and `cmd=DR` accept either form.
"""

from __future__ import annotations

import re

from producer.core.entropy import token_bytes

_ALIAS = re.compile(r"[0-9]{18}")
_SPAN = 9 * 10**17  # ids 100000000000000000 … 999999999999999999


def new_alias() -> str:
    """A fresh 18-digit id (≈ 2^59.6 values: collisions are caught by accept.lua anyway)."""
    return str(10**17 + int.from_bytes(token_bytes(8), "big") % _SPAN)


def is_alias(value: str) -> bool:
    """Whether `value` has the shape of a NusaSMS message id (18 digits)."""
    return bool(_ALIAS.fullmatch(value))
