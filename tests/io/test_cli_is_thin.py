"""cli.py parses arguments and prints; the logic of ``raftpy inspect`` lives in raftpy.io.inspect,
that of the admin commands in raftpy.admin.

``thin_cli_violations`` reads a module's source with ``ast`` and lists what
would make it more than a front end: a runtime import of anything but a few
standard modules, raftpy.errors, raftpy.io.inspect and raftpy.admin; a class; calls that
compute over the report (sum, min, max, sorted, set, ...), read files or list
directories; constructing report values or reaching into the library's
private helpers; a function that returns anything but text, JSON, an exit
status, nothing, or the argument parser; a function longer than a screen.
The checker is itself checked on snippets of the logic cli.py used to hold,
so that an empty list for cli.py means something.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "raftpy" / "cli.py"
LIBRARY = ROOT / "raftpy" / "io" / "inspect.py"
IMPORT_OK = {"argparse", "dataclasses", "json", "os", "sys"}
FROM_OK: dict[str, set[str] | None] = {    # None: any public name
    "__future__": {"annotations"}, "collections.abc": {"Sequence", "Iterable", "Iterator"},
    "enum": {"Enum"}, "typing": {"TYPE_CHECKING", "Any", "TextIO"},
    "raftpy.errors": {"RaftError", "NotLeaderError", "NoConnectionError"},
    "raftpy.io.inspect": None, "raftpy": {"admin"}}
LIBRARY_CALLS_OK = {"inspect_directory", "read_entries"}
OS_OK = {"dup2", "open", "devnull", "O_WRONLY"}      # silencing a closed stdout, nothing else
DATACLASSES_OK = {"fields", "is_dataclass"}          # walking a report into JSON
COMPUTING = {"sum", "min", "max", "sorted", "set", "frozenset", "filter", "map", "any", "all",
             "open", "reversed", "__import__", "exec", "eval"}
RETURNS_OK = {"str", "None", "int", "Any", "dict[str, Any]", "argparse.ArgumentParser"}
MAX_FUNCTION_LINES = 30


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (annotations only)."""
    out: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _imports(tree: ast.Module, skip: set[int]) -> tuple[list[str], dict[str, str]]:
    """(violations, local name -> module) of the runtime imports."""
    bad, names = [], {}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in IMPORT_OK:
                    bad.append(f"imports {alias.name}")
                names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            for alias in node.names:
                names[alias.asname or alias.name] = module
                allowed = FROM_OK.get(module, set())
                if allowed is not None and alias.name not in allowed:
                    bad.append(f"imports {alias.name} from {module or '.'}")
                if alias.name.startswith("_"):
                    bad.append(f"imports private {alias.name} from {module}")
    return bad, names


def _call_violations(node: ast.Call, names: dict[str, str]) -> list[str]:
    func = node.func
    if isinstance(func, ast.Name):
        if func.id in COMPUTING:
            return [f"calls {func.id}()"]
        if names.get(func.id) == "raftpy.io.inspect" and func.id not in LIBRARY_CALLS_OK:
            return [f"constructs or calls {func.id} itself"]
    return []


def _attribute_violations(node: ast.Attribute, names: dict[str, str]) -> list[str]:
    """os and dataclasses are there for two narrow jobs; any other use is logic."""
    if node.attr.startswith("_") and not node.attr.startswith("__"):
        return [f"reaches into private .{node.attr}"]
    module = names.get(node.value.id) if isinstance(node.value, ast.Name) else None
    allowed = {"os": OS_OK, "dataclasses": DATACLASSES_OK}.get(module or "")
    if allowed is not None and node.attr not in allowed:
        return [f"uses {module}.{node.attr}"]
    return []


def _function_violations(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    bad = []
    returns = ast.unparse(node.returns) if node.returns is not None else "(none)"
    if returns not in RETURNS_OK:
        bad.append(f"{node.name}() returns {returns}, not text, JSON or an exit status")
    length = (node.end_lineno or node.lineno) - node.lineno + 1
    if length > MAX_FUNCTION_LINES:
        bad.append(f"{node.name}() is {length} lines long")
    return bad


def thin_cli_violations(source: str) -> list[str]:
    """Everything in ``source`` that is more than argument parsing and printing."""
    tree = ast.parse(source)
    skip = _type_checking_only(tree)
    bad, names = _imports(tree, skip)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ClassDef):
            bad.append(f"defines class {node.name}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bad += _function_violations(node)
        elif isinstance(node, ast.Call):
            bad += _call_violations(node, names)
        elif isinstance(node, ast.Attribute):
            bad += _attribute_violations(node, names)
    return bad


def test_cli_is_only_parsing_and_printing() -> None:
    source = CLI.read_text()
    assert thin_cli_violations(source) == []
    tree = ast.parse(source)
    froms = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "raftpy.io.inspect" in froms
    called = {n.func.id for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"inspect_directory", "read_entries"} <= called    # the work is delegated
    via_admin = {n.func.attr for n in ast.walk(tree)
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and isinstance(n.func.value, ast.Name) and n.func.value.id == "admin"}
    assert {"status", "add", "assign", "remove", "transfer", "snapshot"} <= via_admin
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"main", "_parser", "run_inspect", "render_text", "report_json"} <= functions


# What cli.py held before the logic moved to raftpy.io.inspect, cut down.
LOGIC_SNIPPETS = {
    "scanner": "from raftpy import _bindings\n",
    "layout": "from raftpy.io import layout\n",
    "metadata": "from raftpy.io.metadata import choose_metadata\n",
    "error classes": "from raftpy.errors import CorruptError\n",
    "lazy import": "def f() -> None:\n    import raftpy.io.layout\n",
    "report class": "from dataclasses import dataclass\n@dataclass\nclass Report:\n    ok: bool\n",
    "reading": "def _read(p: str) -> str:\n    with open(p, 'rb') as f:\n        return ''\n",
    "listing": "import os\ndef f(d: str) -> str:\n    return str(os.listdir(d))\n",
    "directory check": "import os\ndef f(d: str) -> str:\n    return str(os.path.isdir(d))\n",
    "summing": "def f(r: Any) -> str:\n    return str(sum(s.is_open for s in r.segments))\n",
    "term range": "def f(r: Any) -> str:\n    return str(min(s.term_min for s in r.segments))\n",
    "judging": ("def _judge_open(seg: Any) -> tuple[list[str], str]:\n"
                "    return [], ''\n"),
    "report value": "def plan_log(s: Any) -> LogReport:\n    ...\n",
    "building a report": ("from raftpy.io.inspect import SegmentReport\n"
                          "def f() -> str:\n    return str(SegmentReport('x'))\n"),
    "changing a report": ("import dataclasses\n"
                          "def f(s: Any) -> str:\n    return str(dataclasses.replace(s))\n"),
    "from os": "from os import listdir\n",
    "private helper": ("from raftpy.io import inspect\n"
                       "def f(d: str) -> str:\n    return str(inspect._read(d, 'x'))\n"),
    "long function": "def f() -> None:\n" + "    pass\n" * MAX_FUNCTION_LINES,
}


@pytest.mark.parametrize("case", list(LOGIC_SNIPPETS))
def test_the_checker_catches_logic(case: str) -> None:
    assert thin_cli_violations(LOGIC_SNIPPETS[case]), case


def test_the_checker_allows_annotation_only_imports() -> None:
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
              "    from raftpy.core.configuration import Configuration\n"
              "def describe(conf: Configuration) -> str:\n    return ''\n")
    assert thin_cli_violations(source) == []


@pytest.mark.parametrize("path", [CLI, LIBRARY], ids=["cli", "inspect"])
def test_both_modules_say_what_they_may_import(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and "May import:" in doc, path.name
