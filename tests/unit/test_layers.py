"""The package map of docs/architecture.md, enforced: each package imports only what it may."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package folder → prefixes of kirim's own modules it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "producer/core": ("producer.client", "producer.api", "producer.cli", "worker", "sandbox"),
    "producer": ("worker", "sandbox"),
    "worker": ("producer.client", "producer.api", "producer.cli", "sandbox"),
    "worker/nusasms": ("producer", "worker.app", "worker.services", "worker.tasks", "celery",
                       "redis", "kombu", "sandbox"),
    "sandbox": ("producer", "worker"),
}


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _cases() -> list[tuple[str, Path]]:
    return [(folder, path) for folder in FORBIDDEN
            for path in sorted((ROOT / folder).rglob("*.py"))]


@pytest.mark.parametrize(("folder", "path"), _cases(),
                         ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v)
def test_each_module_imports_only_what_its_package_may(folder: str, path: Path) -> None:
    bad = sorted(m for m in imports(path) for p in FORBIDDEN[folder]
                 if m == p or m.startswith(p + "."))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: see docs/architecture.md"


def test_nothing_imports_worker_app_to_find_its_services() -> None:
    users = [p.relative_to(ROOT) for p in (ROOT / "worker").rglob("*.py")
             if "worker.app" in imports(p)]
    assert users == [], f"{users} import worker.app; use worker.services.services_for"
