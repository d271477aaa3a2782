"""Raw HTTP/1.1 keep-alive load on the ingest API, so the client costs next to nothing.

Each connection sends one request at a time (no pipelining) until the time is up; the body
of request k comes from `body(k)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sandbox.loadgen import read_reply


def _request(path: str, body: bytes, key: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def _connection(port: int, path: str, key: str, body: Callable[[int], bytes],
                      counter: list[int], stop_at: float, statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.monotonic() < stop_at:
        counter[0] += 1
        writer.write(_request(path, body(counter[0]), key))
        status = await read_reply(reader)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


def drive(ports: list[int], path: str, key: str, body: Callable[[int], bytes],
          connections: int, seconds: float) -> dict[str, Any]:
    """Load for `seconds`, connections spread round-robin over `ports` (one per API process,
    as a load balancer spreads them over replicas); requests, time and HTTP statuses seen."""
    statuses: dict[int, int] = {}
    counter = [0]

    async def main() -> float:
        started = time.monotonic()
        await asyncio.gather(*(_connection(ports[i % len(ports)], path, key, body, counter,
                                           started + seconds, statuses)
                               for i in range(connections)))
        return time.monotonic() - started

    elapsed = asyncio.run(main())
    return {"requests": sum(statuses.values()), "seconds": round(elapsed, 3),
            "statuses": statuses, "connections": connections}
