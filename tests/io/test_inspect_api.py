"""raftpy.io.inspect used directly: inspect_directory's report on hand-built directories.

The directories are test_inspect.py's (the libraft sample of spec §3.12, then
damaged one way at a time); here the values of the report are checked, not
the command's text.  Every inspection is wrapped in ``unchanged``, which
hashes the whole tree (names, inodes, sizes, mtimes, ctimes, contents)
before and after: inspect must never change a directory, damaged or not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest
from test_inspect import (
    CONF,
    CORRUPTIONS,
    FORMAT,
    OPEN_BATCH,
    OPEN_SIZE,
    SAMPLE_2_4,
    SEG_1,
    SEG_2_4,
    SNAPSHOT,
    build_sound,
    flip,
    segment,
    write,
)

from raftpy.core.types import Entry, EntryType
from raftpy.errors import IOError_, NotFoundError, RaftError
from raftpy.io.inspect import (
    DirectoryReport,
    Ending,
    MetaState,
    inspect_directory,
    read_entries,
)
from raftpy.io.metadata import Metadata, encode_metadata

THREAD_TIMEOUT_S = 20


def tree_hash(d: Path) -> str:
    """Everything a write, truncate, rename, create or delete would change
    (atime excluded: reading may update it)."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for name in [root, *sorted(os.path.join(root, f) for f in files)]:
            st = os.lstat(name)
            h.update(f"{name}|{st.st_mode}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|"
                     f"{st.st_ctime_ns}\n".encode())
            if os.path.isfile(name) and not os.path.islink(name):
                h.update(Path(name).read_bytes())
    return h.hexdigest()


def unchanged(d: Path) -> DirectoryReport:
    """inspect_directory(d), asserting it left d exactly as it was."""
    before = tree_hash(d)
    report = inspect_directory(d)
    assert tree_hash(d) == before, "inspect_directory changed the directory"
    return report


def test_tree_hash_sees_a_change(tmp_path: Path) -> None:
    """The proof above is only as good as the hash: a one-byte rewrite of the
    same content, a rename and a truncation all change it."""
    d = build_sound(tmp_path / "d")
    before = tree_hash(d)
    write(d, SEG_1, (d / SEG_1).read_bytes())      # same bytes, new mtime/ctime
    assert tree_hash(d) != before
    before = tree_hash(d)
    os.rename(d / "metadata2", d / "metadata2.x")
    os.rename(d / "metadata2.x", d / "metadata2")
    assert tree_hash(d) != before
    before = tree_hash(d)
    os.truncate(d / SEG_2_4, 100)
    assert tree_hash(d) != before


def test_healthy_directory(tmp_path: Path) -> None:
    image = (FORMAT + OPEN_BATCH).ljust(OPEN_SIZE, b"\0")
    report = unchanged(build_sound(tmp_path / "d", open_segment=image))
    assert report.ok and report.problems == []
    md = report.metadata
    assert md.current == Metadata(3, 2, 1) and md.winner == "metadata1"
    assert [(f.name, f.state, f.size) for f in md.files] == [
        ("metadata1", MetaState.OK, 32), ("metadata2", MetaState.OK, 32)]
    assert md.files[1].content == Metadata(2, 2, 0)
    segs = [(s.name, s.is_open, s.first, s.last, s.entries, s.batches, s.term_min, s.term_max,
             s.ending, s.damage_offset, s.loaded) for s in report.segments]
    assert segs == [
        (SEG_1, False, 1, 1, 1, 1, 1, 1, Ending.CLEAN, None, True),
        (SEG_2_4, False, 2, 4, 3, 2, 2, 2, Ending.CLEAN, None, True),
        ("open-1", True, 5, 6, 2, 1, 3, 3, Ending.ZERO_TAIL, 8 + len(OPEN_BATCH), True)]
    assert report.segment("open-1").size == OPEN_SIZE
    assert "renames it to 0000000000000005-0000000000000006" in report.segment("open-1").note
    (snap,) = report.snapshots
    assert (snap.name, snap.term, snap.index, snap.timestamp) == (SNAPSHOT, 2, 3, 941993)
    assert (snap.configuration, snap.conf_index, snap.lz4, snap.content_checksum,
            snap.raw_size) == (CONF, 1, True, True, 32)
    assert report.loaded_snapshot == snap
    assert (report.log.snapshot, report.log.start_index, report.log.last_index,
            report.log.entries) == (SNAPSHOT, 1, 6, 6)
    s = report.summary
    assert (s.ok, s.errors, s.term, s.voted_for, s.closed_segments, s.open_segments,
            s.entries, s.start_index, s.last_index, s.term_min, s.term_max, s.snapshots) == (
        True, 0, 2, 1, 2, 1, 6, 1, 6, 1, 3, 1)


def test_read_entries_numbers_and_decodes(tmp_path: Path) -> None:
    report = unchanged(build_sound(tmp_path / "d", open_segment=FORMAT + OPEN_BATCH))
    entries = [e for seg in report.segments for e in read_entries(report, seg)]
    assert [(e.index, e.term, e.type) for e in entries] == [
        (1, 1, EntryType.CHANGE), (2, 2, EntryType.COMMAND), (3, 2, EntryType.BARRIER),
        (4, 2, EntryType.COMMAND), (5, 3, EntryType.COMMAND), (6, 3, EntryType.COMMAND)]
    assert entries[0].configuration == CONF and entries[0].configuration_error is None
    assert all(e.configuration is None for e in entries[1:])
    assert bytes(entries[3].payload) == b"ABCDEFGHIJKLMNO\0"
    assert bytes(entries[5].payload) == b"world!!!"


def test_truncated_closed_segment(tmp_path: Path) -> None:
    d = build_sound(tmp_path / "d")
    write(d, SEG_2_4, SAMPLE_2_4[:100])    # cut inside batch 2 (bytes 72..120)
    report = unchanged(d)
    seg = report.segment(SEG_2_4)
    assert not report.ok
    assert (seg.ending, seg.damage_offset, seg.entries, seg.valid_last) == (
        Ending.CORRUPT, 72, 2, 3)
    assert not seg.holds_its_range
    (problem,) = report.problems
    assert problem.file == SEG_2_4
    assert problem.message == (f"{SEG_2_4}: entries batch 2 starting at byte 72: short read: "
                               f"28 bytes instead of 32")
    assert (report.log.last_index, report.summary.errors) == (3, 1)


def test_corrupt_batch_in_a_closed_segment(tmp_path: Path) -> None:
    d = build_sound(tmp_path / "d")
    flip(d, SEG_2_4, 8 + 8 + 8)            # the term of batch 1's first entry: header crc
    report = unchanged(d)
    seg = report.segment(SEG_2_4)
    assert (seg.ending, seg.damage_offset, seg.entries) == (Ending.CORRUPT, 8, 0)
    damage, behind = report.problems
    assert damage.file == SEG_2_4 and damage.message == (
        f"{SEG_2_4}: entries batch 1 starting at byte 8: header checksum mismatch (a valid "
        f"batch follows at byte 72: damage in the middle of the file, not a torn tail)")
    assert report.segment(SEG_1).problems == () and report.segment(SEG_1).ending is Ending.CLEAN
    # libraft's load stops at the damaged segment, which leaves the log behind the snapshot.
    assert report.log.last_index == 1
    assert behind.file == "" and "behind last snapshot's index 3" in behind.message


def test_torn_tail_of_an_open_segment_is_not_a_problem(tmp_path: Path) -> None:
    image = (FORMAT + OPEN_BATCH + b"\xee" * 40).ljust(OPEN_SIZE, b"\0")
    report = unchanged(build_sound(tmp_path / "d", open_segment=image))
    seg = report.segment("open-1")
    assert report.ok
    assert (seg.ending, seg.damage_offset, seg.entries) == (Ending.TORN_TAIL, 72, 2)
    assert "truncates the file to 72 bytes" in seg.note


@pytest.mark.parametrize("case, state, message", [
    ("same version", None, "metadata1 and metadata2 are both at version 3"),
    ("bad format", MetaState.BAD, "decode content of metadata2: bad format version 2"),
    ("too long", MetaState.BAD, "metadata2 has size 40 instead of 32"),
])
def test_bad_metadata(tmp_path: Path, case: str, state: MetaState | None, message: str) -> None:
    d = build_sound(tmp_path / "d")
    good = encode_metadata(2, 2, 0)
    write(d, "metadata2", {"same version": encode_metadata(3, 2, 0),
                           "bad format": b"\x02" + good[1:], "too long": good + bytes(8)}[case])
    report = unchanged(d)
    md = report.metadata
    assert (md.current, md.winner, report.summary.term) == (None, None, None)
    assert [p.message for p in report.problems] == [message]
    if state is not None:
        assert md.files[1].state is state and md.files[1].problem is not None
        assert report.problems[0].file == "metadata2"
    else:                                  # neither file alone is at fault
        assert report.problems[0].file == "" and md.files[1].state is MetaState.OK
    assert report.segments[0].problems == ()   # the rest is still inspected


def test_short_metadata_is_a_crash_trace_not_a_problem(tmp_path: Path) -> None:
    d = build_sound(tmp_path / "d")
    write(d, "metadata2", encode_metadata(2, 2, 0)[:20])
    report = unchanged(d)
    assert report.ok and report.metadata.files[1].state is MetaState.SHORT
    assert report.metadata.current == Metadata(3, 2, 1)


def test_empty_directory_is_a_fresh_server(tmp_path: Path) -> None:
    report = unchanged(tmp_path)
    assert report.ok
    assert report.metadata.current == Metadata(0, 0, 0) and report.metadata.winner is None
    assert [f.state for f in report.metadata.files] == [MetaState.MISSING] * 2
    assert report.segments == () and report.snapshots == () and report.loaded_snapshot is None
    assert (report.log.start_index, report.log.last_index, report.log.entries) == (1, 0, 0)
    s = report.summary
    assert (s.term, s.voted_for, s.term_min, s.term_max) == (0, 0, None, None)


def test_not_a_directory_and_missing(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(IOError_, match="is not a directory"):
        inspect_directory(tmp_path / "file")
    with pytest.raises(NotFoundError, match="does not exist"):
        inspect_directory(str(tmp_path / "missing"))
    assert issubclass(NotFoundError, RaftError) and issubclass(IOError_, RaftError)
    assert (tmp_path / "file").read_bytes() == b"x" and not (tmp_path / "missing").exists()


NOBODY_UID = 65534


def inspect_as_nobody(d: Path) -> str:
    """As root: the message inspect_directory raises in a child that dropped to
    uid nobody (root reads any directory), waited for within a bound."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:                           # the child: no pytest machinery, just the call
        try:
            os.setgid(NOBODY_UID)
            os.setuid(NOBODY_UID)
            inspect_directory(d)
            message = "no error"
        except Exception as err:
            message = f"{type(err).__name__}: {err}"
        os.write(write_fd, message.encode())
        os._exit(0)
    os.close(write_fd)
    reaped = False
    try:
        deadline = time.monotonic() + THREAD_TIMEOUT_S
        while not reaped:
            assert time.monotonic() < deadline, "child did not finish"
            reaped = os.waitpid(pid, os.WNOHANG) != (0, 0)
            time.sleep(0 if reaped else 0.01)
        return os.read(read_fd, 4096).decode()
    finally:
        os.close(read_fd)
        if not reaped:                     # only on a timeout: our own child, by its pid
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_unreadable_directory() -> None:
    d = Path(tempfile.mkdtemp(prefix="raftpy-inspect-", dir="/tmp"))   # traversable parent
    try:
        build_sound(d)
        d.chmod(0o300)                     # no read: cannot be listed
        if os.geteuid() == 0:
            message = inspect_as_nobody(d)
        else:
            with pytest.raises(IOError_) as info:
                inspect_directory(d)
            message = f"{type(info.value).__name__}: {info.value}"
        assert message == f"IOError_: directory '{d}' is not readable"
    finally:
        d.chmod(0o700)
        shutil.rmtree(d)


def in_thread(d: Path) -> DirectoryReport:
    """inspect_directory in a thread, bounded in time (a blocking open would hang)."""
    result: list[DirectoryReport] = []
    thread = threading.Thread(target=lambda: result.append(unchanged(d)), daemon=True)
    thread.start()
    thread.join(THREAD_TIMEOUT_S)
    assert not thread.is_alive(), "inspect_directory blocked"
    return result[0]


def test_fifo_and_directory_under_file_names_are_unreadable_not_hangs(tmp_path: Path) -> None:
    d = build_sound(tmp_path / "d")
    os.remove(d / SEG_2_4)
    os.mkfifo(d / SEG_2_4)                 # nobody ever writes to it
    os.remove(d / "metadata2")
    os.mkdir(d / "metadata2")
    report = in_thread(d)
    seg = report.segment(SEG_2_4)
    assert seg.ending is Ending.UNREADABLE
    assert [p.message for p in seg.problems] == [f"{SEG_2_4}: cannot read: not a regular file"]
    assert report.metadata.files[1].problem is not None
    assert report.metadata.files[1].problem.message == "metadata2: cannot read: Is a directory"


def test_bad_change_entry_is_found_by_its_position(tmp_path: Path) -> None:
    d = build_sound(tmp_path / "d")
    write(d, SEG_1, segment([Entry(1, EntryType.CHANGE, b"\x02" + bytes(15))]))
    report = unchanged(d)
    problem = report.problems[0]
    assert problem.file == SEG_1 and problem.message == (
        f"{SEG_1}: entry 1 of the file (CHANGE): configuration: bad version or length")
    assert report.segment(SEG_1).ending is Ending.CLEAN and report.segment(SEG_1).entries == 1
    (entry,) = read_entries(report, report.segment(SEG_1))
    assert entry.configuration is None and entry.configuration_error is not None


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_every_damage_is_a_problem_and_leaves_the_directory_alone(tmp_path: Path,
                                                                  case: str) -> None:
    damage, message = CORRUPTIONS[case]
    d = build_sound(tmp_path / "d")
    damage(d)
    report = unchanged(d)
    assert not report.ok and not report.summary.ok
    assert any(message in p.message for p in report.problems), report.problems
    names = set(os.listdir(d)) | {""}
    assert all(p.file in names for p in report.problems), report.problems
    for seg in report.segments:            # damage is located: the offset is inside the file
        if seg.damage_offset is not None:
            assert 0 <= seg.damage_offset <= seg.size


def test_torn_write_with_valid_batches_after_it_in_an_open_segment(tmp_path: Path) -> None:
    """Damage in the first batch with a valid batch right after it, within the
    reach of one write (layout.torn_reach): a torn write, located at byte 8."""
    d = build_sound(tmp_path / "d")
    image = bytearray(FORMAT + OPEN_BATCH + OPEN_BATCH)
    image[8 + 30] ^= 0xFF                  # inside the first batch's header
    write(d, "open-1", bytes(image).ljust(OPEN_SIZE, b"\0"))
    report = unchanged(d)
    seg = report.segment("open-1")
    assert report.ok, report.problems
    assert (seg.ending, seg.damage_offset, seg.entries) == (Ending.TORN_TAIL, 8, 0)


def test_reports_are_frozen_plain_values(tmp_path: Path) -> None:
    report = unchanged(build_sound(tmp_path / "d", open_segment=FORMAT + OPEN_BATCH))
    values = [report, report.metadata, *report.metadata.files, *report.segments,
              *report.snapshots, report.log, report.summary,
              next(read_entries(report, report.segments[0]))]
    for value in values:
        assert dataclasses.is_dataclass(value), type(value)
        name = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, None)
    assert inspect_directory(report.directory) == report     # equal values, run after run
