"""Worker liveness: a heartbeat file touched by the consumer, and the probe that reads it.

`python -m worker.health [PATH] [--max-age-s N]` exits 0 when the file was touched within N
seconds (default 60), else 1. It imports nothing of Celery, so a Kubernetes exec probe costs
a few milliseconds, and it never needs the broker to be empty or a task to run. The file is
touched on each Celery worker heartbeat (every 2 s), which runs on the consumer's own event
loop: a wedged consumer stops touching it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_MAX_AGE_S = 60.0


def touch(path: str) -> None:
    """Record that the consumer is alive now."""
    Path(path).touch()


def age_s(path: str, now: float | None = None) -> float | None:
    """Seconds since the heartbeat file was touched, or None if there is none."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    return (time.time() if now is None else now) - mtime


def main(argv: list[str] | None = None) -> int:
    """The probe: 0 if alive, 1 (with a reason on stderr) if not."""
    parser = argparse.ArgumentParser(prog="python -m worker.health", description=__doc__)
    parser.add_argument("path", nargs="?", default=os.environ.get("KIRIM_HEARTBEAT_FILE", ""))
    parser.add_argument("--max-age-s", type=float, default=DEFAULT_MAX_AGE_S)
    args = parser.parse_args(argv)
    if not args.path:
        print("no heartbeat file: pass a path or set KIRIM_HEARTBEAT_FILE", file=sys.stderr)
        return 1
    age = age_s(args.path)
    if age is None:
        print(f"{args.path}: no heartbeat yet (worker starting or not running)", file=sys.stderr)
        return 1
    if age > args.max_age_s:
        print(f"{args.path}: last heartbeat {age:.0f}s ago (limit {args.max_age_s:.0f}s)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
