"""Run the sandbox: `python -m sandbox --host 127.0.0.1 --port 8099 [--knob value …]`.

Every knob of `sandbox.config.Config` is a flag (`--latency-ms 50`, `--no-otp-marker-check`,
`--groups '{"A": ["6281234567890"]}'`, `--allowed-senders KIRIM,TOKO`); `--credits` and
`--credits-expiry` set the SMS pool's start balance, `--wa-credits` and `--wa-credits-expiry`
the WhatsApp pool's. uvloop is used when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

from sandbox import heap, http
from sandbox.app import Sandbox
from sandbox.config import Config, coerce
from sandbox.state import Account, Pool


def parser() -> argparse.ArgumentParser:
    """The command line: host, port, start balances, and one flag per knob."""
    cli = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    cli.add_argument("--host", default="127.0.0.1")
    cli.add_argument("--port", type=int, default=8099)
    for prefix, product in (("", "SMS"), ("wa-", "WhatsApp")):
        cli.add_argument(f"--{prefix}credits", type=int, default=Pool.credits,
                         help=f"the {product} pool's start balance")
        cli.add_argument(f"--{prefix}credits-expiry", type=date.fromisoformat,
                         default=Pool.expired_date, help=f"YYYY-MM-DD ({product} pool)")
    for knob in dataclasses.fields(Config):
        flag = "--" + knob.name.replace("_", "-")
        if knob.type in ("bool", bool):
            cli.add_argument(flag, dest=knob.name, action=argparse.BooleanOptionalAction,
                             default=None)
        else:
            cli.add_argument(flag, dest=knob.name, default=None, metavar=knob.name.upper())
    return cli


def config_from(args: argparse.Namespace) -> Config:
    """Defaults overlaid by the flags that were given (validated like runtime changes)."""
    given: dict[str, Any] = {}
    for knob in dataclasses.fields(Config):
        value = getattr(args, knob.name)
        if value is not None:
            given[knob.name] = json.loads(value) if knob.name == "groups" else value
    config = Config()
    config.update({name: coerce(name, value) for name, value in given.items()})
    return config


async def serve(sandbox: Sandbox, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = await http.start(sandbox.handle, host, port)
    sandbox.start_pushing()
    freezer = asyncio.create_task(heap.freeze_forever())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"nusasms sandbox listening on http://{host}:{port}", flush=True)
    await stop.wait()
    server.close()
    freezer.cancel()
    await sandbox.pusher.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the server."""
    args = parser().parse_args(argv)
    try:
        config = config_from(args)
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    account = Account(Pool(args.credits, args.credits_expiry),
                      Pool(args.wa_credits, args.wa_credits_expiry))
    sandbox = Sandbox(config, account)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(sandbox, args.host, args.port))
    else:
        uvloop.run(serve(sandbox, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
