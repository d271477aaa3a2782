"""Result files: bench/results/<name>.json, <name>.png, and SUMMARY.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.machine import caption

RESULTS = Path(__file__).resolve().parent / "results"


def save_json(name: str, data: dict[str, Any]) -> Path:
    """Write one benchmark's result file."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def load_json(name: str) -> dict[str, Any] | None:
    """A benchmark's last result file, if there is one."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def figure(title: str, info: dict[str, Any], width: float = 8, height: float = 4.8) -> Any:
    """A figure with a title and the machine/run caption at its foot."""
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_title(title, fontsize=11)
    fig.text(0.01, 0.01, caption(info), fontsize=7, color="#555555")
    fig.subplots_adjust(bottom=0.2)
    return fig, ax


def save_png(name: str, fig: Any) -> Path:
    """Write and close a figure."""
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bar_labels(ax: Any, bars: Any, fmt: str = "{:.0f}") -> None:
    """Print each bar's value above it."""
    for bar in bars:
        h = bar.get_height()
        ax.annotate(fmt.format(h), (bar.get_x() + bar.get_width() / 2, h),
                    ha="center", va="bottom", fontsize=8)
