"""Random bytes for ids, drawn from os.urandom 4 KiB at a time.

`secrets.token_hex` makes one getrandom() call per id, and CPython releases the GIL around
it: in a busy process (the API's event loop beside a thread enqueuing a 1,000-message batch)
every release could cost a wait for the GIL to come back, which profiling showed as the
largest single cost of the batch route. One draw per ~800 ids removes that. The bytes are
the same kernel CSPRNG's; a forked child starts with an empty buffer, so no two processes
share bytes.
"""

from __future__ import annotations

import os
import threading

_DRAW = 4096


class _Entropy:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._used = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._used + n > len(self._buffer):
                self._buffer, self._used = os.urandom(max(_DRAW, n)), 0
            start, self._used = self._used, self._used + n
            return self._buffer[start:self._used]

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._used = b"", 0


_ENTROPY = _Entropy()
os.register_at_fork(after_in_child=_ENTROPY.reset)


def token_hex(nbytes: int) -> str:
    """`nbytes` random bytes as hex, like secrets.token_hex."""
    return _ENTROPY.take(nbytes).hex()


def token_bytes(nbytes: int) -> bytes:
    """`nbytes` random bytes from the buffered CSPRNG."""
    return _ENTROPY.take(nbytes)
