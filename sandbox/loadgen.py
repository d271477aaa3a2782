"""A small bounded load generator for the sandbox: `python -m sandbox.loadgen URL`.

Raw HTTP/1.1 over keep-alive sockets (no client library in the way), N connections each
sending one request at a time, unique texts; stops after `--seconds` or `--requests`,
whichever comes first, and prints requests/second and latency percentiles as JSON. Only for
addresses on this machine (it refuses anything but loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import time
from urllib.parse import quote, urlsplit

PATH = "/api/v3/sendsms/plain"


def request_bytes(host: str, n: int, gsm: str) -> bytes:
    """One form POST of an SMS with a unique text."""
    body = f"user=demo&password=demo&GSM={gsm}&SMSText={quote(f'load test {n}')}&output=json"
    return (f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/"
            f"x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


async def read_reply(reader: asyncio.StreamReader) -> int:
    """Read one reply with a Content-Length body; its HTTP status."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return int(head[9:12])


async def connection(host: str, port: int, worker: int, stop_at: float, budget: list[int],
                     latencies: list[float], statuses: dict[int, int]) -> None:
    """One keep-alive connection sending until the time or the request budget runs out."""
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    while time.monotonic() < stop_at and budget[0] > 0:
        budget[0] -= 1
        n += 1
        started = time.perf_counter()
        writer.write(request_bytes(host, worker * 10_000_000 + n, "6281234567890"))
        status = await read_reply(reader)
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


async def run(url: str, connections: int, seconds: float, requests: int) -> dict[str, object]:
    """Drive the load; a summary."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        raise SystemExit("loadgen only targets loopback addresses")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.monotonic()
    await asyncio.gather(*(connection(host, port, i, started + seconds, [requests // connections],
                                      latencies, statuses) for i in range(connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"requests": len(latencies), "seconds": round(elapsed, 2),
            "requests_per_s": round(len(latencies) / elapsed), "connections": connections,
            "p50_ms": quantile_ms(latencies, 0.5), "p99_ms": quantile_ms(latencies, 0.99),
            "http_status": statuses}


def quantile_ms(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted durations in seconds, in milliseconds."""
    return round(ordered[int(q * (len(ordered) - 1))] * 1000, 2) if ordered else 0.0


def main() -> None:
    """Command line."""
    cli = argparse.ArgumentParser(prog="python -m sandbox.loadgen", description=__doc__)
    cli.add_argument("url", nargs="?", default="http://127.0.0.1:8099")
    cli.add_argument("--connections", type=int, default=32)
    cli.add_argument("--seconds", type=float, default=5.0)
    cli.add_argument("--requests", type=int, default=1_000_000)
    args = cli.parse_args()
    job = run(args.url, args.connections, args.seconds, args.requests)
    try:
        import uvloop
    except ImportError:
        summary = asyncio.run(job)
    else:
        summary = uvloop.run(job)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
