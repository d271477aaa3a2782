"""The `kirim` console script: the CLI, or a clear word when its extra is not installed.

A bare `pip install kirim` is the Python client only; the CLI's typer and rich come with
`kirim[cli]` (and every other extra that runs kirim's processes).
"""

from __future__ import annotations

import sys

EX_UNAVAILABLE = 69


def main() -> None:
    """Run the CLI; without typer/rich, say which extra to install and exit 69."""
    try:
        from producer.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if exc.name not in {"typer", "rich", "click", "pygments"}:
            raise
        print(f"error: the kirim CLI needs the 'cli' extra ({exc.name} is missing): "
              "pip install 'kirim[cli]'", file=sys.stderr)
        raise SystemExit(EX_UNAVAILABLE) from None
    cli_main()
