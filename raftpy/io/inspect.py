"""Read-only inspection of a libraft data directory (spec §3): what is in it and what is wrong.

What lives here: ``inspect_directory(path) -> DirectoryReport``, the checks
behind ``raftpy inspect`` (cli.py only parses its arguments and prints what
this module returns), usable as well by a Server that wants to look at its
directory before it starts, and by tests.  A report holds plain frozen
values: both metadata files and which one libraft's load picks (term and
vote), every segment (entry count, index and term ranges, how the file ends
and where the damage is), every snapshot (configuration, sizes, LZ4 frame),
leftover tmp, orphan and quarantined files, and whether the segments chain
together the way libraft's load (spec §3.7) requires.  Every checksum is
verified: batch header and data CRCs (the C scanner), snapshot .meta CRCs,
LZ4 content checksums (by decompressing).  ``read_entries`` decodes the
entries of one segment, for a dump.

May import: the standard library, raftpy._bindings, raftpy.core, raftpy.errors
and raftpy.io.layout / raftpy.io.metadata (the pure format modules).

Rules kept:

* READ-ONLY.  Nothing in the directory is created, written, renamed,
  truncated or deleted; files are opened O_RDONLY (and O_NONBLOCK, so that a
  FIFO under a segment's name is reported, not waited on forever), and
  anything but a regular file is reported as unreadable.  Where libraft's
  load would change the directory (truncate a torn tail, delete tmp files)
  the report says so instead of doing it.
* The verdict follows libraft's load rules: a zero or torn tail in an OPEN
  segment is the normal trace of a crash and is reported, not an error; in a
  CLOSED segment anything but a clean end is corruption.  An open segment
  that ends inside its last batch (a crashed write that grew the file) is a
  torn tail for raftpy's store, which cuts it off; libraft's load refuses it
  (quirk 14), which the report notes.
* Every finding that makes the directory unsound is a ``Problem`` whose
  message names the file and, for segments, the byte offset; a damaged file
  never stops the inspection of the others.  Only a directory that cannot be
  listed at all raises (a RaftError: NotFoundError when it does not exist,
  IOError_ otherwise).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from operator import itemgetter

from raftpy import _bindings
from raftpy._bindings import ScanOutcome, SegmentScan, Status
from raftpy.core.configuration import Configuration, decode_configuration
from raftpy.core.types import Entry, EntryType
from raftpy.errors import IOError_, NotFoundError, RaftError
from raftpy.io import layout
from raftpy.io.metadata import METADATA_FILES, Metadata, choose_metadata, decode_metadata

__all__ = [
    "inspect_directory", "read_entries", "DirectoryReport", "Summary", "Problem",
    "MetaState", "MetadataFile", "MetadataReport", "Ending", "SegmentReport",
    "SnapshotReport", "LogReport", "EntryReport", "inspect_metadata", "inspect_segment",
    "inspect_snapshot", "plan_log",
]

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
    """What one metadata file is."""

    OK = "ok"
    MISSING = "missing"
    SHORT = "short"           # < 32 bytes: a crash during the first write; libraft deletes it
    BAD = "bad"


@dataclass(frozen=True, slots=True)
class MetadataFile:
    """One metadata file: its state, size and (when it decodes) its content."""

    name: str
    state: MetaState
    size: int
    content: Metadata | None
    problem: Problem | None = None


@dataclass(frozen=True, slots=True)
class MetadataReport:
    """Both metadata files and the term and vote libraft's load would take from them."""

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
    """One segment file: what the scan found and where the load places it."""

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

    @property
    def valid_last(self) -> int:
        """Index of the last valid entry (first - 1 when there is none)."""
        return self.first + self.entries - 1

    @property
    def holds_its_range(self) -> bool:
        """False for a closed segment whose valid entries are not all its name says."""
        return self.is_open or self.entries == self.last - self.first + 1

    @property
    def damage_offset(self) -> int | None:
        """Byte offset where the valid batches stop and damage (or a tail) begins;
        None when the file ends cleanly or was never written."""
        if self.ending in (Ending.ZERO_TAIL, Ending.TORN_TAIL, Ending.CORRUPT):
            return self.valid_end
        return None


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    """One snapshot: its .meta (configuration) and its data file."""

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
class Summary:
    """The headline numbers of a report (its last line in ``raftpy inspect``)."""

    ok: bool
    errors: int
    term: int | None              # None when libraft's load would fail on the metadata
    voted_for: int | None
    closed_segments: int
    open_segments: int
    entries: int                  # entries libraft's load would read
    start_index: int
    last_index: int               # start_index - 1 when there are none
    term_min: int | None          # over the segments the load reads; None without entries
    term_max: int | None
    snapshots: int


@dataclass(frozen=True, slots=True)
class DirectoryReport:
    """Everything ``inspect_directory`` found; ``ok`` is the verdict."""

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

    @property
    def loaded_snapshot(self) -> SnapshotReport | None:
        """The snapshot libraft's load would use (the latest one)."""
        return next((s for s in self.snapshots if s.name == self.log.snapshot), None)

    def segment(self, name: str) -> SegmentReport:
        """The report of the segment file called ``name`` (KeyError if there is none)."""
        for seg in self.segments:
            if seg.name == name:
                return seg
        raise KeyError(name)

    @property
    def summary(self) -> Summary:
        cur = self.metadata.current
        n_open = sum(s.is_open for s in self.segments)
        loaded = [s for s in self.segments if s.loaded and s.entries]
        return Summary(
            self.ok, len(self.problems), cur.term if cur else None,
            cur.voted_for if cur else None, len(self.segments) - n_open, n_open,
            self.log.entries, self.log.start_index, self.log.last_index,
            min((s.term_min for s in loaded), default=None),
            max((s.term_max for s in loaded), default=None), len(self.snapshots))


@dataclass(frozen=True, slots=True)
class EntryReport:
    """One entry of a segment, for a dump; CHANGE entries come decoded."""

    index: int
    term: int
    type: EntryType
    payload: bytes | memoryview
    configuration: Configuration | None = None
    configuration_error: str | None = None


# ----------------------------------------------------------------- reading

def _read(directory: str, name: str) -> bytes:
    """The whole content of one regular file, opened read-only."""
    fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb", closefd=True) as f:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file")
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


def _check_directory(directory: str) -> None:
    if not os.path.exists(directory):
        raise NotFoundError(f"directory '{directory}' does not exist")
    if not os.path.isdir(directory):
        raise IOError_(f"'{directory}' is not a directory")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise IOError_(f"directory '{directory}' is not readable")


def inspect_directory(path: str | os.PathLike[str]) -> DirectoryReport:
    """Inspect a data directory without changing it.

    Raises NotFoundError or IOError_ (RaftErrors naming the directory) when
    it is missing, not a directory or cannot be listed; everything wrong
    inside it is a Problem of the report."""
    directory = os.fspath(path)
    _check_directory(directory)
    listing = layout.list_dir(directory)
    metadata = inspect_metadata(directory)
    segments = [inspect_segment(directory, seg) for seg in listing.segments]
    snapshots = tuple(inspect_snapshot(directory, snap) for snap in listing.snapshots)
    placed, log = plan_log(segments, snapshots[-1] if snapshots else None)
    return DirectoryReport(directory, metadata, placed, snapshots, log, listing.tmp_files,
                  listing.orphans, listing.corrupt_files, _ignored_files(directory, listing))


def _entry_report(index: int, entry: Entry) -> EntryReport:
    kind = EntryType(entry.type)       # the scanner stops at any other type byte
    if kind != EntryType.CHANGE:
        return EntryReport(index, entry.term, kind, entry.payload)
    try:
        conf = decode_configuration(entry.payload)
    except RaftError as err:
        return EntryReport(index, entry.term, kind, entry.payload, configuration_error=err.message)
    return EntryReport(index, entry.term, kind, entry.payload, configuration=conf)



def read_entries(report: DirectoryReport, seg: SegmentReport) -> Iterator[EntryReport]:
    """Every valid entry of a segment of ``report``, numbered as the load places
    them, re-read from disk (read-only).  Raises OSError when the file cannot be
    read any more."""
    scan = _bindings.scan_segment(_read(report.directory, seg.name))
    for i, entry in enumerate(scan.entries):
        yield _entry_report(seg.first + i, entry)

