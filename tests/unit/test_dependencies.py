"""Dependencies: bounds in pyproject.toml, pins in deploy/constraints.txt, known-CVE floors.

Every requirement (runtime and every extra) has a floor and an upper bound below the next
release that may break it; every pin is exact and inside pyproject's bounds; no floor and no
pin is below a version with a published CVE; and every install (make, the image, CI) goes
through the pins.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = "deploy/constraints.txt"

# The lowest version clearing every published advisory we know of, per package. `declared`:
# pyproject.toml must name the package itself (a transitive dependency whose parents' own
# floors still admit a vulnerable version), so the floor holds even without the pins. For the
# others the floor is checked where pyproject names them, and the pin wherever it is pinned.
KNOWN_CVE_FLOORS: dict[str, tuple[str, bool, str]] = {
    # runtime
    "starlette": ("1.3.1", True, "CVE-2024-47874, CVE-2025-54121, CVE-2025-62727, "
                  "CVE-2026-48710, CVE-2026-48817, CVE-2026-48818, CVE-2026-54282, "
                  "CVE-2026-54283"),
    "tornado": ("6.5.9", True, "CVE-2025-47287, CVE-2025-67724/-67725/-67726, CVE-2026-31958, "
                "CVE-2026-35536, CVE-2026-49853/-49854/-49855, GHSA-pw6j-qg29-8w7f, "
                "GHSA-mpf4-983q-p7j4, GHSA-8423-8fgw-73vq, 6.5.9 StaticFileHandler symlinks"),
    "h11": ("0.16.0", True, "CVE-2025-43859"),
    "python-multipart": ("0.0.31", True, "CVE-2024-24762, CVE-2024-53981, CVE-2026-24486, "
                         "CVE-2026-40347, CVE-2026-42561, CVE-2026-53537/-53538/-53539, "
                         "CVE-2026-53540"),
    "anyio": ("4.14.2", True, "CVE-2026-63374, CVE-2026-64847"),
    "idna": ("3.15", True, "CVE-2024-3651, CVE-2026-45409"),
    "python-dotenv": ("1.2.2", True, "CVE-2026-28684"),
    "pygments": ("2.20.0", True, "CVE-2026-4539"),
    "fastapi": ("0.109.1", False, "CVE-2024-24762"),
    "uvicorn": ("0.11.7", False, "CVE-2020-7694, CVE-2020-7695"),
    "httptools": ("0.5.0", False, "CVE-2022-32213/-32214/-32215 (llhttp)"),
    "pydantic": ("2.4.0", False, "CVE-2024-3772"),
    "redis": ("4.5.4", False, "CVE-2023-28858, CVE-2023-28859"),
    "celery": ("5.2.2", False, "CVE-2021-23727"),
    "websockets": ("10.0", False, "CVE-2021-33880"),
    "markdown-it-py": ("2.2.0", False, "CVE-2023-26302, CVE-2023-26303"),
    "jinja2": ("3.1.6", False, "CVE-2024-56201, CVE-2024-56326, CVE-2025-27516"),
    "certifi": ("2024.7.4", False, "CVE-2023-37920, CVE-2024-39689"),  # CalVer: pinned only
    # dev
    "pytest": ("9.0.3", True, "CVE-2025-71176"),
    "requests": ("2.33.0", True, "CVE-2024-35195, CVE-2024-47081, CVE-2026-25645"),
    "urllib3": ("2.7.0", True, "CVE-2025-50181, CVE-2025-66418, CVE-2025-66471, "
                "CVE-2026-21441, CVE-2026-44431, CVE-2026-44432"),
    "werkzeug": ("3.1.6", True, "CVE-2024-34069, CVE-2024-49766, CVE-2024-49767, "
                 "CVE-2025-66221, CVE-2026-21860, CVE-2026-27199"),
    "pyyaml": ("5.4", False, "CVE-2020-14343"),
    # bench
    "pillow": ("12.3.0", False, "CVE-2026-40192, CVE-2026-55379"),
}


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def groups() -> dict[str, list[Requirement]]:
    """group ("runtime" or an extra's name) → its requirements, self-references included."""
    raw = {"runtime": PROJECT["dependencies"], **PROJECT["optional-dependencies"]}
    return {group: [Requirement(line) for line in lines] for group, lines in raw.items()}


def is_self(req: Requirement) -> bool:
    """`kirim[worker]` in an extra: the project's own other extras, no version of its own."""
    return canonicalize_name(req.name) == canonicalize_name(PROJECT["name"])


def requirements() -> list[tuple[str, Requirement]]:
    """(group, requirement) for the runtime dependencies and every optional extra (third-party
    packages only: an extra's `kirim[...]` line is checked by the extras tests below)."""
    return [(group, req) for group, reqs in groups().items() for req in reqs if not is_self(req)]


def declared() -> dict[NormalizedName, SpecifierSet]:
    return {canonicalize_name(req.name): req.specifier for _, req in requirements()}


def pins() -> dict[NormalizedName, Version]:
    """name → pinned version; every non-comment line of the constraints file is `name==X`."""
    pinned: dict[NormalizedName, Version] = {}
    for number, raw in enumerate((ROOT / CONSTRAINTS).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        found = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;=<>!~,]+)", line)
        assert found, f"{CONSTRAINTS}:{number} is not an exact pin `name==version`: {raw!r}"
        name = canonicalize_name(found.group(1))
        assert name not in pinned, f"{CONSTRAINTS}:{number} pins {name} twice"
        pinned[name] = Version(found.group(2))
    return pinned


def floor(spec: SpecifierSet) -> Version | None:
    """The lowest version the specifier admits, if it has a lower bound."""
    lows = [Version(s.version.removesuffix(".*")) for s in spec
            if s.operator in (">=", ">", "==", "~=", "===")]
    return max(lows, default=None)


def ceiling(spec: SpecifierSet) -> Version | None:
    """The upper bound of the specifier (exclusive for `<`, inclusive for `<=` and `==`)."""
    highs: list[Version] = []
    for s in spec:
        if s.operator == "~=":
            v = Version(s.version)
            highs.append(next_release(v, len(v.release) - 2))
        elif s.operator in ("<", "<=", "==", "===") and not s.version.endswith(".*"):
            highs.append(Version(s.version))
        elif s.operator == "==":  # ==1.4.*
            v = Version(s.version.removesuffix(".*"))
            highs.append(next_release(v, len(v.release) - 1))
    return min(highs, default=None)


def next_release(v: Version, index: int) -> Version:
    """v with release component `index` bumped and the rest dropped: 1.4.2, 0 → 2."""
    parts = list(v.release[: index + 1])
    parts[index] += 1
    return Version(".".join(map(str, parts)))


def next_breaking(v: Version) -> Version:
    """The next release that may break: next major; for 0.x the next minor; 0.0.x → 0.1."""
    major, minor = (*v.release, 0)[:2]
    if major >= 1:
        return next_release(v, 0)
    return next_release(v, 1) if minor >= 1 else Version("0.1")


REQUIREMENTS = requirements()
IDS = [f"{group}:{req.name}" for group, req in REQUIREMENTS]


# --- pyproject.toml -----------------------------------------------------------------------

@pytest.mark.parametrize(("group", "req"), REQUIREMENTS, ids=IDS)
def test_every_requirement_has_a_floor_and_an_upper_bound(group: str, req: Requirement) -> None:
    low, high = floor(req.specifier), ceiling(req.specifier)
    assert low is not None, f"{group}: {req} has no lower bound"
    assert high is not None, f"{group}: {req} has no upper bound"
    assert low <= high, f"{group}: {req} admits nothing"
    assert high <= next_breaking(low), (
        f"{group}: {req} spans a breaking release: bound it below {next_breaking(low)} "
        "(next major; next minor in 0.x) or raise the floor")


def test_a_package_in_several_groups_has_the_same_bounds() -> None:
    seen: dict[NormalizedName, tuple[str, SpecifierSet]] = {}
    for group, req in REQUIREMENTS:
        name = canonicalize_name(req.name)
        if name in seen:
            assert seen[name][1] == req.specifier, f"{name}: {seen[name]} vs {group} {req}"
        seen.setdefault(name, (group, req.specifier))


@pytest.mark.parametrize(("spec", "low", "high"), [
    (">=0.28,<0.29", "0.28", "0.29"), (">=2.10,<3", "2.10", "3"), ("~=1.4.2", "1.4.2", "1.5"),
    ("==6.0.4", "6.0.4", "6.0.4"), ("==1.4.*", "1.4", "1.5"), (">=1", "1", None),
    ("<2", None, "2"),
])
def test_floor_and_ceiling(spec: str, low: str | None, high: str | None) -> None:
    assert floor(SpecifierSet(spec)) == (Version(low) if low else None)
    assert ceiling(SpecifierSet(spec)) == (Version(high) if high else None)


@pytest.mark.parametrize(("version", "breaking"), [
    ("5.7", "6"), ("2.4.1", "3"), ("0.28.1", "0.29"), ("0.165", "0.166"), ("0.0.31", "0.1"),
    ("26.1", "27"),
])
def test_next_breaking(version: str, breaking: str) -> None:
    assert next_breaking(Version(version)) == Version(breaking)


# --- extras: a light client install -------------------------------------------------------

# What each process kind needs beyond the bare client install (README.md, "Install").
EXTRAS = {"worker", "api", "flower", "cli", "dev", "bench"}
# Packages that only a worker, the API, Flower or the `kirim` command import: a bare
# `pip install kirim` (a service that only enqueues) must not pull them in.
NOT_IN_RUNTIME = {"flower", "tornado", "fastapi", "starlette", "uvicorn", "python-multipart",
                  "celery-redbeat", "prometheus-client", "typer", "rich", "pygments",
                  "swagger-ui-bundle", "phonenumbers"}


def test_the_extras_are_the_documented_ones() -> None:
    assert set(PROJECT["optional-dependencies"]) == EXTRAS
    readme = (ROOT / "README.md").read_text()
    for extra in EXTRAS - {"bench"}:
        assert f"kirim[{extra}]" in readme, f"README.md does not say where kirim[{extra}] goes"


def test_the_runtime_dependencies_are_the_client_only() -> None:
    runtime = {canonicalize_name(req.name) for req in groups()["runtime"]}
    assert not runtime & NOT_IN_RUNTIME, f"the bare install pulls in {runtime & NOT_IN_RUNTIME}"


def test_an_extra_names_only_existing_extras_of_kirim() -> None:
    for group, reqs in groups().items():
        for req in filter(is_self, reqs):
            assert group != "runtime", f"the runtime dependencies name {req}"
            assert not req.specifier and req.extras <= EXTRAS - {group}, f"{group}: {req}"


def test_dev_installs_every_process_kind() -> None:
    named = {extra for req in filter(is_self, groups()["dev"]) for extra in req.extras}
    assert {"worker", "api", "flower", "cli"} <= named, "the tests run every kind of process"


def test_nothing_requires_the_full_phonenumbers() -> None:
    """phonenumberslite and phonenumbers install the same `phonenumbers` module: one only."""
    assert "phonenumbers" not in declared()
    assert "phonenumberslite" in {canonicalize_name(r.name) for r in groups()["runtime"]}
    assert "phonenumbers" not in pins(), f"{CONSTRAINTS} pins the full phonenumbers"


def test_the_packages_ship_py_typed_and_their_lua() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {"*.lua", "py.typed"} <= set(data["package-data"]["*"])
    for package in ("producer", "worker"):
        assert (ROOT / package / "py.typed").is_file(), f"{package}/py.typed is missing"


# --- deploy/constraints.txt ---------------------------------------------------------------

def test_constraints_pin_neither_the_project_nor_an_editable_install() -> None:
    text = (ROOT / CONSTRAINTS).read_text()
    assert "kirim" not in pins()
    assert not re.search(r"^\s*-", text, re.M), "options or editable lines in the pins"
    assert text.startswith("#") and "Regenerate" in text, "the header says how to regenerate"


@pytest.mark.parametrize(("group", "req"), REQUIREMENTS, ids=IDS)
def test_every_requirement_is_pinned_inside_its_bounds(group: str, req: Requirement) -> None:
    pinned = pins().get(canonicalize_name(req.name))
    assert pinned is not None, f"{req.name} is not pinned in {CONSTRAINTS}: regenerate it"
    assert req.specifier.contains(pinned, prereleases=True), (
        f"{CONSTRAINTS} pins {req.name}=={pinned}, outside pyproject's {group} {req}")


# --- known CVEs ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(KNOWN_CVE_FLOORS))
def test_floors_and_pins_clear_known_cves(name: str) -> None:
    minimum, must_declare, advisories = KNOWN_CVE_FLOORS[name]
    key = canonicalize_name(name)
    spec = declared().get(key)
    if must_declare:
        assert spec is not None, f"pyproject.toml must declare {name}>={minimum} ({advisories})"
    if spec is not None:
        low = floor(spec)
        assert low is not None and low >= Version(minimum), (
            f"pyproject.toml admits {name} {spec}, below {minimum} ({advisories})")
    pinned = pins().get(key)
    if pinned is not None:
        assert pinned >= Version(minimum), (
            f"{CONSTRAINTS} pins {name}=={pinned}, below {minimum} ({advisories})")


# --- every install goes through the pins --------------------------------------------------

def logical_lines(path: Path) -> list[str]:
    """Lines with backslash continuations joined (Dockerfile, shell)."""
    return re.sub(r"\\\n", " ", path.read_text()).splitlines()


def test_make_installs_with_the_constraints() -> None:
    makefile = logical_lines(ROOT / "Makefile")
    installs = [line for line in makefile if re.search(r"pip install .*-e\s+'?\.", line)]
    assert installs, "no `pip install -e .` in the Makefile"
    for line in installs:
        assert f"-c {CONSTRAINTS}" in line, f"Makefile installs without the pins: {line.strip()}"
    stamp = next(line for line in makefile if line.startswith("$(STAMP):"))
    assert CONSTRAINTS in stamp.split(":", 1)[1], "new pins do not reinstall the venv"


def test_the_image_installs_with_the_constraints() -> None:
    lines = logical_lines(ROOT / "Dockerfile")
    copy = next((i for i, line in enumerate(lines)
                 if re.match(rf"COPY\s+{re.escape(CONSTRAINTS)}\s", line)), None)
    assert copy is not None, f"the Dockerfile does not COPY {CONSTRAINTS}"
    target = lines[copy].split()[-1]
    installs = [i for i, line in enumerate(lines)
                if "pip install" in line and not line.lstrip().startswith("#")]
    assert installs, "the Dockerfile installs nothing"
    for i in installs:
        assert f"-c {target}" in lines[i], f"Dockerfile installs without the pins: {lines[i]}"
    assert copy < installs[0], "the pins are copied after the first install"
    code = next(i for i, line in enumerate(lines) if re.match(r"COPY\s+producer\b", line))
    assert installs[0] < code, "dependencies are installed after the code is copied (no cache)"


def test_the_image_installs_every_extra_it_runs() -> None:
    """One image runs workers, beat, Flower and the API (and has the `kirim` command)."""
    lines = logical_lines(ROOT / "Dockerfile")
    deps = next(line for line in lines if "pip install" in line and "-r " in line)
    for extra in ("worker", "api", "flower", "cli"):
        assert f"'{extra}'" in deps, f"the image's dependency layer lacks the {extra} extra"


def test_ci_installs_through_make() -> None:
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"^make\b", ci, re.M), ".ci/run does not go through make"
    for line in ci.splitlines():
        if "pip install" in line:
            assert f"-c {CONSTRAINTS}" in line, f".ci/run installs without the pins: {line}"
