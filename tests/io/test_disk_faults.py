"""Fault injection for DiskStore (issue 5, point 3): damaged files, full disk,
bad directories, a directory shared by two stores.

Damaged files.  A pristine data directory is built once with the store itself:
bootstrap, term and vote, appends over three full closed segments, two
snapshots (trailing, so nothing is deleted; taking one closes the open
segment), more appends into an open segment whose image is captured before
``close`` (which would close it) and put back as ``open-N`` next to a spare
all-zero ``open-N+1``, exactly what a crash leaves.  Then, for every region,
copies of it get bit flips (every byte offset of the small files, all the
structure and a dense seeded sample of the payloads of the large ones) and
truncations (every length of the small files, every batch boundary and around
it plus a sample for segments), and each copy is opened and loaded twice,
with auto-recovery off and on.  Every outcome must be

- a RaftError of the class the rules give (CorruptError, MalformedError or
  IOError_), whose message names the damaged file, or
- a successful load whose entries are exactly the original entries 1..K for
  the K the rules give (never a wrong entry), with the expected term, vote
  and snapshot, and ``corrupt-*`` files exactly where auto-recovery moves
  segments aside (spec §3.7 step 5).

The rules asserted (spec §3.4-3.10; raftpy's documented choices marked *):

=========================  =====================================  ===========================
damage                     auto-recovery off                      auto-recovery on
=========================  =====================================  ===========================
closed segment, flip or    CorruptError naming it (0-7 bytes      same, nothing moved aside
truncation (not last)      long: IOError_ "file has only N")
last closed segment        CorruptError naming it                 it and the open segments
                                                                  with data moved aside,
                                                                  prefix loads
open segment, flip in its  CorruptError (not what a crash        it and later open segments
format word (not to 0)     leaves)                                with data moved aside,
                                                                  prefix loads (never-written
                                                                  spares are deleted first)
open segment, format word  loads without it: a torn first write*  same
flipped to 0               (it is the last open segment holding
                           data; before another one that does it
                           is corruption, test_load_rules.py)
open segment, flip in a    loads the batches before it: a torn    same
batch                      tail*, as every valid batch after it
                           lies in the reach of the last write
                           (issue 8, A3; beyond the reach it is a
                           CorruptError without auto-recovery,
                           and with it the batches before the
                           damage load*: test_load_rules.py)
open segment, flip in its  loads everything (torn tail)           same
zero tail
open segment truncated     loads the whole batches before the     same
                           cut* (libraft: IOERR mid-batch, quirk
                           14); 1-7 bytes: IOError_
spare zero open segment    a flip in the format word:            moved aside, all loads
                           CorruptError unless it makes it a
                           valid empty segment; elsewhere: a torn
                           first write*, deleted; cut to 1-7
                           bytes (all zeros): deleted*
metadata file              MalformedError (format), CorruptError  same (metadata has no
                           (version 0, equal versions, too long),  checksum: a flipped term
                           else the higher version wins; a short   or version loads as is)
                           file is deleted and the other wins
snapshot .meta             MalformedError (format), CorruptError  same
                           (checksum, length), IOError_ (short);
                           flips in the unused high half of the
                           crc word are harmless
snapshot data (lz4)        CorruptError; damage to the 4 magic    same
                           bytes or a cut to 1-3 bytes reads as
                           RAW data (libraft's reader rule,
                           quirk 8); an empty data file drops
                           that snapshot and the older one loads
older snapshot             ignored                                ignored
=========================  =====================================  ===========================

Damaged copies live on /dev/shm when it exists (fast; the load rules do not
depend on the filesystem), and the filesystem probe is cached per filesystem
(``aio.probe`` costs an AIO context set-up and tear-down, tens of ms, and is
not what is under test here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import lz4.frame
import pytest

import raftpy
from raftpy.core.configuration import Configuration
from raftpy.core.types import Entry, EntryType
from raftpy.errors import (
    BusyError,
    CorruptError,
    InvalidError,
    IOError_,
    MalformedError,
    NoSpaceError,
    NotFoundError,
    RaftError,
    UnauthorizedError,
)
from raftpy.io import aio, layout
from raftpy.io.disk import DiskStore, LoadResult, Snapshot

SEG = 8192
CONF = Configuration.of((1, "127.0.0.1:9001"), (2, "127.0.0.1:9002"), (3, "127.0.0.1:9003"))
ROOT = pathlib.Path(raftpy.__file__).resolve().parent.parent
_real_probe = aio.probe


def cached_probe(cache: dict[int, aio.FsCaps]) -> Callable[[str], aio.FsCaps]:
    """aio.probe, run once per filesystem (see the module docstring)."""
    def probe(path: str) -> aio.FsCaps:
        if not os.path.isdir(path) or not os.access(path, os.W_OK):
            return _real_probe(path)        # the errors for bad directories
        dev = os.stat(path).st_dev
        if dev not in cache:
            cache[dev] = _real_probe(path)
        return cache[dev]
    return probe


def scratch_root() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


# ------------------------------------------------------ the pristine directory

def payload(i: int) -> bytes:
    return struct.pack("<Q", i * 0x9E3779B97F4A7C15 & (2**64 - 1)) * (1 + i % 9)


@dataclass
class Pristine:
    path: pathlib.Path
    entries: dict[int, Entry]
    closed: list[str]             # closed segment names, in order
    last_closed: str
    open_name: str                # open segment holding entries
    spare_name: str               # all-zero prepared open segment
    old_snap: str                 # snapshot data file names
    new_snap: str
    snap_data: dict[str, bytes]
    snap_index: dict[str, int]
    bounds: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)

    def seg_range(self, name: str) -> tuple[int, int]:
        batches = self.bounds[name]
        return batches[0][2], batches[-1][3]

    @property
    def last(self) -> int:
        return max(self.entries)


def batch_bounds(data: bytes, first_index: int) -> list[tuple[int, int, int, int]]:
    """(start, end, first index, last index) of each batch of a segment image."""
    out = []
    pos, index = 8, first_index
    while pos + 16 <= len(data):
        (n,) = struct.unpack_from("<Q", data, pos + 8)
        if n == 0:
            break
        lengths = [struct.unpack_from("<I", data, pos + 16 + 16 * k + 12)[0] for k in range(n)]
        end = pos + 16 + 16 * n + sum(lengths)
        out.append((pos, end, index, index + n - 1))
        pos, index = end, index + n
    return out


async def build_pristine(path: pathlib.Path) -> Pristine:
    store = DiskStore(str(path), segment_size_bytes=SEG, use_aio=False)
    await store.open()
    await store.load()
    await store.bootstrap(CONF)
    await store.set_term(2)
    await store.set_vote(1)     # metadata1: version 3 (term 2, vote 1); metadata2: version 2
    entries = {1: Entry(1, EntryType.CHANGE, CONF.encode())}
    i = 2

    async def append_batches(count: int | None) -> None:
        nonlocal i
        k = 0
        while count is None or k < count:
            n = 1 + i % 4
            batch = [Entry(2, EntryType.BARRIER if j % 11 == 0 else EntryType.COMMAND,
                           payload(j)) for j in range(i, i + n)]
            await store.append(i, batch)
            entries.update(zip(range(i, i + n), batch, strict=True))
            i += n
            k += 1
            if count is None and sum(not s.is_open for s in
                                     layout.list_dir(str(path)).segments) >= 3:
                return

    await append_batches(None)             # 1-1 and two full segments closed
    await append_batches(6)
    closed = [s for s in layout.list_dir(str(path)).segments if not s.is_open]
    old = Snapshot(2, 20, CONF, 1, b"the older snapshot " * 9)
    await store.snapshot_put(100000, old)  # closes the open segment: the last closed one
    new = Snapshot(2, closed[-1].first + 3, CONF, 1, bytes(range(256)) + b"newer " * 40)
    await store.snapshot_put(100000, new)
    await append_batches(12)               # into a fresh open segment
    listing = layout.list_dir(str(path))
    written = [s for s in listing.segments
               if s.is_open and (path / s.name).read_bytes()[:8] == b"\1" + bytes(7)]
    assert len(written) == 1, listing
    open_seg = written[0]
    image = (path / open_seg.name).read_bytes()
    await store.close()
    # Put back what a crash would have left: the written open segment and a spare.
    listing = layout.list_dir(str(path))
    closed = [s for s in listing.segments]
    tail = closed.pop()
    assert tail.last == i - 1, (tail, i)
    os.unlink(path / tail.name)
    spare = layout.open_name(open_seg.counter + 1)
    (path / open_seg.name).write_bytes(image)
    (path / spare).write_bytes(bytes(SEG))
    snaps = listing.snapshots
    assert [s.index for s in snaps] == [old.index, new.index]
    p = Pristine(path, entries, [s.name for s in closed], closed[-1].name, open_seg.name,
                 spare, snaps[0].name, snaps[1].name,
                 {snaps[0].name: old.data, snaps[1].name: new.data},
                 {snaps[0].name: old.index, snaps[1].name: new.index})
    for s in closed:
        p.bounds[s.name] = batch_bounds((path / s.name).read_bytes(), s.first)
    p.bounds[open_seg.name] = batch_bounds(image, tail.first)
    assert p.bounds[open_seg.name][-1][3] == i - 1
    return p


@pytest.fixture(scope="module")
def pristine():
    base = pathlib.Path(tempfile.mkdtemp(dir=scratch_root(), prefix="raftpy-faults-"))
    (base / "pristine").mkdir()
    try:
        yield asyncio.run(build_pristine(base / "pristine"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------- outcomes

@dataclass(frozen=True)
class Ok:
    """Load succeeds with the original entries 1..last."""

    last: int
    snapshot: str = "new"                 # "new", "old", or "raw" (data read as raw bytes)
    meta: tuple[int, int] = (2, 1)        # term, vote
    quarantined: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Err:
    cls: type[RaftError]
    names: tuple[str, ...]                # the message names one of these


Outcome = Ok | Err


@dataclass
class Case:
    file: str
    what: str                              # "flip 123.4" / "cut 77"
    damaged: bytes
    expect: Callable[[bool], Outcome]      # auto_recovery -> outcome


def flip(data: bytes, offset: int, bit: int) -> bytes:
    b = bytearray(data)
    b[offset] ^= 1 << bit
    return bytes(b)


async def run_case(p: Pristine, work: pathlib.Path, case: Case, auto: bool) -> str | None:
    """Damage a copy, open and load it; return a failure description or None."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(p.path, work)
    (work / case.file).write_bytes(case.damaged)
    expect = case.expect(auto)
    store = DiskStore(str(work), segment_size_bytes=SEG, auto_recovery=auto,
                      prepared_segments=1, zero_fill_segments=False, use_aio=False)
    result: LoadResult | None = None
    error: BaseException | None = None
    try:
        await store.open()
        try:
            result = await store.load()
        finally:
            await store.close()
    except Exception as err:      # noqa: BLE001 - any exception is judged below
        error = err
    where = f"{case.file} {case.what} (auto_recovery={auto})"
    listing = layout.list_dir(str(work))
    moved = frozenset(n.split("-", 2)[2] for n in listing.corrupt_files)
    if error is not None:
        if not isinstance(error, (CorruptError, MalformedError, IOError_)):
            return f"{where}: unexpected {type(error).__name__}: {error}"
        if not any(name in str(error) for name in (case.file,)) and not (
                auto and "behind last snapshot" in str(error)):
            return f"{where}: the error does not name the file: {error}"
        if not isinstance(expect, Err):
            return f"{where}: expected {expect}, got {type(error).__name__}: {error}"
        if type(error) is not expect.cls:
            return f"{where}: expected {expect.cls.__name__}, got " \
                   f"{type(error).__name__}: {error}"
        if moved:
            return f"{where}: files moved aside, yet the load failed: {sorted(moved)}"
        return None
    assert result is not None
    # Never a wrong entry, whatever was expected.
    if result.start_index != 1:
        return f"{where}: start index {result.start_index}"
    for k, e in enumerate(result.entries):
        want = p.entries.get(k + 1)
        if want is None or (e.term, e.type, bytes(e.payload)) != tuple(want):
            return f"{where}: WRONG ENTRY at index {k + 1}: {e}"
    if isinstance(expect, Err):
        return f"{where}: expected {expect.cls.__name__}, loaded {len(result.entries)} entries"
    got_last = len(result.entries)
    if got_last != expect.last:
        return f"{where}: loaded 1..{got_last}, expected 1..{expect.last}"
    if (result.term, result.voted_for) != expect.meta:
        return f"{where}: term/vote {(result.term, result.voted_for)}, expected {expect.meta}"
    snap = result.snapshot
    if expect.snapshot == "raw":
        if snap is None or snap.data != case.damaged:
            return f"{where}: expected the damaged data file read as raw data"
    else:
        name = p.new_snap if expect.snapshot == "new" else p.old_snap
        if snap is None or snap.index != p.snap_index[name] or snap.data != p.snap_data[name] \
                or snap.configuration != CONF:
            return f"{where}: wrong snapshot {snap and (snap.index, snap.data[:20])}"
    if moved != expect.quarantined:
        return f"{where}: moved aside {sorted(moved)}, expected {sorted(expect.quarantined)}"
    if moved:
        # What auto-recovery left behind is clean: it loads the same without it.
        again = DiskStore(str(work), segment_size_bytes=SEG, auto_recovery=False,
                          prepared_segments=1, zero_fill_segments=False, use_aio=False)
        try:
            await again.open()
            r2 = await again.load()
        except RaftError as err:
            return f"{where}: reload after auto-recovery failed: {err}"
        finally:
            await again.close()
        if len(r2.entries) != got_last:
            return f"{where}: reload after auto-recovery gave {len(r2.entries)} entries"
    return None


def run_cases(p: Pristine, cases: list[Case]) -> None:
    work = pathlib.Path(tempfile.mkdtemp(dir=scratch_root(), prefix="raftpy-case-"))
    t0 = time.monotonic()

    async def go() -> list[str]:
        failures = []
        for case in cases:
            for auto in (False, True):
                failure = await run_case(p, work / "d", case, auto)
                if failure:
                    failures.append(failure)
        return failures

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(aio, "probe", cached_probe({}))
            failures = asyncio.run(go())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(cases)} damaged copies, each loaded with and without auto-recovery, "
          f"in {time.monotonic() - t0:.1f} s")
    assert not failures, f"{len(failures)} of {2 * len(cases)} loads:\n" + "\n".join(failures[:30])


# -------------------------------------------------------------- sampling

def sample_offsets(bounds: list[tuple[int, int, int, int]], size: int, rng: random.Random, *,
                   full: tuple[int, ...], middle: int, extra: int) -> list[int]:
    """Byte offsets to flip in a segment image: every byte of the format word;
    every byte of the checksums and header of the batches numbered in `full`
    (negative: from the end), plus one offset in their data; in `middle` other
    batches one offset in each field (checksums, count, entry headers, data);
    `extra` uniformly random offsets; and in a zero tail, its first 16 bytes, a
    few more and the very last byte."""
    offs = set(range(8))
    ends = [bounds[k] for k in full]
    for start, end, first, last in ends:
        head = 16 + 16 * (last - first + 1)
        offs.update(range(start, start + head))
        if end > start + head:
            offs.add(rng.randrange(start + head, end))
    others = [b for b in bounds if b not in ends]
    for start, end, first, last in rng.sample(others, min(middle, len(others))):
        head = 16 + 16 * (last - first + 1)
        offs.update((start + rng.randrange(8), start + 8 + rng.randrange(8),
                     start + 16 + rng.randrange(16 * (last - first + 1))))
        if end > start + head:
            offs.add(rng.randrange(start + head, end))
    data_end = bounds[-1][1]
    offs.update(rng.randrange(8, data_end) for _ in range(extra))
    if data_end < size:
        offs.update(range(data_end, min(size, data_end + 16)))
        offs.update(rng.randrange(data_end, size) for _ in range(8))
        offs.add(size - 1)
    return sorted(offs)


def cut_lengths(bounds: list[tuple[int, int, int, int]], size: int, rng: random.Random,
                boundaries: int) -> list[int]:
    """Lengths to truncate a segment to: 0-9, around `boundaries` batch boundaries
    (all if more), and a few random ones."""
    lengths = set(range(0, 10))
    for start, end, _, _ in rng.sample(bounds, min(boundaries, len(bounds))):
        lengths.update((start - 1, start + 1, start + 8, start + 16, end - 1, end))
        lengths.add(rng.randrange(start, end))
    lengths.update(rng.randrange(0, size) for _ in range(6))
    return sorted(n for n in lengths if 0 <= n < size)


def index_before(bounds: list[tuple[int, int, int, int]], offset: int) -> int:
    """Last index of the batches that end at or before offset."""
    last = bounds[0][2] - 1
    for _start, end, _, batch_last in bounds:
        if end <= offset:
            last = batch_last
    return last


# ------------------------------------------------------------- segments

def test_closed_segments(pristine, seeded_random):
    p, rng = pristine, seeded_random
    cases: list[Case] = []
    # The never-written spare open segment is deleted at load, not moved aside.
    quarantine = frozenset({p.last_closed, p.open_name})
    prefix_before_last = p.seg_range(p.last_closed)[0] - 1
    assert prefix_before_last >= p.snap_index[p.new_snap], "quarantine must leave the snapshot"
    for name in p.closed:
        data = (p.path / name).read_bytes()
        is_last = name == p.last_closed

        def corrupt(auto: bool, name: str = name, is_last: bool = is_last) -> Outcome:
            if auto and is_last:
                return Ok(prefix_before_last, quarantined=quarantine)
            return Err(CorruptError, (name,))

        if len(data) < 256:
            offsets: Iterable[int] = range(len(data))
        elif is_last:
            offsets = sample_offsets(p.bounds[name], len(data), rng,
                                     full=(-1,), middle=8, extra=24)
        else:
            offsets = sample_offsets(p.bounds[name], len(data), rng,
                                     full=(), middle=8, extra=16)
        for off in offsets:
            bit = rng.randrange(8)
            cases.append(Case(name, f"flip {off}.{bit}", flip(data, off, bit), corrupt))
        for n in (sorted({*range(12), *range(0, len(data), 8), len(data) - 1}) if len(data) < 256
                  else cut_lengths(p.bounds[name], len(data), rng, 8 if is_last else 3)):
            if 0 < n < 8:
                def short(auto: bool, name: str = name) -> Outcome:
                    return Err(IOError_, (name,))
                cases.append(Case(name, f"cut {n}", data[:n], short))
            else:
                cases.append(Case(name, f"cut {n}", data[:n], corrupt))
    run_cases(p, cases)


def test_open_segments(pristine, seeded_random):
    p, rng = pristine, seeded_random
    name, spare = p.open_name, p.spare_name
    data = (p.path / name).read_bytes()
    bounds = p.bounds[name]
    closed_last = bounds[0][2] - 1
    last_start = bounds[-1][0]
    data_end = bounds[-1][1]
    cases: list[Case] = []

    def quarantined(auto: bool) -> Outcome:
        if auto:
            return Ok(closed_last, quarantined=frozenset({name}))   # spare: deleted
        return Err(CorruptError, (name,))

    def intact(auto: bool) -> Outcome:
        return Ok(p.last)

    assert last_start < data_end
    for off in sample_offsets(bounds, len(data), rng, full=(0, -2, -1), middle=12, extra=40):
        bits = (0, rng.randrange(1, 8)) if off < 8 else [rng.randrange(8)]
        for bit in bits:
            if off < 8:        # format word 1 -> 0 is a torn first write, else garbage
                def expect(auto: bool, torn: bool = (off, bit) == (0, 0)) -> Outcome:
                    return Ok(closed_last) if torn else quarantined(auto)
            elif off < data_end:   # torn: the batches before the damaged one stay
                def expect(auto: bool, last: int = index_before(bounds, off)) -> Outcome:
                    return Ok(last)
            else:
                expect = intact
            cases.append(Case(name, f"flip {off}.{bit}", flip(data, off, bit), expect))
    for n in cut_lengths(bounds, len(data), rng, len(bounds)):
        if 0 < n < 8:
            def short(auto: bool) -> Outcome:
                return Err(IOError_, (name,))
            cases.append(Case(name, f"cut {n}", data[:n], short))
        else:
            last = index_before(bounds, n) if n else closed_last

            def cut(auto: bool, last: int = last) -> Outcome:
                return Ok(last)
            cases.append(Case(name, f"cut {n}", data[:n], cut))
    # The spare prepared segment: all zeros.
    zeros = (p.path / spare).read_bytes()

    def spare_bad(auto: bool) -> Outcome:
        return Ok(p.last, quarantined=frozenset({spare})) if auto \
            else Err(CorruptError, (spare,))

    for off in [*range(16), *(rng.randrange(16, SEG) for _ in range(12)), SEG - 1]:
        for bit in ((0, rng.randrange(1, 8)) if off < 8 else [rng.randrange(8)]):
            good = (off, bit) == (0, 0) or off >= 8     # valid empty, or a torn first write
            cases.append(Case(spare, f"flip {off}.{bit}", flip(zeros, off, bit),
                              intact if good else spare_bad))
    for n in (0, 1, 7, 8, 9, 4096, SEG - 1):     # all zeros, any length: never written
        cases.append(Case(spare, f"cut {n}", zeros[:n], intact))
    run_cases(p, cases)


# ------------------------------------------------------------- metadata

def metadata_outcome(p: Pristine, files: dict[str, bytes]) -> Outcome:
    """libraft's rules (spec §3.4), written out independently of raftpy.io.metadata."""
    found = {}
    for name in ("metadata1", "metadata2"):
        data = files[name]
        if len(data) < 32:
            found[name] = None
            continue
        if len(data) > 32:
            return Err(CorruptError, (name,))
        fmt, version, term, vote = struct.unpack("<4Q", data)
        if fmt != 1:
            return Err(MalformedError, (name,))
        if version == 0:
            return Err(CorruptError, (name,))
        found[name] = (version, term, vote)
    m1, m2 = found["metadata1"], found["metadata2"]
    v1, v2 = (m1 or (0,))[0], (m2 or (0,))[0]
    if v1 == v2:
        return Ok(p.last, meta=(0, 0)) if v1 == 0 else Err(CorruptError, ("metadata1",))
    win = m1 if v1 > v2 else m2
    assert win is not None
    return Ok(p.last, meta=(win[1], win[2]))


def test_metadata(pristine, seeded_random):
    p, rng = pristine, seeded_random
    files = {n: (p.path / n).read_bytes() for n in ("metadata1", "metadata2")}
    assert struct.unpack("<4Q", files["metadata1"]) == (1, 3, 2, 1)
    assert struct.unpack("<4Q", files["metadata2"]) == (1, 2, 2, 0)
    cases = []
    for name, data in files.items():
        # Every bit of the version word (it decides which file wins), two bits
        # (bit 0 and a seeded one) of every other byte, and cuts to short lengths.
        flips = {(o, b) for o in range(8, 16) for b in range(8)}
        flips |= {(o, b) for o in range(32) for b in (0, rng.randrange(1, 8))}
        damaged_list = [(f"flip {o}.{b}", flip(data, o, b)) for o, b in sorted(flips)]
        damaged_list += [(f"cut {n}", data[:n]) for n in (*range(0, 32, 4), 31)]
        damaged_list += [("grow 33", data + b"\0"), ("grow 40", data + bytes(8))]
        for what, damaged in damaged_list:
            outcome = metadata_outcome(p, {**files, name: damaged})
            cases.append(Case(name, what, damaged, lambda auto, o=outcome: o))
    # Spot checks of the table above, so the reference itself is pinned.
    by_what = {(c.file, c.what): c.expect(False) for c in cases}
    assert by_what[("metadata1", "flip 0.0")] == Err(MalformedError, ("metadata1",))
    assert by_what[("metadata2", "flip 8.1")] == Err(CorruptError, ("metadata2",))  # v2 -> 0
    assert by_what[("metadata2", "flip 8.0")] == Err(CorruptError, ("metadata1",))  # v3 = v3
    assert by_what[("metadata1", "cut 31")] == Ok(p.last, meta=(2, 0))   # the vote is lost
    assert by_what[("metadata1", "grow 33")] == Err(CorruptError, ("metadata1",))
    run_cases(p, cases)


# ------------------------------------------------------------- snapshots

def meta_outcome(p: Pristine, name: str, data: bytes) -> Outcome:
    """The .meta rules (spec §3.10)."""
    if len(data) < 32:
        return Err(IOError_, (name,))
    fmt, crc, _conf_index, conf_len = struct.unpack_from("<4Q", data)
    if fmt != 1:
        return Err(MalformedError, (name,))
    if conf_len == 0 or conf_len > 1 << 20:
        return Err(CorruptError, (name,))
    if len(data) < 32 + conf_len:
        return Err(IOError_, (name,))
    original = (p.path / name).read_bytes()
    if crc & 0xFFFFFFFF != struct.unpack_from("<Q", original, 8)[0] & 0xFFFFFFFF \
            or data[16:] != original[16:]:
        return Err(CorruptError, (name,))
    return Ok(p.last)


def data_outcome(p: Pristine, name: str, data: bytes) -> Outcome:
    """The data file rules (spec §3.10, quirk 8)."""
    if not data:
        return Ok(p.last, snapshot="old")
    if data[:4] != layout.LZ4_MAGIC:
        return Ok(p.last, snapshot="raw")
    try:
        content = lz4.frame.decompress(data)
    except RuntimeError:
        return Err(CorruptError, (name,))
    assert content == p.snap_data[name], "lz4 returned wrong data without an error"
    return Ok(p.last)


def test_snapshots(pristine, seeded_random):
    p, rng = pristine, seeded_random
    cases = []
    new_meta = p.new_snap + ".meta"
    for name, judge in ((new_meta, meta_outcome), (p.new_snap, data_outcome)):
        data = (p.path / name).read_bytes()
        # Every byte: bit 0 and a seeded other bit in the headers (the .meta's
        # first 32 bytes, the lz4 frame's first 20), one seeded bit elsewhere.
        # Cuts: every length up to 40, then every 16th.
        flips = sorted({(o, b) for o in range(len(data))
                        for b in ((0, rng.randrange(1, 8)) if o < 32 else (rng.randrange(8),))})
        damaged_list = [(f"flip {o}.{b}", flip(data, o, b)) for o, b in flips]
        cuts = sorted({*range(min(40, len(data))), *range(40, len(data), 16), len(data) - 1})
        damaged_list += [(f"cut {n}", data[:n]) for n in cuts]
        for what, damaged in damaged_list:
            outcome = judge(p, name, damaged)
            cases.append(Case(name, what, damaged, lambda auto, o=outcome: o))
    # The older snapshot is not read: any damage to it is harmless.
    for name in (p.old_snap, p.old_snap + ".meta"):
        data = (p.path / name).read_bytes()
        offsets = sorted({*range(8), *rng.sample(range(len(data)), 8)})
        for what, damaged in [*((f"flip {o}.0", flip(data, o, 0)) for o in offsets),
                              ("cut 0", b""), ("cut 5", data[:5])]:
            cases.append(Case(name, what, damaged, lambda auto: Ok(p.last)))
    by_what = {(c.file, c.what): c.expect(False) for c in cases}
    assert by_what[(new_meta, "flip 0.0")] == Err(MalformedError, (new_meta,))
    assert by_what[(new_meta, "flip 8.0")] == Err(CorruptError, (new_meta,))
    assert by_what[(new_meta, "flip 12.0")] == Ok(p.last)   # high half of the crc word
    assert by_what[(new_meta, "cut 31")] == Err(IOError_, (new_meta,))
    assert by_what[(p.new_snap, "flip 0.0")] == Ok(p.last, snapshot="raw")   # quirk 8
    assert by_what[(p.new_snap, "flip 20.0")] == Err(CorruptError, (p.new_snap,))
    assert by_what[(p.new_snap, "cut 0")] == Ok(p.last, snapshot="old")
    run_cases(p, cases)


def test_pristine_loads(pristine):
    """The undamaged directory loads everything, with or without auto-recovery."""
    p = pristine
    assert len(p.closed) == 4 and p.bounds[p.open_name]
    none = Case("metadata1", "nothing", (p.path / "metadata1").read_bytes(),
                lambda auto: Ok(p.last))
    run_cases(p, [none])


# ------------------------------------------------------------- full disk

@contextlib.contextmanager
def mounted_tmpfs(path: pathlib.Path, options: str) -> Iterator[pathlib.Path]:
    """Mount a small tmpfs at path (we run as root in CI); skip if we cannot,
    except in CI, where not testing a full disk is a failure."""
    path.mkdir(exist_ok=True)
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)
        reason = res.stderr.strip() or f"mount exited with {res.returncode}"
    except OSError as err:
        res, reason = None, str(err)
    if res is None or res.returncode:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs at {path}: {reason}")
        pytest.skip(f"cannot mount a tmpfs at {path}: {reason}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], check=False)


def big_payload(index: int) -> bytes:
    return struct.pack("<QQ", index, index ^ 0x5A5A5A5A) * 64      # 1 KiB


async def fill_until_error(store: DiskStore, acked: dict[int, bytes],
                           depth: int = 8) -> list[BaseException]:
    """Append (depth in flight) until an append fails; record what was acknowledged."""
    errors: list[BaseException] = []

    async def one(n: int) -> None:
        first = store.next_index     # where the log ends (no await in between)
        batch = [Entry(2, EntryType.COMMAND, big_payload(i)) for i in range(first, first + n)]
        await store.append(first, batch)
        acked.update((i, big_payload(i)) for i in range(first, first + n))

    pending: set[asyncio.Future[None]] = set()
    k = 0
    while not errors:
        while len(pending) < depth:
            k += 1
            pending.add(asyncio.ensure_future(one(1 + k % 4)))
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        errors += [job.exception() for job in done if job.exception() is not None]
        assert k < 100000, "the disk never filled up"
    for result in await asyncio.gather(*pending, return_exceptions=True):
        if isinstance(result, BaseException):
            errors.append(result)
    return errors


async def check_log(path: pathlib.Path, acked: dict[int, bytes]) -> LoadResult:
    """Every acknowledged entry is there, with its content."""
    async with DiskStore(str(path), segment_size_bytes=64 * 1024, auto_recovery=False) as store:
        r = await store.load()
    assert r.start_index == 1
    last = len(r.entries)
    assert last >= max(acked), f"acknowledged up to {max(acked)}, the log ends at {last}"
    for i, data in acked.items():
        assert bytes(r.entries[i - 1].payload) == data, f"entry {i} is wrong"
    return r


def test_full_disk(tmp_path, run_loop):
    """Appends on a 2 MiB tmpfs until it is full: a NoSpaceError, nothing
    acknowledged lost; after space is freed the directory loads and grows."""
    with mounted_tmpfs(tmp_path / "mnt", "size=2m") as mnt:
        filler = mnt / "filler"
        filler.write_bytes(bytes(512 * 1024))
        acked: dict[int, bytes] = {}

        async def fill() -> list[BaseException]:
            store = DiskStore(str(mnt), segment_size_bytes=64 * 1024)
            await store.open()
            await store.load()
            await store.bootstrap(CONF)
            await store.set_term(2)
            acked[1] = CONF.encode()
            try:
                return await fill_until_error(store, acked)
            finally:
                await store.close()

        errors = run_loop(fill())
        print(f"{len(acked)} entries acknowledged, then: {errors[0]!r}")
        assert len(acked) > 500
        assert all(isinstance(e, NoSpaceError) for e in errors), errors
        assert "space" in str(errors[0]).lower(), errors[0]
        assert sorted(acked) == list(range(1, len(acked) + 1))

        async def reopen_while_full() -> None:
            try:
                await check_log(mnt, acked)
            except NoSpaceError as err:     # the filesystem probe needs a block
                print(f"reopen while full: {err!r}")

        run_loop(reopen_while_full())
        filler.unlink()

        async def grow() -> None:
            await check_log(mnt, acked)
            async with DiskStore(str(mnt), segment_size_bytes=64 * 1024) as store:
                r = await store.load()
                assert r.term == 2
                first = len(r.entries) + 1
                batch = [Entry(2, EntryType.COMMAND, big_payload(i))
                         for i in range(first, first + 20)]
                await store.append(first, batch)
                acked.update((i, big_payload(i)) for i in range(first, first + 20))
            await check_log(mnt, acked)

        run_loop(grow())


def test_full_disk_then_space_freed_same_store(tmp_path):
    """After a NoSpaceError, freeing space lets the same store append again at once."""
    with mounted_tmpfs(tmp_path / "mnt", "size=2m") as mnt:
        filler = mnt / "filler"
        filler.write_bytes(bytes(512 * 1024))
        acked: dict[int, bytes] = {}

        async def go() -> None:
            store = DiskStore(str(mnt), segment_size_bytes=64 * 1024)
            await store.open()
            await store.load()
            try:
                errors = await fill_until_error(store, acked)
                assert isinstance(errors[0], NoSpaceError)
                filler.unlink()
                first = store.next_index
                await store.append(first, [Entry(2, EntryType.COMMAND, big_payload(first))])
                acked[first] = big_payload(first)
            finally:
                await store.close()
            await check_log(mnt, acked)

        asyncio.run(go())


def test_segment_preparation_on_a_nearly_full_disk(tmp_path):
    """Preparing an open segment reserves all of it, or fails with NoSpaceError."""
    with mounted_tmpfs(tmp_path / "mnt", "size=1m") as mnt:
        caps = aio.probe(str(mnt))
        st = os.statvfs(mnt)
        (mnt / "filler").write_bytes(bytes(st.f_bavail * st.f_frsize - 40 * 1024))
        path = mnt / "open-1"
        try:
            aio.prepare_file(str(path), 64 * 1024, caps, zero_fill=True)
        except NoSpaceError:
            assert not path.exists()
            return
        assert path.stat().st_size == 64 * 1024, f"prepared {path.stat().st_size} bytes"


# ------------------------------------------------------ bad directories

def open_store(path: pathlib.Path | str) -> None:
    async def go() -> None:
        store = DiskStore(str(path))
        await store.open()
        await store.close()
    asyncio.run(go())


def test_missing_directory(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        open_store(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InvalidError, match="not a directory"):
        open_store(tmp_path / "file")


def test_read_only_directory(tmp_path):
    """A read-only directory: InvalidError 'not writable' at open, as libraft."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises((InvalidError, UnauthorizedError), match=str(ro)):
                open_store(ro)
        finally:
            ro.chmod(0o700)
        return
    # root ignores permission bits: a data directory on a filesystem remounted read-only
    with mounted_tmpfs(tmp_path / "mnt", "size=1m") as mnt:
        async def populate() -> None:
            async with DiskStore(str(mnt), segment_size_bytes=8192) as store:
                await store.load()
                await store.bootstrap(CONF)
        asyncio.run(populate())
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(InvalidError, match="not writable") as info:
            open_store(mnt)
        assert str(mnt) in str(info.value)
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        open_store(mnt)       # nothing was left locked or half-open


def test_two_stores_one_directory(tmp_path):
    async def go() -> None:
        first = DiskStore(str(tmp_path))
        await first.open()
        second = DiskStore(str(tmp_path))
        with pytest.raises(BusyError, match=f"in use by another process.*pid {os.getpid()}"):
            await second.open()
        await first.close()
        await second.open()      # released on close
        await second.close()
    asyncio.run(go())


HOLDER = """
import asyncio, sys
from raftpy.io.disk import DiskStore
async def main():
    store = DiskStore(sys.argv[1])
    await store.open()
    print("locked", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await store.close()
asyncio.run(main())
"""


def test_two_processes_one_directory(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for ending in ("close", "kill"):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        try:
            assert proc.stdout is not None and proc.stdin is not None
            assert proc.stdout.readline() == b"locked\n"
            with pytest.raises(BusyError, match=f"pid {proc.pid}"):
                open_store(tmp_path)
            if ending == "close":
                proc.stdin.close()          # the holder closes its store and exits
                assert proc.wait(30) == 0
            else:
                proc.kill()                 # a dead holder leaves a stale lock file
                proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        open_store(tmp_path)
        assert (tmp_path / "raftpy.lock").exists()
