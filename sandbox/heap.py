"""Keep Python's cyclic garbage collector off the sandbox's long-lived state.

A benchmark leaves millions of messages in memory; a full collection then scans all of them
and stalls every reply for hundreds of milliseconds, which would show up as the client's
tail latency. The state holds no reference cycles (it is freed by reference counting), so
objects that survived a second are moved out of the collector's sight with `gc.freeze()`;
`thaw` (on reset) hands them back so any cyclic garbage among them is still collected.
"""

from __future__ import annotations

import asyncio
import gc

FREEZE_INTERVAL_S = 1.0


async def freeze_forever(interval_s: float = FREEZE_INTERVAL_S) -> None:
    """Every interval, move every tracked object into the permanent generation."""
    while True:
        await asyncio.sleep(interval_s)
        gc.freeze()


def thaw() -> None:
    """Give frozen objects back to the collector and collect once."""
    gc.unfreeze()
    gc.collect()
