"""The ``raftpy`` command.  Today one subcommand: ``raftpy inspect DIR``.

``inspect`` reads a libraft data directory (spec §3) and reports what is in it:
the two metadata files and which one wins, every segment (entries, index and
term ranges, how the file ends), every snapshot (configuration, data sizes,
LZ4 frame), leftover tmp, orphan and quarantined files, and whether the
segments chain together the way libraft's load (spec §3.7) requires.  Every
checksum is verified: batch header and data CRCs (the C scanner), snapshot
.meta CRCs, and LZ4 content checksums (by decompressing).  ``--entries``
dumps every entry; ``--json`` prints the same facts as one JSON document.

May import: the standard library, raftpy._bindings, raftpy.core, raftpy.errors
and raftpy.io.layout / raftpy.io.metadata (the pure format modules).

Rules:

* READ-ONLY.  Nothing in the directory is created, written, renamed,
  truncated or deleted; files are opened with ``open(path, "rb")`` only.
  Where libraft's load would change the directory (truncate a torn tail,
  delete tmp files) the report says so instead of doing it.
* The verdict follows libraft's load rules: a zero or torn tail in an OPEN
  segment is the normal trace of a crash and is reported, not an error; in a
  CLOSED segment anything but a clean end is corruption.  An open segment
  that ends inside its last batch (a crashed write that grew the file) is a
  torn tail for raftpy's store, which cuts it off; libraft's load refuses it
  (quirk 14), which the report notes.
* Exit status: 0 sound, 1 corruption or anything libraft would refuse to load
  (each error names the file and, for segments, the byte offset), 2 usage
  errors and a missing or unreadable directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from operator import itemgetter
from typing import Any, TextIO

from raftpy import _bindings
from raftpy._bindings import ScanOutcome, SegmentScan, Status
from raftpy.core.configuration import Configuration, decode_configuration
from raftpy.core.types import Entry, EntryType
from raftpy.errors import RaftError
from raftpy.io import layout
from raftpy.io.metadata import METADATA_FILES, Metadata, choose_metadata, decode_metadata

__all__ = ["main", "inspect_dir", "Report", "EXIT_OK", "EXIT_CORRUPT", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_CORRUPT = 1
EXIT_USAGE = 2
PREVIEW_BYTES = 16
_LZ4_FLG_CONTENT_SIZE = 0x08      # FLG bit: the frame header carries the content size
_LZ4_FLG_CONTENT_CHECKSUM = 0x04  # FLG bit: an xxh32 of the content follows the end mark


# ------------------------------------------------------------------ reports

@dataclass(frozen=True, slots=True)
class Problem:
    """Something that makes the directory unsound; ``message`` names the file."""

    file: str          # name inside the directory; "" when no single file is at fault
    message: str

    def __str__(self) -> str:
        return self.message


class MetaState(Enum):
    OK = "ok"
    MISSING = "missing"
    SHORT = "short"           # < 32 bytes: a crash during the first write; libraft deletes it
    BAD = "bad"


@dataclass(frozen=True, slots=True)
class MetadataFile:
    name: str
    state: MetaState
    size: int
    content: Metadata | None
    problem: Problem | None = None


@dataclass(frozen=True, slots=True)
class MetadataReport:
    files: tuple[MetadataFile, ...]
    current: Metadata | None      # what libraft would load; None when it would fail
    winner: str | None            # the file it comes from; None for a fresh server
    problems: tuple[Problem, ...]


class Ending(Enum):
    """How a segment file ends (the scanner's ScanOutcome, plus unreadable)."""

    CLEAN = "clean"
    EMPTY = "empty"
    ZERO_TAIL = "zero tail"
    TORN_TAIL = "torn tail"
    CORRUPT = "corrupt"
    UNREADABLE = "unreadable"


_ENDINGS = {ScanOutcome.CLEAN: Ending.CLEAN, ScanOutcome.EMPTY: Ending.EMPTY,
            ScanOutcome.ZERO_TAIL: Ending.ZERO_TAIL, ScanOutcome.TORN_TAIL: Ending.TORN_TAIL,
            ScanOutcome.CORRUPT: Ending.CORRUPT}


@dataclass(frozen=True, slots=True)
class SegmentReport:
    name: str
    is_open: bool
    size: int
    entries: int
    batches: int
    term_min: int                 # 0 when there are no entries
    term_max: int
    ending: Ending
    valid_end: int                # byte offset where the valid batches end
    first: int                    # closed: from the name; open: where the load puts it
    last: int                     # first - 1 when the segment holds no entry
    loaded: bool = True           # False: libraft's load skips this segment
    note: str = ""
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    name: str
    term: int                     # term and index come from the file name (spec §3.10)
    index: int
    timestamp: int
    conf_index: int
    configuration: Configuration | None
    stored_size: int              # bytes of the data file
    raw_size: int | None          # bytes after decompression; None when that failed
    lz4: bool
    content_checksum: bool        # the LZ4 frame carries (and we verified) an xxh32
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class LogReport:
    """What libraft's load would make of the segments (spec §3.7 steps 2-4)."""

    snapshot: str | None          # the snapshot it loads (the latest one)
    start_index: int
    last_index: int               # start_index - 1 when no entry is loaded
    entries: int
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class Report:
    directory: str
    metadata: MetadataReport
    segments: tuple[SegmentReport, ...]
    snapshots: tuple[SnapshotReport, ...]
    log: LogReport
    tmp_files: tuple[str, ...]
    orphans: tuple[str, ...]
    corrupt_files: tuple[str, ...]
    ignored_files: tuple[str, ...]

    @property
    def problems(self) -> list[Problem]:
        out = list(self.metadata.problems)
        for seg in self.segments:
            out += seg.problems
        for snap in self.snapshots:
            out += snap.problems
        return out + list(self.log.problems)

    @property
    def ok(self) -> bool:
        return not self.problems


# ----------------------------------------------------------------- reading

def _read(directory: str, name: str) -> bytes:
    """The whole content of one file, opened read-only."""
    with open(os.path.join(directory, name), "rb") as f:
        return f.read()


def _unreadable(name: str, err: OSError) -> Problem:
    return Problem(name, f"{name}: cannot read: {err.strerror or err}")


# ---------------------------------------------------------------- metadata

def _metadata_file(directory: str, name: str) -> MetadataFile:
    try:
        data = _read(directory, name)
    except FileNotFoundError:
        return MetadataFile(name, MetaState.MISSING, 0, None)
    except OSError as err:
        return MetadataFile(name, MetaState.BAD, 0, None, _unreadable(name, err))
    try:
        content = decode_metadata(data, name)
    except RaftError as err:       # libraft's messages already name the file
        return MetadataFile(name, MetaState.BAD, len(data), None, Problem(name, err.message))
    state = MetaState.SHORT if content is None else MetaState.OK
    return MetadataFile(name, state, len(data), content)


def inspect_metadata(directory: str) -> MetadataReport:
    """Both metadata files and the term/vote libraft would load from them (spec §3.4)."""
    files = tuple(_metadata_file(directory, name) for name in METADATA_FILES)
    problems = [f.problem for f in files if f.problem is not None]
    if problems:
        return MetadataReport(files, None, None, tuple(problems))
    try:
        current = choose_metadata(files[0].content, files[1].content)
    except RaftError as err:
        return MetadataReport(files, None, None, (Problem("", err.message),))
    winner = next((f.name for f in files if f.content == current and current.version), None)
    return MetadataReport(files, current, winner, ())


# ---------------------------------------------------------------- segments

def _scan_message(scan: SegmentScan) -> str:
    assert scan.error is not None
    text = scan.error.message
    if scan.outcome is ScanOutcome.CORRUPT and scan.next_valid >= 0:
        text += (f" (a valid batch follows at byte {scan.next_valid}: damage in the middle"
                 f" of the file, not a torn tail)")
    return text


def _judge_closed(seg: layout.SegmentFile, size: int,
                  scan: SegmentScan) -> tuple[list[str], str]:
    """Closed segments must end exactly after their last batch (spec §3.5)."""
    errors = []
    if seg.first > seg.last:
        errors.append(f"first index {seg.first} is after last index {seg.last}")
    if scan.outcome is ScanOutcome.EMPTY:
        errors.append("file is empty" if size == 0 else
                      "unexpected format version 0 (the file holds only zeros)")
    elif scan.outcome is ScanOutcome.ZERO_TAIL:
        errors.append(f"{_scan_message(scan)} (only zeros follow byte {scan.end}; a closed "
                      f"segment must end right after its last batch)")
    elif scan.outcome is not ScanOutcome.CLEAN:
        errors.append(_scan_message(scan))
    elif len(scan.entries) != seg.last - seg.first + 1:
        errors.append(f"found {len(scan.entries)} entries "
                      f"(expected {seg.last - seg.first + 1})")
    return errors, ""


def _judge_open_tail(scan: SegmentScan) -> tuple[list[str], str]:
    """A zero or torn tail: normal after a crash unless libraft's load would fail on it."""
    assert scan.error is not None
    if scan.status is Status.SHORT:        # quirk 14: libraft calls this a hard I/O error
        return [], (f"valid data ends at byte {scan.end}, then the file ends inside a batch "
                    f"(a torn write); raftpy's load truncates it there, libraft's load "
                    f"fails on the short read")
    if scan.status in (Status.BAD_TYPE, Status.UNALIGNED):
        return [f"{scan.error.message} (malformed, not torn: libraft's load fails)"], ""
    what = ("only zeros" if scan.outcome is ScanOutcome.ZERO_TAIL
            else f"a torn batch ({scan.error.message})")
    action = ("deletes the file" if scan.n_batches == 0
              else f"truncates the file to {scan.end} bytes")
    return [], f"valid data ends at byte {scan.end}, then {what}; libraft's load {action}"


def _judge_open(seg: layout.SegmentFile, size: int,
                scan: SegmentScan) -> tuple[list[str], str]:
    """Open segments: preallocated, zero-filled, cut short by a crash (spec §3.6, §3.7)."""
    if scan.outcome is ScanOutcome.EMPTY:
        return [], "never written; libraft's load deletes it"
    if scan.outcome is ScanOutcome.CORRUPT:
        return [_scan_message(scan)], ""
    if scan.outcome is ScanOutcome.CLEAN:
        if scan.n_batches == 0:
            return ["entries batch 1 starting at byte 8: short read: the file holds only "
                    "the format word (libraft's load fails)"], ""
        return [], ""
    return _judge_open_tail(scan)


def _bad_changes(entries: Sequence[Entry]) -> list[str]:
    """CHANGE entries whose configuration does not decode (libraft's start would fail)."""
    out: list[str] = []
    if EntryType.CHANGE not in set(map(itemgetter(1), entries)):   # the common case, in C
        return out
    for pos, entry in enumerate(entries, 1):
        if entry.type == EntryType.CHANGE:
            try:
                decode_configuration(entry.payload)
            except RaftError as err:
                out.append(f"entry {pos} of the file (CHANGE): {err.message}")
    return out


def inspect_segment(directory: str, seg: layout.SegmentFile) -> SegmentReport:
    """Scan one segment file and judge how it ends."""
    first, last = (0, -1) if seg.is_open else (seg.first, seg.last)
    try:
        data = _read(directory, seg.name)
    except OSError as err:
        return SegmentReport(seg.name, seg.is_open, 0, 0, 0, 0, 0, Ending.UNREADABLE, 0,
                             first, last, problems=(_unreadable(seg.name, err),))
    # Open segments: damage within the reach of the last write is a torn
    # write (layout.torn_reach), as DiskStore's load judges it.  Closed
    # segments were complete and synced before they were named: anything but
    # a clean end is corruption, never a torn tail.
    scan = _bindings.scan_segment(data, layout.torn_reach() if seg.is_open else 0)
    judge = _judge_open if seg.is_open else _judge_closed
    errors, note = judge(seg, len(data), scan)
    errors += _bad_changes(scan.entries)
    terms = list(map(itemgetter(0), scan.entries))
    ending = _ENDINGS[scan.outcome]
    if not seg.is_open and ending is not Ending.CLEAN:
        ending = Ending.CORRUPT
    return SegmentReport(
        seg.name, seg.is_open, len(data), len(terms), scan.n_batches, min(terms, default=0),
        max(terms, default=0), ending, scan.end, first, last, note=note,
        problems=tuple(Problem(seg.name, f"{seg.name}: {e}") for e in errors))


# --------------------------------------------------------------- snapshots

def _lz4_problems(blob: bytes, name: str) -> tuple[list[str], bool]:
    """Check the LZ4 frame header flags libraft depends on; returns (errors, checksum?)."""
    flg = blob[4] if len(blob) > 4 else 0
    errors = []
    if len(blob) > 4 and not flg & _LZ4_FLG_CONTENT_SIZE:
        errors.append(f"{name}: LZ4 frame without content size (libraft's load would loop "
                      f"forever, quirk 8)")
    return errors, bool(flg & _LZ4_FLG_CONTENT_CHECKSUM)


def _snapshot_data(directory: str, name: str) -> tuple[int, int | None, bool, bool, list[str]]:
    """(stored size, raw size, lz4?, content checksum?, errors) of a snapshot data file."""
    try:
        blob = _read(directory, name)
    except OSError as err:
        return 0, None, False, False, [_unreadable(name, err).message]
    if blob[:4] != layout.LZ4_MAGIC:
        return len(blob), len(blob), False, False, []
    errors, checksum = _lz4_problems(blob, name)
    try:
        raw = layout.decode_snapshot_data(blob, name)
    except RaftError as err:
        return len(blob), None, True, checksum, errors + [err.message]
    except (ValueError, MemoryError, OverflowError) as err:
        return len(blob), None, True, checksum, errors + [f"{name}: decompress: {err}"]
    return len(blob), len(raw), True, checksum, errors


def inspect_snapshot(directory: str, snap: layout.SnapshotFile) -> SnapshotReport:
    """Verify a snapshot's .meta checksum and configuration and its data file."""
    errors: list[Problem] = []
    conf, conf_index = None, 0
    try:
        conf, conf_index = layout.decode_snapshot_meta(_read(directory, snap.meta_name),
                                                       snap.meta_name)
    except OSError as err:
        errors.append(_unreadable(snap.meta_name, err))
    except RaftError as err:       # layout's messages start with the file name
        errors.append(Problem(snap.meta_name, err.message))
    stored, raw, lz4, checksum, data_errors = _snapshot_data(directory, snap.name)
    errors += [Problem(snap.name, e) for e in data_errors]
    return SnapshotReport(snap.name, snap.term, snap.index, snap.timestamp, conf_index, conf,
                          stored, raw, lz4, checksum, tuple(errors))


# ---------------------------------------------------------- log continuity

def _filter_segments(segments: Sequence[SegmentReport], snapshot: SnapshotReport | None,
                     ) -> tuple[int, list[SegmentReport], list[Problem]]:
    """libraft's uvFilterSegments: which segments the load reads, and the start index.

    Skipped segments come back with ``loaded=False`` and a note."""
    if snapshot is None:
        return 1, list(segments), []
    closed = [s for s in segments if not s.is_open]
    opened = [s for s in segments if s.is_open]
    if not closed:
        return snapshot.index + 1, opened, []
    if closed[-1].last < snapshot.index and not opened:
        behind = "behind the last snapshot: libraft's load ignores it"
        return snapshot.index + 1, [replace(s, loaded=False, note=behind) for s in closed], []
    i = len(closed) - 1
    while i > 0 and closed[i - 1].last == closed[i].first - 1:
        i -= 1
    gap = f"not contiguous with {closed[i].name}: libraft's load ignores it"
    skipped = [replace(s, loaded=False, note=gap) for s in closed[:i]]
    problems = []
    if closed[i].first > snapshot.index + 1:
        problems.append(Problem(closed[i].name, f"closed segment {closed[i].name} is past "
                                                f"last snapshot {snapshot.name}"))
    return closed[i].first, skipped + closed[i:] + opened, problems


def _discontinuity(seg: SegmentReport, expected: int) -> Problem:
    if seg.first > expected:
        what = f"gap: entries {expected}..{seg.first - 1} are missing"
    else:
        what = f"overlap: entries {seg.first}..{expected - 1} are already in earlier segments"
    return Problem(seg.name, f"unexpected closed segment {seg.name}: first index should have "
                             f"been {expected} ({what})")


def _place_open(seg: SegmentReport, first: int) -> SegmentReport:
    last = first + seg.entries - 1
    note = seg.note
    if seg.entries and not seg.problems:
        name = layout.closed_name(first, last)
        note = f"{note}, then renames it to {name}" if note else \
            f"libraft's load renames it to {name}"
    return replace(seg, first=first, last=last, note=note)


def _place(segments: Sequence[SegmentReport], start: int,
           ) -> tuple[list[SegmentReport], int, list[Problem]]:
    """Walk the loaded segments in order: closed ones must start at the next index,
    open ones continue after the previous segment (they do not record their first index)."""
    next_index, out, problems = start, [], []
    stopped = ""
    for seg in segments:
        if stopped and seg.loaded:
            seg = replace(seg, loaded=False, note=stopped)
        if seg.loaded and seg.is_open:
            seg = _place_open(seg, next_index)
        elif seg.loaded and seg.first != next_index:
            problems.append(_discontinuity(seg, next_index))
        if seg.loaded:
            next_index = seg.last + 1
            if seg.problems and not seg.is_open:
                # libraft's load stops at a damaged closed segment: the log
                # holds its valid entries at most, and nothing after it.
                next_index = seg.first + seg.entries
                stopped = f"after the damaged {seg.name}: libraft's load stops there"
        out.append(seg)
    return out, next_index, problems


def plan_log(segments: Sequence[SegmentReport], snapshot: SnapshotReport | None,
             ) -> tuple[tuple[SegmentReport, ...], LogReport]:
    """Place every segment in the log as libraft's load would, flagging gaps and overlaps."""
    start, filtered, problems = _filter_segments(segments, snapshot)
    placed, next_index, more = _place(filtered, start)
    problems += more
    loaded = [s for s in placed if s.loaded]
    if snapshot is not None and loaded and next_index - 1 < snapshot.index:
        problems.append(Problem("", f"last entry on disk has index {next_index - 1}, which is "
                                    f"behind last snapshot's index {snapshot.index}"))
    log = LogReport(snapshot.name if snapshot else None, start, next_index - 1,
                    sum(s.entries for s in loaded), tuple(problems))
    return tuple(placed), log


# --------------------------------------------------------------- directory

def _ignored_files(directory: str, listing: layout.Listing) -> tuple[str, ...]:
    """Names libraft's load passes over without a word (unknown, too long, empty data)."""
    known = set(METADATA_FILES) | set(listing.tmp_files) | set(listing.orphans)
    known |= set(listing.corrupt_files) | {s.name for s in listing.segments}
    known |= {n for s in listing.snapshots for n in (s.name, s.meta_name)}
    return tuple(sorted(set(os.listdir(directory)) - known))


def inspect_dir(directory: str) -> Report:
    """Inspect a data directory; raises RaftError when it cannot be listed."""
    listing = layout.list_dir(directory)
    metadata = inspect_metadata(directory)
    segments = [inspect_segment(directory, seg) for seg in listing.segments]
    snapshots = tuple(inspect_snapshot(directory, snap) for snap in listing.snapshots)
    placed, log = plan_log(segments, snapshots[-1] if snapshots else None)
    return Report(directory, metadata, placed, snapshots, log, listing.tmp_files,
                  listing.orphans, listing.corrupt_files, _ignored_files(directory, listing))


def iter_entries(directory: str, seg: SegmentReport) -> Iterator[tuple[int, Entry]]:
    """(index, entry) for every valid entry of a segment, re-read from disk."""
    scan = _bindings.scan_segment(_read(directory, seg.name))
    for i, entry in enumerate(scan.entries):
        yield seg.first + i, entry


# -------------------------------------------------------------- formatting

def _plural(n: int, word: str, words: str = "") -> str:
    return f"{n} {word if n == 1 else words or word + 's'}"


def _span(first: int, last: int) -> str:
    return f"{first}..{last}" if last >= first else "-"


def preview(payload: bytes | memoryview) -> str:
    """A short hex and ASCII view of a payload's first bytes."""
    head = bytes(payload[:PREVIEW_BYTES])
    if not head:
        return "(empty)"
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    more = " ..." if len(payload) > PREVIEW_BYTES else ""
    return f"{head.hex(' ')}{more}  |{text}|"


def describe_configuration(conf: Configuration) -> str:
    return ", ".join(f"{s.id} {s.address} {s.role.name.lower()}" for s in conf.servers)


def describe_entry(index: int, entry: Entry) -> str:
    """One line of ``--entries``: index, term, type, length, payload preview."""
    kind = EntryType(entry.type).name
    head = f"{index:>10}  term {entry.term:<6} {kind:<7} {len(entry.payload):>7} bytes  "
    if entry.type != EntryType.CHANGE:
        return head + preview(entry.payload)
    try:
        return head + "configuration: " + describe_configuration(
            decode_configuration(entry.payload))
    except RaftError as err:
        return head + f"undecodable configuration ({err.message}): {preview(entry.payload)}"


def _describe_meta_file(f: MetadataFile, winner: str | None) -> str:
    if f.state is MetaState.MISSING:
        return "missing"
    if f.state is MetaState.SHORT:
        return (f"{f.size} bytes, shorter than 32: a crash during its first write; libraft "
                f"treats it as missing and deletes it")
    if f.problem is not None:
        return f"ERROR: {f.problem}"
    assert f.content is not None
    mark = "  <- current" if f.name == winner else ""
    return (f"version {f.content.version}, term {f.content.term}, "
            f"voted for {f.content.voted_for or 'nobody'}{mark}")


def _render_metadata(md: MetadataReport, out: TextIO) -> None:
    print("metadata", file=out)
    for f in md.files:
        print(f"  {f.name}: {_describe_meta_file(f, md.winner)}", file=out)
    for problem in (p for p in md.problems if not p.file):
        print(f"  ERROR: {problem}", file=out)
    cur = md.current
    if cur is None:
        print("  current: none (libraft's load fails)", file=out)
    elif md.winner is None:
        print("  current: fresh server (term 0, no vote)", file=out)
    else:
        print(f"  current: term {cur.term}, voted for {cur.voted_for or 'nobody'} "
              f"(version {cur.version}, from {md.winner})", file=out)


def _ending_text(seg: SegmentReport) -> str:
    where = {Ending.ZERO_TAIL: " after byte", Ending.TORN_TAIL: " at byte",
             Ending.CORRUPT: " at byte"}.get(seg.ending)
    return seg.ending.value + (f"{where} {seg.valid_end}" if where else "")


def _segment_line(seg: SegmentReport) -> str:
    kind = "open" if seg.is_open else "closed"
    terms = _span(seg.term_min, seg.term_max) if seg.entries else "-"
    if seg.is_open or seg.entries == seg.last - seg.first + 1:
        index = _span(seg.first, seg.last) if seg.is_open else f"{seg.first}..{seg.last}"
    else:       # a damaged closed segment: what is valid, against what its name says
        valid = _span(seg.first, seg.first + seg.entries - 1) if seg.entries else "-"
        index = f"{valid} (its name says {seg.first}..{seg.last})"
    return (f"  {seg.name}  {kind}  {_plural(seg.entries, 'entry', 'entries')}"
            f"  index {index}  terms {terms}  {seg.size} bytes  {_ending_text(seg)}")


def _render_entries(directory: str, seg: SegmentReport, out: TextIO) -> None:
    try:
        for index, entry in iter_entries(directory, seg):
            print("      " + describe_entry(index, entry), file=out)
    except OSError as err:
        print(f"      (cannot read: {err.strerror or err})", file=out)


def _render_segments(report: Report, entries: bool, out: TextIO) -> None:
    n_open = sum(s.is_open for s in report.segments)
    print(f"segments: {len(report.segments) - n_open} closed, {n_open} open", file=out)
    for seg in report.segments:
        print(_segment_line(seg), file=out)
        if seg.note:
            print(f"      note: {seg.note}", file=out)
        for problem in seg.problems:
            print(f"      ERROR: {problem}", file=out)
        if entries and seg.ending is not Ending.UNREADABLE:
            _render_entries(report.directory, seg, out)


def _render_snapshot(snap: SnapshotReport, latest: bool, out: TextIO) -> None:
    mark = "  (latest: the one libraft loads)" if latest else ""
    print(f"  {snap.name}  term {snap.term}  index {snap.index}  timestamp {snap.timestamp}  "
          f"configuration index {snap.conf_index}{mark}", file=out)
    raw = "?" if snap.raw_size is None else str(snap.raw_size)
    if snap.lz4:
        check = ("content checksum verified" if snap.content_checksum
                 else "no content checksum in the frame")
        kind = f"LZ4 frame, {check}"
    else:
        kind = "raw (not compressed, no checksum)"
    print(f"      data: {snap.stored_size} bytes stored, {raw} bytes raw, {kind}", file=out)
    for server in snap.configuration.servers if snap.configuration else ():
        print(f"      server {server.id}  {server.address}  {server.role.name.lower()}",
              file=out)
    for problem in snap.problems:
        print(f"      ERROR: {problem}", file=out)


def _render_files(report: Report, out: TextIO) -> None:
    groups = (("tmp files (libraft deletes them at startup)", report.tmp_files),
              ("orphan snapshot files (libraft deletes them at startup)", report.orphans),
              ("quarantined corrupt-* files (ignored by libraft)", report.corrupt_files),
              ("other files (ignored by libraft)", report.ignored_files))
    for title, names in groups:
        print(f"{title}: {', '.join(names) if names else 'none'}", file=out)


def _render_log(report: Report, out: TextIO) -> None:
    log = report.log
    print("log (as libraft's load would see it)", file=out)
    snap = next((s for s in report.snapshots if s.name == log.snapshot), None)
    used = f"{snap.name} (term {snap.term}, index {snap.index})" if snap else "none"
    print(f"  snapshot: {used}", file=out)
    print(f"  entries: {_plural(log.entries, 'entry', 'entries')}, index "
          f"{_span(log.start_index, log.last_index)} (start index {log.start_index})", file=out)
    for problem in log.problems:
        print(f"  ERROR: {problem}", file=out)


def summary_line(report: Report) -> str:
    """The last line of the text report."""
    cur = report.metadata.current
    state = f"term {cur.term}, voted for {cur.voted_for or 'nobody'}" if cur else "no metadata"
    n_open = sum(s.is_open for s in report.segments)
    loaded = [s for s in report.segments if s.loaded and s.entries]
    terms = (f", terms {min(s.term_min for s in loaded)}..{max(s.term_max for s in loaded)}"
             if loaded else "")
    n_problems = len(report.problems)
    verdict = "OK" if report.ok else f"NOT SOUND, {_plural(n_problems, 'error')}"
    return (f"summary: {verdict}: {state}; {len(report.segments) - n_open} closed and "
            f"{n_open} open segments, {_plural(report.log.entries, 'entry', 'entries')}, index "
            f"{_span(report.log.start_index, report.log.last_index)}{terms}; "
            f"{_plural(len(report.snapshots), 'snapshot')}")


def render_text(report: Report, entries: bool, out: TextIO) -> None:
    print(f"data directory: {report.directory}", file=out)
    _render_metadata(report.metadata, out)
    _render_segments(report, entries, out)
    print(f"snapshots: {len(report.snapshots)}", file=out)
    for i, snap in enumerate(report.snapshots):
        _render_snapshot(snap, i == len(report.snapshots) - 1, out)
    _render_files(report, out)
    _render_log(report, out)
    print(summary_line(report), file=out)


# -------------------------------------------------------------------- JSON

def _jsonable(value: Any) -> Any:
    """Dataclasses to dicts, enums to their names, tuples to lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value if isinstance(value.value, str) else value.name.lower()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _entry_json(index: int, entry: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {"index": index, "term": entry.term,
                            "type": EntryType(entry.type).name, "length": len(entry.payload),
                            "preview_hex": bytes(entry.payload[:PREVIEW_BYTES]).hex()}
    if entry.type == EntryType.CHANGE:
        try:
            item["configuration"] = _jsonable(decode_configuration(entry.payload))["servers"]
        except RaftError as err:
            item["configuration_error"] = err.message
    return item


def report_json(report: Report, entries: bool) -> dict[str, Any]:
    """The report as a JSON-ready dict; with entries, each segment lists its entries."""
    doc: dict[str, Any] = _jsonable(report)
    doc["problems"] = _jsonable(report.problems)
    doc["ok"] = report.ok
    doc["summary"] = summary_line(report)
    if entries:
        for seg, item in zip(report.segments, doc["segments"], strict=True):
            if seg.ending is not Ending.UNREADABLE:
                item["entry_list"] = [_entry_json(i, e)
                                      for i, e in iter_entries(report.directory, seg)]
    return doc


# -------------------------------------------------------------------- main

def _directory_problem(directory: str) -> str | None:
    if not os.path.exists(directory):
        return f"directory '{directory}' does not exist"
    if not os.path.isdir(directory):
        return f"'{directory}' is not a directory"
    if not os.access(directory, os.R_OK | os.X_OK):
        return f"directory '{directory}' is not readable"
    return None


def run_inspect(directory: str, entries: bool, as_json: bool, out: TextIO,
                err: TextIO) -> int:
    """``raftpy inspect``: print the report; return the exit status."""
    problem = _directory_problem(directory)
    if problem is None:
        try:
            report = inspect_dir(directory)
        except (RaftError, OSError) as exc:
            problem = str(exc)
    if problem is not None:
        print(f"raftpy inspect: {problem}", file=err)
        return EXIT_USAGE
    try:
        if as_json:
            json.dump(report_json(report, entries), out, indent=2)
            out.write("\n")
        else:
            render_text(report, entries, out)
        out.flush()
    except BrokenPipeError:            # e.g. piped into head: stop printing quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    for bad in report.problems:
        print(f"raftpy inspect: {bad}", file=err)
    return EXIT_OK if report.ok else EXIT_CORRUPT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raftpy", description="raftpy command-line tools")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inspect = commands.add_parser(
        "inspect", help="check a libraft data directory (read-only)",
        description="Print the metadata, segments and snapshots of a libraft data directory "
                    "and verify every checksum. Nothing is modified. Exit status: 0 sound, "
                    "1 corruption found, 2 usage error or unreadable directory.")
    inspect.add_argument("directory", metavar="DIR")
    inspect.add_argument("--entries", action="store_true", help="also dump every entry")
    inspect.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``raftpy`` console script; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:          # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return run_inspect(args.directory, args.entries, args.json, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
