"""The docs hold together: links resolve, the README stays a front door, and the
configuration table in docs/operations.md is exactly `Settings` (names and defaults)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

try:
    from producer.settings import Settings
except ImportError:  # the package restructure moves settings into the core
    from producer.core.settings import Settings  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
README_MAX_LINES = 300
NO_DEFAULT = "—"

_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)
_ROW = re.compile(r"^\|\s*`(KIRIM_[A-Z0-9_]+)`\s*\|([^|]*)\|")


def relative_links(page: Path) -> list[str]:
    """Link targets of a markdown page that point into the repository (code ignored)."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", page.read_text(encoding="utf-8")))
    return [t for t in _LINK.findall(text) if not _EXTERNAL.match(t)]


def test_docs_exist() -> None:
    names = {p.name for p in DOCS}
    assert {"architecture.md", "api.md", "operations.md", "performance.md", "reliability.md",
            "design.md", "nusasms-api.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files(page: Path) -> None:
    broken = [t for t in relative_links(page)
              if not (page.parent / t.split("#", 1)[0]).exists()]
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files: {broken}"


def test_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_magic_numbers_are_tabled_only_in_the_sandbox_readme() -> None:
    row = re.compile(r"^\|\s*`6281195K00000`", re.MULTILINE)
    tabled = [p.relative_to(ROOT).as_posix() for p in [*PAGES, ROOT / "sandbox/README.md"]
              if row.search(p.read_text(encoding="utf-8"))]
    assert tabled == ["sandbox/README.md"]


# The configuration table of docs/operations.md against Settings.

def config_table() -> dict[str, str]:
    """Variable → rendered default, one row per variable, from the operations page."""
    rows: dict[str, str] = {}
    for line in (ROOT / "docs/operations.md").read_text(encoding="utf-8").splitlines():
        found = _ROW.match(line)
        if found:
            name, default = found.group(1), found.group(2).strip().strip("`")
            assert name not in rows, f"{name} has two rows in the configuration table"
            rows[name] = default
    return rows


def setting_defaults() -> dict[str, Any]:
    """KIRIM_* variable → the field's default."""
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper(): field.default
            for name, field in Settings.model_fields.items()}


def same_default(rendered: str, default: Any) -> bool:
    """Loosely equal: numbers as numbers, booleans and strings as text, — for none/secret."""
    if default is None or isinstance(default, SecretStr) or default == "":
        return rendered == NO_DEFAULT
    if isinstance(default, bool):
        return rendered.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(rendered.replace(",", "")) == float(default)
        except ValueError:
            return False
    return rendered == str(default)


def test_every_setting_has_a_row_and_every_row_a_setting() -> None:
    table, fields = config_table(), setting_defaults()
    missing, unknown = sorted(set(fields) - set(table)), sorted(set(table) - set(fields))
    assert not missing, f"settings without a row in docs/operations.md: {missing}"
    assert not unknown, f"docs/operations.md names variables Settings lacks: {unknown}"


def test_table_defaults_match_settings() -> None:
    table, fields = config_table(), setting_defaults()
    wrong = {name: (table[name], fields[name]) for name in sorted(set(table) & set(fields))
             if not same_default(table[name], fields[name])}
    assert not wrong, f"table default vs Settings default: {wrong}"


@pytest.mark.parametrize(("rendered", "default", "same"), [
    ("5", 5.0, True), ("1,000", 1000, True), ("true", True, True), ("auto", "auto", True),
    (NO_DEFAULT, None, True), (NO_DEFAULT, SecretStr(""), True), (NO_DEFAULT, "", True),
    ("6", 5.0, False), ("false", True, False), ("", None, False), ("x", 1, False),
])
def test_same_default(rendered: str, default: Any, same: bool) -> None:
    assert same_default(rendered, default) is same
