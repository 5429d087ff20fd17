"""raftpy.io.inspect on data directories written by real libraft (Debian's libraft 0.15).

tests/interop/raftcompat.c (built by test_libraft.py's fixture) writes a
directory; inspect_directory must call it sound, report the term and vote
libraft wrote, and plan the log exactly as libraft's own load of a copy of
the directory does: the same snapshot, start index and last index, and
read_entries must return the very entries libraft loads.  The directory
itself must be left untouched (libraft's load closes open segments and
deletes spares, so libraft loads a copy, made first).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_libraft import raftcompat, run  # noqa: F401  (raftcompat: fixture)

from raftpy.io.inspect import DirectoryReport, Ending, inspect_directory, read_entries
from raftpy.io.metadata import Metadata


def tree(d: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Name -> (inode, mtime, ctime, content) of every file, and the directory's own."""
    out = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_ctime_ns,
                    p.read_bytes()) for p in sorted(d.iterdir())}
    out["."] = (d.stat().st_ino, d.stat().st_mtime_ns, d.stat().st_ctime_ns, b"")
    return out


def inspect_and_libraft_load(exe: Path, data_dir: Path, tmp: Path,
                             ) -> tuple[DirectoryReport, dict]:
    copy = tmp / "libraft-load"
    shutil.copytree(data_dir, copy)
    before = tree(data_dir)
    report = inspect_directory(data_dir)
    entries = [(e.term, int(e.type), bytes(e.payload))
               for seg in report.segments if seg.loaded for e in read_entries(report, seg)]
    assert tree(data_dir) == before, "inspect changed libraft's directory"
    loaded = run(exe, "load", copy)
    assert entries == [(e["term"], e["type"], bytes.fromhex(e["payload"]))
                       for e in loaded["entries"]]
    return report, loaded


def check_plan(report: DirectoryReport, loaded: dict) -> None:
    assert report.ok, report.problems
    assert report.metadata.current is not None
    assert (report.metadata.current.term, report.metadata.current.voted_for) == (
        loaded["term"], loaded["vote"]) == (2, 1)
    log = report.log
    assert log.start_index == loaded["start_index"]
    assert log.entries == len(loaded["entries"])
    assert log.last_index == loaded["start_index"] + len(loaded["entries"]) - 1
    snap = report.loaded_snapshot
    if loaded["snapshot"] is None:
        assert snap is None
    else:
        assert snap is not None
        assert (snap.term, snap.index) == (loaded["snapshot"]["term"], loaded["snapshot"]["index"])
        assert snap.conf_index == loaded["snapshot"]["configuration_index"]
        assert snap.raw_size == len(bytes.fromhex(loaded["snapshot"]["data"]))


def test_closed_libraft_directory(raftcompat: Path, tmp_path: Path) -> None:  # noqa: F811
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    run(raftcompat, "write", data_dir)
    report, loaded = inspect_and_libraft_load(raftcompat, data_dir, tmp_path)
    check_plan(report, loaded)
    assert report.metadata.current == Metadata(3, 2, 1)
    assert len(report.segments) >= 3 and not any(s.is_open for s in report.segments)
    assert all(s.ending is Ending.CLEAN and s.holds_its_range for s in report.segments)
    ranges = [(s.first, s.last) for s in report.segments]
    assert ranges[0] == (1, 1)
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False)), ranges
    first = next(read_entries(report, report.segments[0]))
    assert first.configuration is not None and len(first.configuration) == 3


@pytest.mark.parametrize("compress", [True, False], ids=["lz4", "raw"])
def test_libraft_directory_with_open_segments_and_snapshots(raftcompat: Path,  # noqa: F811
                                                            tmp_path: Path,
                                                            compress: bool) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    opts = ["--snapshot-every", "1000", "--trailing", "300"]
    if not compress:
        opts.append("--no-compression")
    run(raftcompat, "write", data_dir, "--no-close", "--batches", "1500", *opts)
    report, loaded = inspect_and_libraft_load(raftcompat, data_dir, tmp_path)
    check_plan(report, loaded)
    assert loaded["snapshot"] is not None and loaded["start_index"] > 1
    opened = [s for s in report.segments if s.is_open]
    assert any(s.entries and s.ending is Ending.ZERO_TAIL for s in opened), opened
    assert all(s.ending in (Ending.CLEAN, Ending.ZERO_TAIL, Ending.EMPTY) for s in opened)
    assert len(report.snapshots) == 2
    assert all(s.lz4 is compress and s.problems == () for s in report.snapshots)
