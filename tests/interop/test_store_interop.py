"""DiskStore and Debian's libraft 0.15 open each other's data directories (spec §3).

tests/interop/raftcompat.c drives libraft's libuv storage engine through its
public API (see test_libraft.py, which builds it and checks the raw formats).
Here the store itself is under test, both ways:

(a) libraft writes (bootstrap, term, vote, appends filling segments, snapshots
    with trailing > 0, compressed or raw, then a clean exit without closing or
    a SIGKILL mid-append), and DiskStore.load returns what libraft's own load
    returns from a copy of the directory: term, vote, snapshot, start index,
    entries; and both leave the directory in the same state.
(b) DiskStore writes (bootstrap, term and vote, appends filling segments,
    truncations inside a closed segment and at a segment boundary, snapshots
    with trailing > 0 while appending, then close or SIGKILL mid-append in a
    child process), and libraft's load returns what DiskStore's load returns
    from a copy, which is what was written.
(c) DiskStore.recover and DiskStore.bootstrap write what libraft's recover and
    bootstrap write, byte for byte up to the bytes libraft leaves
    uninitialised, and libraft loads the result.

Both loads mutate a directory (open segments are closed, spares deleted), so
each side loads its own copy, made before either.  Run as a script
(``python test_store_interop.py child DIR COMPRESS``) this file is the child
process of (b) that gets killed.
"""

from __future__ import annotations

import asyncio
import functools
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_libraft import raftcompat, run, script_entry  # noqa: F401  (raftcompat: fixture)

from raftpy import _bindings
from raftpy._bindings import ScanOutcome
from raftpy.core.configuration import Configuration, Role
from raftpy.core.types import Entry, EntryType
from raftpy.io import layout
from raftpy.io.disk import DiskStore, Snapshot

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LOCK = "raftpy.lock"
SEGMENT_SIZE = 32 * 1024
DEADLINE_S = 20

# ----------------------------------------------------------- shared values

LIBRAFT_CONF = Configuration.of((1, "127.0.0.1:9001"), (2, "127.0.0.1:9002"),
                                (3, "127.0.0.1:9003", Role.STANDBY))


@functools.cache
def snapshot_data(index: int) -> bytes:
    """raftcompat.c's snapshot_len/snapshot_byte: a repeating half, then noise."""
    n = 70000 + (index % 16) * 8
    half = n // 2
    out = bytearray((index * 13 + j * 5 + 3 + (j >> 12)) & 0xFF for j in range(half))
    for j in range(half, n):
        x = (index * 2654435761 + j * 40503) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
        x ^= x >> 12
        out.append(x >> 24)
    return bytes(out)


@dataclass(frozen=True)
class State:
    """What a load returns, in plain values."""

    term: int
    vote: int
    snapshot: tuple[int, int, Configuration, int, bytes] | None
    start_index: int
    entries: list[tuple[int, int, bytes]]

    @property
    def last_index(self) -> int:
        return self.start_index + len(self.entries) - 1


def assert_same(ours: State, theirs: State) -> None:
    """Field by field, so a mismatch names the first differing entry."""
    assert (ours.term, ours.vote) == (theirs.term, theirs.vote)
    assert (ours.snapshot is None) == (theirs.snapshot is None)
    if ours.snapshot is not None and theirs.snapshot is not None:
        assert ours.snapshot[:4] == theirs.snapshot[:4]
        assert ours.snapshot[4] == theirs.snapshot[4], "snapshot data differs"
    assert ours.start_index == theirs.start_index
    for k, (a, b) in enumerate(zip(ours.entries, theirs.entries, strict=False)):
        assert a == b, f"entry {ours.start_index + k} differs"
    assert len(ours.entries) == len(theirs.entries)


def libraft_load(exe: Path, path: Path) -> State:
    doc = run(exe, "load", path)
    snap = doc["snapshot"]
    snapshot = None if snap is None else (
        snap["term"], snap["index"],
        Configuration.of(*[(s["id"], s["address"], Role(s["role"]))
                           for s in snap["configuration"]]),
        snap["configuration_index"], bytes.fromhex(snap["data"]))
    return State(doc["term"], doc["vote"], snapshot, doc["start_index"],
                 [(e["term"], e["type"], bytes.fromhex(e["payload"])) for e in doc["entries"]])


def raftpy_load(path: Path, runner: Callable = asyncio.run) -> State:
    async def go() -> State:
        async with DiskStore(str(path), segment_size_bytes=SEGMENT_SIZE) as store:
            res = await store.load()
        snap = res.snapshot
        snapshot = None if snap is None else (
            snap.term, snap.index, snap.configuration, snap.configuration_index, snap.data)
        return State(res.term, res.voted_for, snapshot, res.start_index,
                     [(e.term, e.type, bytes(e.payload)) for e in res.entries])
    return runner(go())


def files(path: Path) -> dict[str, bytes]:
    return {n: (path / n).read_bytes() for n in sorted(os.listdir(path)) if n != LOCK}


def _wait_stopped(pid: int) -> None:
    """Until SIGSTOP has taken effect (delivery is asynchronous: the child may
    still rename a segment just after kill returns); at most 1 s."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t", "Z"):
            return
        time.sleep(0.0005)


def open_segments_with_entries(path: Path) -> list[str]:
    found = []
    for name in os.listdir(path):
        if name.startswith("open-"):
            try:
                data = (path / name).read_bytes()
            except FileNotFoundError:   # closed (renamed) since the listing
                continue
            scan = _bindings.scan_segment(data)
            if scan.entries and scan.outcome != ScanOutcome.CORRUPT:
                found.append(name)
    return found


def load_both(exe: Path, path: Path, tmp: Path, runner: Callable = asyncio.run,
              ) -> tuple[State, State]:
    """libraft's load of one copy and DiskStore's load of another: the same
    result, and the two copies end up holding the same files."""
    theirs_dir, ours_dir = tmp / "libraft-load", tmp / "raftpy-load"
    shutil.copytree(path, theirs_dir)
    shutil.copytree(path, ours_dir)
    theirs = libraft_load(exe, theirs_dir)
    ours = raftpy_load(ours_dir, runner)
    assert_same(ours, theirs)
    after_theirs, after_ours = files(theirs_dir), files(ours_dir)
    assert sorted(after_ours) == sorted(after_theirs)
    for name, data in after_theirs.items():
        assert after_ours[name] == data, f"{name} differs after the loads"
    return ours, theirs


# ------------------------------------------------------- a child's events

class Events:
    """Read a child's stdout lines ("ack N", "snapshot N", ...) without blocking
    forever, draining the pipe so that the child never stalls on it."""

    def __init__(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.pending = b""
        self.lines: list[list[str]] = []
        self.deadline = time.monotonic() + DEADLINE_S
        self.killed = False

    def pump(self, timeout_s: float) -> None:
        end = min(time.monotonic() + timeout_s, self.deadline)
        while True:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0))
            if not ready:
                return
            chunk = os.read(self.fd, 1 << 16)
            if not chunk and self.killed:
                return
            if not chunk:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                pytest.fail(f"child exited early ({self.proc.wait()}): {err}")
            self.pending += chunk
            *lines, self.pending = self.pending.split(b"\n")
            self.lines += [line.decode().split() for line in lines]

    def last(self, kind: str) -> int:
        return max((int(w[1]) for w in self.lines if w[0] == kind), default=0)

    def count(self, kind: str) -> int:
        return sum(1 for w in self.lines if w[0] == kind)

    def wait_for(self, done: Callable[[], bool], what: str) -> None:
        while not done():
            assert time.monotonic() < self.deadline, f"timed out waiting for {what}"
            self.pump(0.05)

    def kill_with_open_segment(self, path: Path) -> None:
        """SIGKILL the child at a moment when an open segment holds entries:
        stop it, look, and kill it or let it run a little longer."""
        try:
            while True:
                assert time.monotonic() < self.deadline, "no open segment with entries"
                self.proc.send_signal(signal.SIGSTOP)
                _wait_stopped(self.proc.pid)
                if open_segments_with_entries(path):
                    break
                self.proc.send_signal(signal.SIGCONT)
                self.pump(0.002)
        finally:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.killed = True
        self.pump(1)
        assert self.proc.returncode == -signal.SIGKILL


# ========================== (a) libraft writes, DiskStore loads =============

def check_libraft_state(state: State, wrote_up_to: int,
                        snapshot_ok: Callable[[int], bool]) -> None:
    """What libraft's script wrote (raftcompat.c: term 2, vote 1, entry_for)."""
    assert (state.term, state.vote) == (2, 1)
    assert state.last_index >= wrote_up_to
    for k, got in enumerate(state.entries):
        index = state.start_index + k
        if index == 1:
            assert got[:2] == (1, EntryType.CHANGE)
            assert Configuration.decode(got[2]) == LIBRAFT_CONF
        else:
            assert got == (2, *script_entry(index)), f"entry {index}"
    assert state.snapshot is not None
    term, index, conf, conf_index, data = state.snapshot
    assert snapshot_ok(index), index
    assert (term, conf, conf_index) == (2, LIBRAFT_CONF, 1)
    assert data == snapshot_data(index)
    assert state.start_index > 1, "the snapshots' trailing should have deleted segments"


@pytest.mark.parametrize("compress", [True, False], ids=["lz4", "raw"])
@pytest.mark.parametrize("end", ["no-close", "sigkill"])
def test_libraft_dir_loaded_by_diskstore(raftcompat: Path, tmp_path: Path,  # noqa: F811
                                         compress: bool, end: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    opts = ["--snapshot-every", "1000", "--trailing", "300"]
    if not compress:
        opts.append("--no-compression")
    if end == "no-close":
        # The script's last append is durable, then exit: open segments stay.
        doc = run(raftcompat, "write", data_dir, "--no-close", "--batches", "1500", *opts)
        wrote_up_to, snapshots = len(doc["entries"]) + 1, doc["snapshots"]
        assert len(snapshots) >= 3

        def snapshot_ok(index: int) -> bool:
            return index == snapshots[-1]
    else:
        proc = subprocess.Popen([str(raftcompat), "write-forever", str(data_dir), *opts],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        events = Events(proc)
        try:
            events.wait_for(lambda: events.count("snapshot") >= 2 and events.last("ack") > 2500,
                            "two snapshots")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        events.kill_with_open_segment(data_dir)
        wrote_up_to = events.last("ack")
        stored = events.last("snapshot")

        def snapshot_ok(index: int) -> bool:
            # The last one stored, or one under way at the kill that got to disk
            # (raftcompat puts one when the acknowledged index has grown by 1000).
            return index == stored or stored + 1000 <= index <= wrote_up_to

    # The directory holds what the test is about.
    names = os.listdir(data_dir)
    assert open_segments_with_entries(data_dir), names
    assert [s for s in layout.list_dir(str(data_dir)).segments if not s.is_open], names
    listing = layout.list_dir(str(data_dir))
    assert len(listing.snapshots) == 2, names
    for snap in listing.snapshots:
        blob = (data_dir / snap.name).read_bytes()
        if compress:
            assert blob[:4] == layout.LZ4_MAGIC and len(blob) < len(snapshot_data(snap.index))
        else:
            assert blob == snapshot_data(snap.index)

    ours, theirs = load_both(raftcompat, data_dir, tmp_path)
    check_libraft_state(ours, wrote_up_to, snapshot_ok)


def test_diskstore_continues_libraft_dir(raftcompat: Path,  # noqa: F811
                                        tmp_path: Path) -> None:
    """Point DiskStore at a crashed libraft directory, go on appending and
    snapshotting, and hand it back: libraft loads what DiskStore wrote."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    doc = run(raftcompat, "write", data_dir, "--no-close", "--batches", "700",
              "--snapshot-every", "800", "--trailing", "300")
    last = len(doc["entries"]) + 1
    more = [(3, int(EntryType.COMMAND), struct.pack("<Q", i) * (1 + i % 3))
            for i in range(last + 1, last + 1001)]

    async def go() -> State:
        async with DiskStore(str(data_dir), segment_size_bytes=SEGMENT_SIZE) as store:
            res = await store.load()
            assert res.start_index + len(res.entries) - 1 == last
            await store.set_term(3)
            for k in range(0, len(more), 5):
                await store.append(last + 1 + k, [Entry(*e) for e in more[k:k + 5]])
            index = last + 500
            await store.snapshot_put(100, Snapshot(3, index, LIBRAFT_CONF, 1,
                                                   snapshot_data(index)))
            return State(3, 0, (3, index, LIBRAFT_CONF, 1, snapshot_data(index)),
                         res.start_index, [(e.term, e.type, bytes(e.payload))
                                           for e in res.entries] + more)
    wrote = asyncio.run(go())

    ours, _ = load_both(raftcompat, data_dir, tmp_path)
    assert ours.snapshot == wrote.snapshot
    assert (ours.term, ours.vote) == (3, 0)
    assert ours.start_index > wrote.start_index, "the new snapshot's trailing deleted segments"
    assert ours.entries == wrote.entries[ours.start_index - wrote.start_index:]


# ========================== (b) DiskStore writes, libraft loads =============

STORE_CONF = Configuration.of((1, "127.0.0.1:9001"), (2, "10.0.0.2:9002"),
                              (3, "192.168.100.200:65535", Role.STANDBY))
# The configuration the log switches to (CHANGE entries) and snapshots carry.
STORE_CONF2 = STORE_CONF.add(4, "127.0.0.1:9004", Role.SPARE)
CHANGE_EVERY, CHANGE_AT = 500, 123
_PATTERN = bytes((j * 11 + (j >> 8)) & 0xFF for j in range(512))


def change_index_at_or_before(index: int) -> int:
    """Index of the last CHANGE entry at or before index (1: the bootstrap one)."""
    k = index - CHANGE_AT
    return 1 if k < 0 else CHANGE_AT + k // CHANGE_EVERY * CHANGE_EVERY


def store_entry(index: int, term: int) -> tuple[int, int, bytes]:
    """The entry the writer appends at index in term: commands of 0 to 192
    bytes (zero-length included), barriers, and CHANGE entries."""
    if index % CHANGE_EVERY == CHANGE_AT:
        return term, int(EntryType.CHANGE), STORE_CONF2.encode()
    type_ = EntryType.BARRIER if index % 11 == 0 else EntryType.COMMAND
    size = 8 * (index * 7 % 25)
    offset = (index * 37 + term * 101) % 256
    return term, int(type_), _PATTERN[offset:offset + size]


@dataclass
class Model:
    """The log as the writer's events describe it (both processes keep one)."""

    term: int = 0
    vote: int = 0
    entries: list[tuple[int, int, bytes]] = field(default_factory=list)   # from index 1
    puts: list[int] = field(default_factory=list)         # snapshot puts started
    snapshots: list[int] = field(default_factory=list)    # ... and finished
    acked: int = 0

    def apply(self, words: list[str]) -> None:
        kind, args = words[0], [int(w) for w in words[1:]]
        if kind == "term":
            self.term, self.vote = args
        elif kind == "ack":
            self.extend(args[0])
            self.acked = max(self.acked, args[0])
        elif kind == "truncate":
            del self.entries[args[0] - 1:]
            self.acked = min(self.acked, args[0] - 1)
        elif kind == "put":
            self.puts.append(args[0])
        elif kind == "snapshot":
            self.snapshots.append(args[0])

    def extend(self, last: int) -> None:
        while len(self.entries) < last:
            self.entries.append(store_entry(len(self.entries) + 1, self.term))

    def snapshot(self, index: int) -> tuple[int, int, Configuration, int, bytes]:
        conf_index = change_index_at_or_before(index)
        conf = STORE_CONF if conf_index == 1 else STORE_CONF2
        return (self.entries[index - 1][0], index, conf, conf_index, snapshot_data(index))


class Writer:
    """Drives a DiskStore through the scenario and reports each step as an event."""

    def __init__(self, store: DiskStore, emit: Callable[[str], None]) -> None:
        self.store = store
        self.model = Model()
        self._emit = emit
        self.next_index = 1
        self.window: set[asyncio.Task] = set()

    def emit(self, line: str) -> None:
        self.model.apply(line.split())
        self._emit(line)

    async def start(self) -> None:
        await self.store.bootstrap(STORE_CONF)
        self.emit("term 1 0")
        res = await self.store.load()
        assert res.start_index == 1 and len(res.entries) == 1
        self.model.entries = [(1, int(EntryType.CHANGE), STORE_CONF.encode())]
        self.model.acked, self.next_index = 1, 2
        await self.new_term(3, 1)

    async def new_term(self, term: int, vote: int) -> None:
        await self.store.set_term(term)
        await self.store.set_vote(vote)
        self.emit(f"term {term} {vote}")

    async def _append(self, first: int, n: int) -> None:
        await self.store.append(first, [Entry(*store_entry(i, self.model.term))
                                        for i in range(first, first + n)])
        self.emit(f"ack {first + n - 1}")

    async def append_until(self, last: int | None, window: int = 8) -> None:
        """Append batches of 1 to 4 entries, window of them in flight, up to
        index last (or without end)."""
        while last is None or self.next_index <= last:
            while len(self.window) >= window:
                done, self.window = await asyncio.wait(self.window,
                                                       return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            n = 1 + self.next_index % 4
            if last is not None:
                n = min(n, last - self.next_index + 1)
            self.window.add(asyncio.ensure_future(self._append(self.next_index, n)))
            self.next_index += n
        await self.drain()

    async def drain(self) -> None:
        if self.window:
            done, _ = await asyncio.wait(self.window)
            for task in done:
                task.result()
            self.window = set()

    def closed_segments(self) -> list[layout.SegmentFile]:
        return [s for s in layout.list_dir(self.store.path).segments if not s.is_open]

    async def truncate(self, index: int) -> None:
        await self.store.truncate(index)
        self.next_index = index
        self.emit(f"truncate {index}")
        # A new leader's entries replace the truncated ones: a later term.
        await self.new_term(self.model.term + 1, 2)

    async def snapshot(self, index: int, trailing: int) -> None:
        self.emit(f"put {index}")
        _, _, conf, conf_index, data = self.model.snapshot(index)
        await self.store.snapshot_put(trailing, Snapshot(
            self.model.entries[index - 1][0], index, conf, conf_index, data))
        self.emit(f"snapshot {index}")

    def segment_ranges(self) -> list[tuple[int, int]]:
        return [(s.first, s.last) for s in self.closed_segments()]

    async def script(self) -> None:
        """Everything but the end: segments closed by size, truncations inside a
        closed segment, at a segment boundary and in the open segment, snapshots
        taken while appending."""
        await self.start()
        await self.append_until(1500)
        closed = [s for s in self.closed_segments() if s.first > 1]
        assert len(closed) >= 3, closed
        middle = closed[-2]
        assert middle.last - middle.first >= 2
        cut = (middle.first + middle.last + 1) // 2
        await self.truncate(cut)
        # Spec §3.8: the segment holding cut is rewritten up to cut - 1, later ones go.
        assert self.segment_ranges()[-2:] == [(closed[-3].first, closed[-3].last),
                                              (middle.first, cut - 1)]
        await self.append_until(self.next_index + 1200)
        ranges = self.segment_ranges()
        boundary = ranges[-2]
        await self.truncate(boundary[0])
        assert self.segment_ranges() == ranges[:-2]
        await self.append_until(self.next_index + 1500)
        # A conflict at the tail: entries still in the open segment.
        assert self.segment_ranges()[-1][1] < self.next_index - 3
        await self.truncate(self.next_index - 3)
        await self.append_until(self.next_index + 200)
        for _ in range(3):          # three puts: the oldest snapshot is deleted
            appending = asyncio.ensure_future(self.append_until(self.next_index + 300))
            await self.snapshot(self.model.acked, trailing=200)
            await appending
        await self.append_until(self.next_index + 100)


async def write_store(path: Path, compress: bool, emit: Callable[[str], None],
                      forever: bool) -> Model:
    store = DiskStore(str(path), segment_size_bytes=SEGMENT_SIZE, snapshot_compression=compress)
    async with store:
        writer = Writer(store, emit)
        await writer.script()
        if forever:
            emit("ready")
            while True:
                appending = asyncio.ensure_future(writer.append_until(writer.next_index + 700))
                await writer.snapshot(writer.model.acked, trailing=200)
                await appending
    return writer.model


def check_store_state(state: State, model: Model, exact: bool) -> None:
    """A load of the writer's directory returns what the writer wrote: all of
    it (exact), or at least every acknowledged entry and nothing else."""
    assert (state.term, state.vote) == (model.term, model.vote)
    model.extend(state.last_index)
    if exact:
        assert state.last_index == len(model.entries)
    else:
        assert state.last_index >= model.acked
    assert state.start_index > 1, "the snapshots' trailing should have deleted segments"
    for k, got in enumerate(state.entries):
        assert got == model.entries[state.start_index + k - 1], \
            f"entry {state.start_index + k}"
    assert state.snapshot is not None
    assert state.snapshot[1] in model.puts
    assert state.snapshot[1] >= max(model.snapshots)
    assert state.snapshot == model.snapshot(state.snapshot[1])


@pytest.mark.parametrize("compress", [True, False], ids=["lz4", "raw"])
def test_diskstore_dir_loaded_by_libraft(raftcompat: Path, tmp_path: Path,  # noqa: F811
                                         run_loop, compress: bool) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    lines: list[str] = []
    model = run_loop(write_store(data_dir, compress, lines.append, forever=False))
    assert [w for w in lines if w.startswith("truncate")], lines

    names = os.listdir(data_dir)
    assert not [n for n in names if n.startswith("open-")], "close leaves no open segment"
    listing = layout.list_dir(str(data_dir))
    assert [s.index for s in listing.snapshots] == model.snapshots[-2:]
    for snap in listing.snapshots:
        blob = (data_dir / snap.name).read_bytes()
        assert (blob[:4] == layout.LZ4_MAGIC) == compress

    ours, _ = load_both(raftcompat, data_dir, tmp_path, run_loop)
    check_store_state(ours, model, exact=True)


def test_killed_diskstore_dir_loaded_by_libraft(raftcompat: Path,  # noqa: F811
                                                tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.Popen([sys.executable, str(Path(__file__)), "child", str(data_dir), "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    events = Events(proc)
    try:
        events.wait_for(lambda: events.count("ready") and events.count("snapshot") >= 5
                        and events.last("ack") > events.last("snapshot") + 200,
                        "the child's script, two snapshots and appends after it")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    events.kill_with_open_segment(data_dir)
    model = Model()
    for words in events.lines:
        if words[0] != "ready":
            model.apply(words)
    assert model.acked > max(model.snapshots) + 200

    ours, _ = load_both(raftcompat, data_dir, tmp_path)
    check_store_state(ours, model, exact=False)


def test_installed_snapshot_loaded_by_libraft(raftcompat: Path, tmp_path: Path,  # noqa: F811
                                              run_loop) -> None:
    """snapshot_put with trailing 0 (installation) replaces the whole log and
    the next append follows the snapshot (spec §3.9): libraft agrees."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    installed = 5000

    async def go() -> Model:
        async with DiskStore(str(data_dir), segment_size_bytes=SEGMENT_SIZE) as store:
            writer = Writer(store, lambda line: None)
            await writer.start()
            await writer.append_until(1000)
            await writer.new_term(7, 3)
            snap = Snapshot(6, installed, STORE_CONF2, 4623, snapshot_data(installed))
            await store.snapshot_install(snap)
            assert store.next_index == installed + 1
            writer.next_index = installed + 1
            writer.model.entries += [(0, 0, b"")] * (installed - len(writer.model.entries))
            await writer.append_until(installed + 600)
            return writer.model
    model = run_loop(go())
    assert not [s for s in layout.list_dir(str(data_dir)).segments if s.last < installed
                and not s.is_open], "installation deletes every older closed segment"

    ours, _ = load_both(raftcompat, data_dir, tmp_path, run_loop)
    assert (ours.term, ours.vote, ours.start_index) == (7, 3, installed + 1)
    assert ours.snapshot == (6, installed, STORE_CONF2, 4623, snapshot_data(installed))
    assert ours.entries == model.entries[installed:]
    assert len(ours.entries) == 600


# ==================== (c) bootstrap and recover, byte for byte ==============

CONFS = {
    "three": LIBRAFT_CONF,
    "one": Configuration.of((1, "127.0.0.1:9001")),          # 9 + 24 bytes: 7 of padding
    "four": STORE_CONF2,
    "unpadded": Configuration.of((7, "10.0.0.1:100")),       # 9 + 22 + 1 = 32: none
}


def conf_args(conf: Configuration) -> list[str]:
    return [f"{s.id},{s.address},{int(s.role)}" for s in conf.servers]


def unpadded_len(conf: Configuration) -> int:
    return 9 + sum(8 + len(s.address.encode()) + 2 for s in conf.servers)


def same_conf_segment(ours: bytes, theirs: bytes, conf: Configuration, term: int) -> None:
    """A closed segment of one CHANGE entry: equal byte for byte, except the
    entry header's 3 unused bytes and the configuration's padding, which
    libraft leaves uninitialised (with the crc covering them)."""
    payload = conf.encode()
    assert ours == layout_segment(term, payload)
    assert len(theirs) == len(ours)
    unused, pad = slice(0x21, 0x24), slice(0x28 + unpadded_len(conf), len(ours))
    masked = [(unused, slice(8, 12)), (pad, slice(12, 16))]
    a, b = bytearray(ours), bytearray(theirs)
    for region, crc in masked:
        if b[region] != a[region]:        # garbage: mask it and the crc over it
            b[region] = a[region]
            a[crc] = b[crc] = bytes(4)
    assert a == b
    (header_crc, data_crc) = struct.unpack_from("<II", theirs, 8)
    assert header_crc == _bindings.crc32(theirs[0x10:0x28])
    assert data_crc == _bindings.crc32(theirs[0x28:])


def layout_segment(term: int, payload: bytes) -> bytes:
    return struct.pack("<Q", 1) + bytes(_bindings.encode_batch(
        [Entry(term, EntryType.CHANGE, payload)]))


@pytest.mark.parametrize("name", sorted(CONFS))
def test_bootstrap_same_files_as_libraft(raftcompat: Path, tmp_path: Path,  # noqa: F811
                                         name: str) -> None:
    conf = CONFS[name]
    theirs_dir, ours_dir = tmp_path / "libraft", tmp_path / "raftpy"
    theirs_dir.mkdir()
    ours_dir.mkdir()
    res = subprocess.run([str(raftcompat), "bootstrap", str(theirs_dir), *conf_args(conf)],
                         check=False, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr

    async def bootstrap() -> None:
        async with DiskStore(str(ours_dir)) as store:
            await store.bootstrap(conf)
    asyncio.run(bootstrap())

    seg = "0000000000000001-0000000000000001"
    theirs, ours = files(theirs_dir), files(ours_dir)
    assert sorted(theirs) == sorted(ours) == [seg, "metadata1"]
    assert ours["metadata1"] == theirs["metadata1"] == struct.pack("<4Q", 1, 1, 1, 0)
    same_conf_segment(ours[seg], theirs[seg], conf, term=1)

    # Each loads the other's directory.
    expected = State(1, 0, None, 1, [(1, int(EntryType.CHANGE), conf.encode())])
    got = libraft_load(raftcompat, ours_dir)
    assert got == expected
    got = raftpy_load(theirs_dir)
    assert got.entries[0][:2] == (1, EntryType.CHANGE)
    assert Configuration.decode(got.entries[0][2]) == conf
    assert got == State(1, 0, None, 1, got.entries)


@pytest.mark.parametrize("base", ["libraft", "raftpy"])
def test_recover_same_files_as_libraft(raftcompat: Path, tmp_path: Path,  # noqa: F811
                                       base: str) -> None:
    """recover on a directory with open segments and a snapshot: the N-N
    segment holds one CHANGE entry of term 1 (quirk 4), as libraft's does."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if base == "libraft":
        run(raftcompat, "write", data_dir, "--no-close", "--batches", "600",
            "--snapshot-every", "500", "--trailing", "100")
    else:
        asyncio.run(write_store(data_dir, True, lambda line: None, forever=False))
        # Leave open segments, as a crash would: one with entries, one empty.
        (data_dir / "open-1").write_bytes(
            struct.pack("<Q", 1) + bytes(_bindings.encode_batch(
                [Entry(9, EntryType.COMMAND, b"crashed!")])) + bytes(SEGMENT_SIZE - 48))
        (data_dir / "open-2").write_bytes(bytes(SEGMENT_SIZE))
    assert layout.list_dir(str(data_dir)).snapshots
    assert any(n.startswith("open-") for n in os.listdir(data_dir))
    before = libraft_load(raftcompat, shutil.copytree(data_dir, tmp_path / "before"))

    conf = Configuration.of((5, "10.1.1.5:7000"), (6, "10.1.1.6:7000", Role.STANDBY))
    theirs_dir = shutil.copytree(data_dir, tmp_path / "libraft")
    ours_dir = shutil.copytree(data_dir, tmp_path / "raftpy")
    res = subprocess.run([str(raftcompat), "recover", str(theirs_dir), *conf_args(conf)],
                         check=False, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr

    async def recover() -> None:
        async with DiskStore(str(ours_dir), segment_size_bytes=SEGMENT_SIZE) as store:
            await store.recover(conf)
    asyncio.run(recover())

    n = before.last_index + 1
    seg = layout.closed_name(n, n)
    theirs, ours = files(theirs_dir), files(ours_dir)
    assert sorted(ours) == sorted(theirs)
    for name, data in theirs.items():
        if name != seg:
            assert ours[name] == data, name
    same_conf_segment(ours[seg], theirs[seg], conf, term=1)

    # libraft loads the recovered directory: the old log, then the new configuration.
    after = libraft_load(raftcompat, ours_dir)
    assert after.entries[:-1] == before.entries
    assert (after.term, after.vote, after.snapshot, after.start_index) == (
        before.term, before.vote, before.snapshot, before.start_index)
    assert after.entries[-1] == (1, int(EntryType.CHANGE), conf.encode())
    assert raftpy_load(ours_dir) == after


# ------------------------------------------------------------ the child

def child_main(path: str, compress: bool) -> None:
    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    asyncio.run(write_store(Path(path), compress, emit, forever=True))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "child":
        child_main(sys.argv[2], sys.argv[3] == "1")
    else:
        sys.exit(f"usage: {sys.argv[0]} child DIR COMPRESS(0|1)")
