"""Redis replies as text: the one place kirim decodes what its Redis clients return.

kirim's own clients (`factory.connect_redis`) return bytes, and every reply that is read as
text goes through `text` or `text_map` here. They do not set `decode_responses=True`:
redis-py then decodes a whole reply at once, so one value that is not valid UTF-8 (a
poisoned stream entry, sorted-set member or record field) raises for the whole reply (a
sweep's page, a pipeline) instead of for that one item, and `encoding_errors="replace"`
would turn a member into another string that ZREM or XACK can no longer address. Decoding
here, one value at a time, lets a sweep catch the UnicodeDecodeError (a UnicodeError, one
of `quarantine.DATA_ERRORS`) for that item alone, and keep the raw bytes where it must
address the entry in Redis as stored.

Each function also takes str (a client that does decode replies, as some tests use) and
the numbers Lua replies hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Reply = bytes | str | int | float | None


def text(value: Reply, errors: str = "strict") -> str:
    """One reply value as str: bytes decoded as UTF-8, None as "", anything else str().

    Strict by default: invalid UTF-8 raises UnicodeDecodeError, for the caller's poison
    handling to catch. `errors="replace"` only where the text is shown or looked up,
    never where it goes back to Redis to address what was read.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", errors)
    return "" if value is None else str(value)


def text_or_none(value: Reply) -> str | None:
    """Like `text`, but a missing value (None) stays None."""
    return None if value is None else text(value)


def text_map(mapping: Mapping[Any, Any]) -> dict[str, str]:
    """A hash or stream entry (HGETALL, XRANGE fields) with keys and values as str (strict)."""
    return {text(k): text(v) for k, v in mapping.items()}
