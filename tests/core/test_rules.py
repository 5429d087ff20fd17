"""House rules checked by parsing the source (DESIGN.md): what core and testing import,
no global random state, no placeholders."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = sorted((ROOT / "raftpy" / "core").glob("*.py"))
TESTING = sorted((ROOT / "raftpy" / "testing").glob("*.py"))
FORBIDDEN = {"asyncio", "os", "socket", "time", "threading", "subprocess", "select",
             "selectors", "multiprocessing", "signal", "io", "pathlib", "shutil"}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", CORE, ids=[p.name for p in CORE])
def test_core_imports_only_the_standard_library(path: Path) -> None:
    for name in imports(path):
        top = name.split(".")[0]
        if top == "raftpy":
            assert name.startswith("raftpy.core") or name == "raftpy.errors", name
        else:
            assert top in sys.stdlib_module_names, name
            assert top not in FORBIDDEN, name
            assert top != "_bindings"


@pytest.mark.parametrize("path", TESTING, ids=[p.name for p in TESTING])
def test_testing_imports_core_but_no_io(path: Path) -> None:
    for name in imports(path):
        top = name.split(".")[0]
        if top == "raftpy":
            assert name.split(".")[1] in ("core", "testing", "errors"), name
        else:
            assert top in sys.stdlib_module_names and top not in FORBIDDEN - {"pathlib"}, name


@pytest.mark.parametrize("path", CORE + TESTING, ids=[p.name for p in CORE + TESTING])
def test_no_global_random_state_and_no_placeholders(path: Path) -> None:
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "random"):
            assert node.attr == "Random", f"{path.name}: random.{node.attr}"
        if isinstance(node, ast.Raise) and node.exc is not None:
            assert "NotImplementedError" not in ast.dump(node.exc), path.name
    for word in ("TODO", "FIXME", "XXX"):
        assert word not in source, f"{path.name} contains {word}"


@pytest.mark.parametrize("path", CORE + TESTING, ids=[p.name for p in CORE + TESTING])
def test_every_module_opens_with_a_docstring_naming_its_imports(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and "May import" in doc, path.name


def test_core_benchmark_prints_json() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "core.py"), "--quick",
                          "--json"], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(rows) == 10
    assert {"sim_3servers_snapshot_take_ms", "sim_3servers_snapshot_install_ms"} <= {
        row["name"] for row in rows}
    for row in rows:
        assert {"name", "value", "unit"} <= row.keys() and row["value"] > 0


def test_mypy_strict_on_the_package() -> None:
    """House style 13: type hints checked with mypy --strict (the whole package)."""
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "raftpy"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_clean() -> None:
    """House style 13: ruff clean over the package, tests, benchmarks and examples."""
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "raftpy", "tests",
                          "benchmarks", "example"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
