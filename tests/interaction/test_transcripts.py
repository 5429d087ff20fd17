"""Transcript tests: each tests/interaction/*.txt is a script of commands and the
trace lines they must produce (raftpy/testing/script.py describes the language).

Regenerate after an intended behaviour change with ``RAFTPY_REWRITE=1 python -m
pytest tests/interaction`` and review the change as a diff.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from raftpy.testing.script import run_file

HERE = Path(__file__).parent
FILES = sorted(HERE.glob("*.txt"))


def test_there_are_transcripts() -> None:
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path: Path) -> None:
    expected, actual = run_file(path)
    if os.environ.get("RAFTPY_REWRITE"):
        path.write_text(actual)
        return
    if actual != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True),
            f"{path.name} (expected)", f"{path.name} (actual)"))
        pytest.fail(f"transcript differs (RAFTPY_REWRITE=1 to regenerate):\n{diff}")
