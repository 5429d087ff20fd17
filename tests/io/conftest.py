"""Fixtures shared by the tests of raftpy/io."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

SCRATCH = pathlib.Path(__file__).resolve().parent / ".aio-scratch"


@pytest.fixture
def data_dir() -> Iterator[str]:
    """A fresh directory on the real disk (tests/io/.aio-scratch is not tmpfs:
    O_DIRECT, AIO and real fsync), removed afterwards."""
    SCRATCH.mkdir(exist_ok=True)
    path = tempfile.mkdtemp(dir=SCRATCH)
    yield path
    shutil.rmtree(path, ignore_errors=True)
