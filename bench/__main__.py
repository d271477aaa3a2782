"""Run the benchmarks: `python -m bench [names…] [--quick]`.

Each writes bench/results/<name>.json and <name>.png; SUMMARY.md is rebuilt from every
result file present. Other processes on the machine skew absolute numbers: the load
average before and after each benchmark is recorded with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import (
    cost,
    enqueue,
    http_clients,
    knobs,
    otp_latency,
    profile,
    ratelimit,
    scaling,
    summary,
    throughput,
)
from bench.machine import run_info
from bench.report import save_json
from bench.stack import Stack

BENCHMARKS: dict[str, Callable[[Stack, dict[str, Any], bool], dict[str, Any]]] = {
    "throughput": throughput.run,
    "otp_latency": otp_latency.run,
    "cost": cost.run,
    "enqueue": enqueue.run,
    "scaling": scaling.run,
    "ratelimit": ratelimit.run,
    "profile": profile.run,
    "http_clients": http_clients.run,
    "knobs": knobs.run,
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks (all by default), then write SUMMARY.md."""
    cli = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    cli.add_argument("names", nargs="*", metavar="name",
                     help=f"any of: {', '.join(BENCHMARKS)} (default: all)")
    cli.add_argument("--quick", action="store_true", help="small sizes: the set in < 2 min")
    args = cli.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        cli.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    stack = Stack().start()
    started = time.monotonic()
    try:
        for name in args.names or list(BENCHMARKS):
            info = run_info()
            print(f"{name}: load {info['load_before'][0]:.2f} …", flush=True)
            t0 = time.monotonic()
            data = BENCHMARKS[name](stack, info, args.quick)
            data["info"]["load_after"] = os.getloadavg()
            data["info"]["seconds"] = round(time.monotonic() - t0, 1)
            save_json(name, data)
            print(f"{name}: done in {data['info']['seconds']} s", flush=True)
    finally:
        stack.close()
    summary.write()
    print(f"all done in {time.monotonic() - started:.0f} s; logs in {stack.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
