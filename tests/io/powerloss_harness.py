"""Power-loss harness: record a workload against a real directory, then load every
crash state raftpy.testing.powerloss builds from the recording, and check it.

- ``Driver`` issues store operations in order (each as a task, so several are
  in flight at once, as the Server issues them) and marks in the recording
  what it issued and what the store acknowledged;
- ``record(workload, ...)`` runs a workload on a fresh directory under
  tests/io/.aio-scratch (a real disk: O_DIRECT, AIO, real fsync) through an
  ``fs.Recorder``;
- ``verify(recording, ...)`` writes each crash state into a scratch directory,
  loads it with DiskStore twice (auto-recovery off, and on), and checks the
  result at that crash point with ``powerloss.check``; a state seen before is
  checked again at the new point without reloading.  The states are loaded on
  /dev/shm (tmpfs) with the capability probe run once per filesystem: the
  recording itself runs on a real disk, and what is checked is what load makes
  of the bytes, which does not depend on where they lie; a load on ext4 costs
  ~60 ms (probe, fsyncs), on tmpfs ~1 ms, which is what makes thousands of
  states per run affordable.

Used by tests/io/test_power_loss.py; ``python tests/io/powerloss_harness.py
WORKLOAD SEED`` runs one workload by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pathlib
import random
import shutil
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from raftpy.core.configuration import Configuration
from raftpy.core.types import Entry, EntryType
from raftpy.errors import IOError_, NoSpaceError, RaftError
from raftpy.io import aio, layout
from raftpy.io.disk import DiskStore, LoadResult, Snapshot
from raftpy.io.fs import Event, Recorder
from raftpy.testing import powerloss

HERE = pathlib.Path(__file__).resolve().parent
SCRATCH = HERE / ".aio-scratch"
CONF = Configuration.of((1, "127.0.0.1:9001"), (2, "127.0.0.1:9002"))
WORKLOAD_TIMEOUT_S = 30


# ---------------------------------------------------------------- driving

class Driver:
    """Issues operations on a store in order and marks them in the recording."""

    def __init__(self, store: DiskStore, rec: Recorder, rng: random.Random,
                 faults: bool = False) -> None:
        self.store = store
        self.rec = rec
        self.rng = rng
        self.next = 1                      # index the next append starts at
        self.term = 1                      # term of new entries
        self.meta_term = 0
        self.log: dict[int, tuple[int, int, bytes]] = {}    # issued log
        self.acked_last = 0
        self.durable_last = 0              # entries 1..this of the issued log acknowledged
        self.snapshot_index = 0
        self.ops = 0
        self.tasks: list[asyncio.Future[Any]] = []
        self.sizes = (0, 8, 24, 64, 200, 600, 1500, 2600)
        # With faults injected, a store error is an outcome, not a test
        # failure: a failed append is marked and re-issued (after_failures),
        # any other failure ends the workload (stopped).
        self.faults = faults
        self.failed_appends: list[int] = []
        self.errors: list[str] = []
        self.stopped = False
        self.reissued = 0
        self.noop_truncates = 0

    # Each op is issued by creating its task now: tasks start in creation
    # order, so the store sees the calls in the order they were marked.
    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    def payload(self, index: int, size: int) -> bytes:
        self.ops += 1
        head = struct.pack("<QQ", index, self.ops)
        if size > 65536:      # megabytes: a pattern, made in C
            start = (index * 31 + self.ops) & 0xFF
            pattern = bytes(range(start, 256)) + bytes(range(start))
            body = (pattern * (size // 256 + 1))[:size - 16]
        else:
            body = bytes((index * 31 + self.ops + k) & 0xFF for k in range(max(0, size - 16)))
        data = head + body
        return data[:max(16, size - size % 8)] if size >= 16 else head

    def append(self, n: int | None = None, sizes: tuple[int, ...] | None = None,
               ) -> asyncio.Future[Any]:
        n = n or self.rng.randint(1, 4)
        first = self.next
        entries = []
        for i in range(first, first + n):
            size = self.rng.choice(sizes or self.sizes)
            type_ = EntryType.BARRIER if self.rng.random() < 0.1 else EntryType.COMMAND
            entries.append(Entry(self.term, type_, self.payload(i, size)))
        plain = tuple((e.term, int(e.type), bytes(e.payload)) for e in entries)
        for i, p in enumerate(plain, first):
            self.log[i] = p
        self.next += n
        self.rec.mark(("append", first, plain))

        async def run() -> None:
            try:
                await self.store.append(first, entries)
            except RaftError:
                if not self.faults:
                    raise
                self.rec.mark(("append_failed", first))
                self.failed_appends.append(first)
                return
            self.rec.mark(("append_ok", first, n))
            self.acked_last = max(self.acked_last, first + n - 1)
            if first <= self.durable_last + 1:
                self.durable_last = max(self.durable_last, first + n - 1)
        return self._spawn(run())

    async def _guard(self, what: str, coro: Awaitable[Any]) -> bool:
        """Run one non-append operation; with faults, a store error stops the workload."""
        try:
            await coro
        except RaftError as err:
            if not self.faults:
                raise
            self.errors.append(f"{what}: {type(err).__name__}: {err}")
            self.stopped = True
            return False
        return True

    async def after_failures(self) -> None:
        """After a settle: if appends failed, do what the core does after
        PersistFailed: the log ends where the first failed append began;
        truncate there (sometimes; it deletes nothing), then re-issue other
        entries at that index."""
        for _ in range(3):
            if not self.failed_appends:
                return
            first = min(self.failed_appends)
            self.failed_appends.clear()
            if self.store._broken is not None or self.stopped:
                break      # a failed finalize, truncation, ...: nothing more goes
            assert self.store.next_index == first, (self.store.next_index, first)
            for i in range(first, self.next):
                self.log.pop(i, None)
            self.next = first
            self.durable_last = min(self.durable_last, first - 1)
            if self.rng.random() < 0.5:
                self.truncate(first)
                self.noop_truncates += 1
            self.append(n=2, sizes=(8, 64, 200))
            self.reissued += 1
            await self.settle()
        self.stopped = True

    def truncate(self, index: int) -> asyncio.Future[Any]:
        assert 0 < index <= self.next      # at next: deletes nothing (after a failure)
        for i in range(index, self.next):
            self.log.pop(i, None)
        self.next = index
        self.durable_last = min(self.durable_last, index - 1)
        self.rec.mark(("truncate", index))

        async def run() -> None:
            if await self._guard(f"truncate {index}", self.store.truncate(index)):
                self.rec.mark(("truncate_ok", index))
        return self._spawn(run())

    def snapshot(self, index: int, trailing: int, term: int | None = None,
                 ) -> asyncio.Future[Any]:
        """A snapshot at index: taken (trailing > 0, term from the log) or
        installed (trailing 0, the log replaced, term given)."""
        if trailing:
            term = self.log[index][0]
        else:
            assert term is not None
            self.log.clear()
            self.next = index + 1
            self.term = max(self.term, term)
        data = f"snapshot {term}/{index} after op {self.ops}".encode() * 3
        snap = Snapshot(term, index, CONF, 1, data)
        self.snapshot_index = max(self.snapshot_index, index)
        self.rec.mark(("snapshot", term, index, trailing, data))

        async def run() -> None:
            job = (self.store.snapshot_put(trailing, snap) if trailing else
                   self.store.snapshot_install(snap))
            if await self._guard(f"snapshot {index}", job):
                self.rec.mark(("snapshot_ok", term, index))
        return self._spawn(run())

    def new_term(self, vote: bool) -> asyncio.Future[Any]:
        self.meta_term += 1
        t = self.meta_term
        self.rec.mark(("term", t))

        async def run() -> None:
            if not await self._guard(f"term {t}", self.store.set_term(t)):
                return
            self.rec.mark(("term_ok", t))
            if vote:
                v = t % 3 + 1
                self.rec.mark(("vote", t, v))
                if await self._guard(f"vote {t}", self.store.set_vote(v)):
                    self.rec.mark(("vote_ok", t, v))
        return self._spawn(run())

    async def settle(self) -> None:
        tasks, self.tasks = self.tasks, []
        await asyncio.gather(*tasks)


# -------------------------------------------------------------- workloads

async def w_appends(d: Driver) -> None:
    """Bursts of appends in flight together (several batches per write), term
    and vote changes beside them."""
    for _ in range(12):
        for _ in range(d.rng.randint(1, 6)):
            d.append()
        if d.rng.random() < 0.4:
            d.new_term(vote=d.rng.random() < 0.6)
        await d.settle()


async def w_rollover(d: Driver) -> None:
    """Small segments filling up and closing, now and then an entry larger than
    a whole segment."""
    for _ in range(12):
        for _ in range(d.rng.randint(1, 5)):
            d.append(sizes=(8, 600, 1500, 2600, 3200))
        if d.rng.random() < 0.2:
            d.append(n=1, sizes=(9000,))
        await d.settle()


async def w_truncate(d: Driver) -> None:
    """Appends and truncations: inside the open segment, at a segment boundary,
    splitting a closed segment."""
    for _ in range(8):
        for _ in range(d.rng.randint(2, 6)):
            d.append()
        if d.rng.random() < 0.5:
            await d.settle()
        low = max(2, d.snapshot_index + 1, d.next - 30)
        if low < d.next:
            d.truncate(d.rng.randint(low, d.next - 1))
        for _ in range(d.rng.randint(0, 3)):
            d.append()
        await d.settle()


async def w_snapshots(d: Driver) -> None:
    """Snapshots with a small trailing count taken while appends are in flight,
    sometimes at an index not yet durable (a leader's last_applied can run
    ahead of its last_stored: it commits by a quorum of followers)."""
    for round_ in range(10):
        for _ in range(d.rng.randint(2, 6)):
            d.append(sizes=(8, 200, 600, 1500))
        if round_ % 2 == 0 and d.next - 1 > d.snapshot_index:
            ahead = d.rng.random() < 0.6
            index = d.next - 1 if ahead else max(d.acked_last, d.snapshot_index + 1)
            if index > d.snapshot_index and index < d.next:
                d.snapshot(index, trailing=d.rng.choice((1, 2, 4, 8)))
                for _ in range(d.rng.randint(0, 4)):
                    d.append(sizes=(8, 200, 600, 1500))
        await d.settle()


async def w_installs(d: Driver) -> None:
    """Installations: beyond the end of the log, inside it with another term
    at the snapshot index (a conflicting tail), and with the same term."""
    for round_ in range(6):
        for _ in range(d.rng.randint(3, 8)):
            d.append(sizes=(8, 200, 600, 1500))
        await d.settle()
        kind = round_ % 3
        if kind == 0:
            index, term = d.next + d.rng.randint(0, 20), d.term + 1
        else:
            index = d.rng.randint(max(d.snapshot_index + 1, d.next - 15), d.next - 1)
            term = d.term + 1 if kind == 1 else d.log[index][0]
        d.snapshot(index, trailing=0, term=term)
        for _ in range(d.rng.randint(0, 3)):
            d.append(sizes=(8, 200, 600))
        await d.settle()


async def w_race(d: Driver) -> None:
    """A truncation and an installation issued together (a follower told of a
    conflict, then sent a snapshot), appends issued behind both."""
    for round_ in range(6):
        for _ in range(d.rng.randint(3, 8)):
            d.append(sizes=(8, 200, 600, 1500))
        if d.rng.random() < 0.5:
            await d.settle()
        low = max(2, d.snapshot_index + 1, d.next - 20)
        if round_ % 2 == 0 and low < d.next:
            d.truncate(d.rng.randint(low, d.next - 1))
            d.snapshot(d.next + d.rng.randint(-1, 10), trailing=0, term=d.term + 1)
        else:
            d.snapshot(d.next + d.rng.randint(0, 10), trailing=0, term=d.term + 1)
            d.append(n=3, sizes=(8, 200))
            d.truncate(d.next - 2)
        for _ in range(d.rng.randint(1, 3)):
            d.append(sizes=(8, 200, 600))
        await d.settle()


async def w_faults(d: Driver) -> None:
    """Appends in bursts over small segments, terms and votes, truncations and
    snapshots of acknowledged entries, while the disk fails now and then
    (FaultyRecorder: a write that fails after its data landed, or partly
    landed; a failed fsync; no space while preparing a segment; a failed
    finalize).  After failed appends the driver re-issues at the index the
    log then ends at, first truncating there half of the time, as the core
    does after PersistFailed; any other failure ends the workload."""
    for _ in range(14):
        if d.stopped:
            break
        for _ in range(d.rng.randint(1, 5)):
            d.append(sizes=(8, 200, 600, 1500, 2600))
        roll = d.rng.random()
        if roll < 0.2:
            d.new_term(vote=d.rng.random() < 0.6)
        await d.settle()
        await d.after_failures()
        if d.stopped:
            break
        index = min(d.durable_last, d.next - 1)
        if 0.2 <= roll < 0.35 and index > d.snapshot_index:
            d.snapshot(index, trailing=d.rng.choice((1, 2, 4)))
        elif 0.35 <= roll < 0.5:
            low = max(2, d.snapshot_index + 1, d.next - 12)
            if low < d.next:
                d.truncate(d.rng.randint(low, d.next - 1))
        for _ in range(d.rng.randint(0, 2)):
            d.append(sizes=(8, 200, 600))
        await d.settle()
        await d.after_failures()


def big_size() -> int:
    """An entry larger than the torn reach: its batch is written alone, in one
    write of more than layout.torn_reach() bytes."""
    return layout.torn_reach() + 40 * 1024


async def w_big(d: Driver) -> None:
    """Writes past the torn reach: now and then one entry larger than the reach
    of the default write_max_bytes (written alone into a fresh segment, as
    its first write: the batch exceeds the 1 MiB segment), among small
    appends in flight before and after it; the torn-first-write rule and the
    torn-versus-damaged boundary are then decided on generated states."""
    # Every crash state after the large write holds its megabytes: few rounds.
    for round_ in range(3):
        for _ in range(d.rng.randint(1, 2)):
            d.append(sizes=(8, 200, 1500))
        if round_ == 1:
            d.append(n=1, sizes=(big_size(),))
            for _ in range(d.rng.randint(0, 2)):
                d.append(sizes=(8, 200))
        await d.settle()


def big_points(events: list[Event]) -> list[int] | None:
    """Crash points of a ``big`` recording worth their cost: from the large
    append's issue until 16 events after its acknowledgement (its write torn
    in every way sampled, its segment closed), and the end.  Elsewhere every
    state holds the same megabytes and tests what the small workloads do."""
    size = big_size()
    start = next((k for k, ev in enumerate(events) if ev.kind == "mark"
                  and ev.args[0][0] == "append" and len(ev.args[0][2][0][2]) >= size - 8),
                 None)
    if start is None:
        return None
    first = events[start].args[0][1]
    ack = next((k for k, ev in enumerate(events) if k > start and ev.kind == "mark"
                and ev.args[0][0] == "append_ok" and ev.args[0][1] == first), len(events))
    return list(range(start, min(len(events), ack + 16) + 1)) + [len(events)]


WORKLOADS: dict[str, tuple[Callable[[Driver], Awaitable[None]], dict[str, Any]]] = {
    "appends": (w_appends, {"segment_size_bytes": 16384}),
    "rollover": (w_rollover, {"segment_size_bytes": 8192}),
    "truncate": (w_truncate, {"segment_size_bytes": 8192}),
    "snapshots": (w_snapshots, {"segment_size_bytes": 8192}),
    "installs": (w_installs, {"segment_size_bytes": 8192}),
    "race": (w_race, {"segment_size_bytes": 8192}),
    "faults": (w_faults, {"segment_size_bytes": 8192}),
    "failed-write": (w_faults, {"segment_size_bytes": 8192}),
    "big": (w_big, {"segment_size_bytes": 1 << 20}),
}
POINTS: dict[str, Callable[[list[Event]], list[int] | None]] = {"big": big_points}
NESTED_EVERY = {"big": 32}        # nested checks of loads holding megabytes: fewer


# ------------------------------------------------------------ a failing disk

@dataclass(frozen=True)
class Fault:
    """The nth call (1-based) of a kind fails:

    - ``write_eio``: a durable segment write whose data all landed, then EIO
      (fdatasync's, or an AIO completion's);
    - ``write_short``: a durable segment write of which only its first k
      blocks landed (k random, 0 included), reported short (NoSpaceError);
    - ``fsync``: an fsync or fdatasync (of any file) fails; nothing it would
      have covered is made durable by it;
    - ``prepare``: creating an open segment runs out of space (ENOSPC from
      fallocate or from the zero-filling pwrite);
    - ``finalize``: closing an open segment fails (EIO from the ftruncate or
      rename of open-N; also the cut-back after a failed write);
    - ``cutback``: cutting back the segment of a failed write fails (EIO from
      its ftruncate or unlink); nth is unused."""

    kind: str
    nth: int


FAULT_KINDS = ("write_eio", "write_short", "fsync", "prepare", "finalize", "cutback")
_FAULT_RANGE = {"write": (2, 30), "fsync": (2, 40), "prepare": (1, 6), "finalize": (1, 10),
                "cutback": (1, 1)}
SLOW_SYNC_S = 0.02


def fault_plan(rng: random.Random) -> list[Fault]:
    """One or two faults; a failed segment write in most plans."""
    kinds = set(rng.sample(FAULT_KINDS, rng.randint(1, 2)))
    if rng.random() < 0.85 and not kinds & {"write_eio", "write_short"}:
        kinds.add(rng.choice(("write_eio", "write_short")))
    if {"write_eio", "write_short"} <= kinds:
        kinds.discard(rng.choice(("write_eio", "write_short")))
    return [Fault(k, rng.randint(*_FAULT_RANGE[k.split("_")[0]])) for k in sorted(kinds)]


def failed_write_plan(rng: random.Random) -> list[Fault]:
    """One segment write whose data all landed fails, and nothing else: no
    other fault ends the workload before it, and what landed is there to be
    misplaced if the store writes on before cutting it back."""
    return [Fault("write_eio", rng.randint(*_FAULT_RANGE["write"]))]


# The workloads run on a failing disk (FaultyRecorder), and how each draws its faults.
FAULT_PLANS: dict[str, Callable[[random.Random], list[Fault]]] = {
    "faults": fault_plan, "failed-write": failed_write_plan}


class FaultyRecorder(Recorder):
    """A Recorder whose disk fails the calls of a plan (Fault), recording what
    a failed call did put on disk (a failed write's landed blocks: pending,
    never durable) and nothing else of it.  After a failed segment write
    the next syncs are slow (SLOW_SYNC_S each): a slow disk, which is what
    lets a write into a later segment race the failed segment's cut-back."""

    def __init__(self, directory: str, plan: list[Fault], rng: random.Random) -> None:
        super().__init__(directory)
        self.plan = {f.kind: f.nth for f in plan}
        self.rng = rng
        self.counts: dict[str, int] = {}
        self.injected: list[str] = []
        self.slow = 0
        self._prepared: set[int | None] = set()
        self.failed_segment = ""        # the open segment of the last failed write

    def _due(self, kind: str, *kinds: str) -> str | None:
        """Count one call of kind; the fault (one of kinds) due at this call, if any."""
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            for k in kinds:
                if self.plan.get(k) == self.counts[kind]:
                    return k
        return None

    def _file(self, fd: int) -> str:
        ino = self._names.by_fd.get(fd)
        return next((n for n, i in self._names.by_name.items() if i == ino), "")

    def _pause(self) -> None:
        with self._lock:
            slow, self.slow = self.slow, max(0, self.slow - 1)
        if slow:
            time.sleep(SLOW_SYNC_S)

    def write_started(self, fd: int, buf: Any, offset: int) -> int:
        fault = self._due("write", "write_eio", "write_short")
        if fault is None:
            return super().write_started(fd, buf, offset)
        view = memoryview(buf)
        blocks = -(-len(view) // powerloss.BLOCK)
        if fault == "write_eio":
            k = blocks
        else:   # usually some of it (a short write), sometimes none
            k = self.rng.randrange(1, blocks) if blocks > 1 and self.rng.random() < 0.8 else 0
        landed = view[:min(len(view), k * powerloss.BLOCK)]
        with self._lock:
            if landed:
                os.pwrite(fd, landed, offset)
                ino = self._names.by_fd.get(fd)
                if ino is not None:
                    self._log("write", ino, offset, bytes(landed), self._wid())
            self.slow = 4
            self.failed_segment = self._file(fd)
            self.injected.append(f"{fault} (write {self.counts['write']}: {k} of {blocks} "
                                 f"blocks of {self._file(fd)} landed)")
        if fault == "write_eio":
            raise IOError_("write failed: Input/output error (injected)")
        raise NoSpaceError(f"short write: {len(landed)} bytes instead of {len(view)} "
                           f"(injected)")

    def _sync(self, fd: int, fn: Any) -> None:
        if self._due("fsync", "fsync"):
            with self._lock:
                self.injected.append(f"fsync (sync {self.counts['fsync']} of "
                                     f"{self._file(fd)})")
            raise OSError(errno.EIO, "Input/output error (injected fsync)")
        self._pause()
        super()._sync(fd, fn)

    def fsync_dir(self, path: str) -> None:
        self._pause()
        super().fsync_dir(path)

    def _prepare_fault(self, fd: int) -> None:
        """Count each open segment prepared once (fallocate and zero-filling
        pwrites are calls of one preparation)."""
        with self._lock:
            name, ino = self._file(fd), self._names.by_fd.get(fd)
            if not name.startswith("open-") or ino in self._prepared:
                return
            self._prepared.add(ino)
        if self._due("prepare", "prepare"):
            with self._lock:
                self.injected.append(f"prepare ({name})")
            raise OSError(errno.ENOSPC, "No space left on device (injected)")

    def posix_fallocate(self, fd: int, offset: int, length: int) -> None:
        self._prepare_fault(fd)
        super().posix_fallocate(fd, offset, length)

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        self._prepare_fault(fd)
        return super().pwrite(fd, data, offset)

    def _finalize_fault(self, name: str, cutback: bool = True) -> None:
        if not name.startswith("open-"):
            return
        if cutback and "cutback" in self.plan and name == self.failed_segment:
            with self._lock:
                del self.plan["cutback"]
                self.injected.append(f"cutback ({name})")
            raise OSError(errno.EIO, "Input/output error (injected cut-back)")
        if self._due("finalize", "finalize"):
            with self._lock:
                self.injected.append(f"finalize ({name})")
            raise OSError(errno.EIO, "Input/output error (injected finalize)")

    def unlink(self, path: str) -> None:  # type: ignore[override]
        name = os.path.basename(path)
        if "cutback" in self.plan and name == self.failed_segment:
            self._finalize_fault(name)
        super().unlink(path)

    def ftruncate(self, fd: int, length: int) -> None:
        self._finalize_fault(self._file(fd))
        self._pause()
        super().ftruncate(fd, length)

    def rename(self, src: str, dst: str) -> None:  # type: ignore[override]
        self._finalize_fault(os.path.basename(src), cutback=False)
        super().rename(src, dst)


# -------------------------------------------------------------- recording

@dataclass
class Recording:
    name: str
    seed: int
    events: list[Event]
    baseline: dict[str, bytes]
    baseline_inodes: dict[str, int]
    store_kw: dict[str, Any]
    seconds: float
    errors: list[str]             # what the workload met (a store error, a hang)
    faults: list[str] = field(default_factory=list)   # injected, and what they led to


def scratch_dir() -> pathlib.Path:
    """A fresh directory on the real disk (tests/io/.aio-scratch is not tmpfs)."""
    SCRATCH.mkdir(exist_ok=True)
    return pathlib.Path(tempfile.mkdtemp(dir=SCRATCH, prefix="powerloss-"))


def state_dir() -> pathlib.Path:
    """Where crash states are loaded: tmpfs when there is one (see the docstring)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else str(SCRATCH)
    SCRATCH.mkdir(exist_ok=True)
    return pathlib.Path(tempfile.mkdtemp(dir=base, prefix="raftpy-powerloss-"))


@contextlib.contextmanager
def probe_once() -> Iterator[None]:
    """aio.probe, run once per filesystem while the context lasts (its AIO
    probe's io_destroy alone takes ~30 ms)."""
    real = aio.probe
    cache: dict[int, aio.FsCaps] = {}

    def probe(path: str) -> aio.FsCaps:
        dev = os.stat(path).st_dev
        if dev not in cache:
            cache[dev] = real(path)
        return cache[dev]

    aio.probe = probe     # type: ignore[assignment]
    try:
        yield
    finally:
        aio.probe = real  # type: ignore[assignment]


def record(name: str, seed: int, use_aio: bool | None = None) -> Recording:
    workload, store_kw = WORKLOADS[name]
    rng = random.Random(seed)
    path = scratch_dir()
    t0 = time.monotonic()
    try:
        plan = FAULT_PLANS.get(name)
        faulty = plan is not None
        rec = (FaultyRecorder(str(path), plan(rng), rng) if plan is not None
               else Recorder(str(path)))
        kw = dict(store_kw, prepared_segments=rng.choice((1, 2)), use_aio=use_aio)

        errors: list[str] = []
        faults: list[str] = []

        async def go() -> None:
            store = DiskStore(str(path), fs=rec, **kw)
            await store.open()
            await store.load()
            d = Driver(store, rec, rng, faults=faulty)
            # A store error, or a store that stops answering, ends the
            # workload; the test reports it, and the states recorded so far
            # are still checked.
            for what, job in (("workload", lambda: workload(d)), ("settle", d.settle),
                              ("close", store.close)):
                try:
                    await asyncio.wait_for(job(), WORKLOAD_TIMEOUT_S)
                except Exception as err:     # noqa: BLE001 - reported, not swallowed
                    errors.append(f"{what}: {type(err).__name__}: {err}\n"
                                  + "".join(traceback.format_exception(err)[-4:]))
                    if what == "workload":
                        for task in d.tasks:
                            task.cancel()
            if isinstance(rec, FaultyRecorder):
                faults.extend(f"injected {f}" for f in rec.injected)
                faults.extend(d.errors)
                faults.append(f"{d.reissued} re-issues after failed appends "
                              f"({d.noop_truncates} after truncate(next_index))")

        # A failing store logs its errors; here they are expected.
        disk_log = logging.getLogger("raftpy.io.disk")
        level = disk_log.level
        if faulty:
            disk_log.setLevel(logging.CRITICAL)
        try:
            asyncio.run(go())
        finally:
            disk_log.setLevel(level)
        return Recording(name, seed, list(rec.events), rec.baseline, rec.baseline_inodes,
                         kw, time.monotonic() - t0, errors, faults)
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- checking

@dataclass
class Repair:
    """What one load did to a crash state: its recorded calls (up to the
    first segment the store prepares after loading)."""

    events: list[Event]
    baseline: dict[str, bytes]
    baseline_inodes: dict[str, int]


@dataclass
class Outcome:
    """A load of one crash state (auto-recovery off, then on)."""

    results: list[LoadResult | None]
    errors: list[str]
    repair: Repair | None = None      # the auto-recovery load's calls, when recorded


@dataclass
class Report:
    states: int = 0               # distinct crash states loaded
    checks: int = 0               # (state, crash point) pairs checked
    nested: int = 0               # crash states of loads (a load's own repairs cut short)
    nested_loads: int = 0         # loads whose crash states were checked
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _write_state(path: pathlib.Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    for name, data in files.items():
        (path / name).write_bytes(data)


async def _load(path: pathlib.Path, auto: bool, store_kw: dict[str, Any],
                rec: Recorder | None = None) -> tuple[LoadResult, int]:
    """Load; also the recording's position when load returned (0 unrecorded)."""
    kw: dict[str, Any] = {} if rec is None else {"fs": rec}
    store = DiskStore(str(path), auto_recovery=auto, prepared_segments=1,
                      zero_fill_segments=False,
                      segment_size_bytes=store_kw["segment_size_bytes"], **kw)
    await store.open()
    try:
        r = await store.load()
        return r, (rec.position() if rec is not None else 0)
    finally:
        await store.close()


def summary(r: LoadResult) -> tuple[Any, ...]:
    """A load's result as plain values (to compare two loads)."""
    snap = r.snapshot
    return (r.term, r.voted_for, r.start_index,
            None if snap is None else (snap.term, snap.index, snap.configuration_index,
                                       bytes(snap.data)),
            tuple((e.term, int(e.type), bytes(e.payload)) for e in r.entries))


def _load_repairs(rec: Recorder, inodes: dict[str, int], end: int) -> Repair | None:
    """The calls a load made to repair the state, or None if it made none.
    The pool segment the store prepares once loaded is not the load's."""
    events = []
    for ev in rec.events[:end]:
        if ev.kind == "create" and ev.args[0].startswith("open-"):
            break
        events.append(ev)
    if not any(ev.kind in ("unlink", "rename", "size", "write", "create") for ev in events):
        return None
    return Repair(events, rec.baseline, inodes)


async def _load_state(work: pathlib.Path, files: dict[str, bytes],
                      store_kw: dict[str, Any], record_repairs: bool = False) -> Outcome:
    """Load a state with auto-recovery off, then on (recording that load's calls
    if asked), then once more: a second load must return what the first did."""
    out = Outcome([], [])
    for auto in (False, True):
        _write_state(work, files)
        rec = Recorder(str(work)) if auto and record_repairs else None
        inodes = rec.baseline_inodes if rec is not None else {}
        try:
            r, end = await _load(work, auto, store_kw, rec)
        except RaftError as err:
            out.results.append(None)
            out.errors.append(f"load (auto-recovery {'on' if auto else 'off'}) failed: "
                              f"{type(err).__name__}: {err}")
            continue
        moved = layout.list_dir(str(work)).corrupt_files
        if moved:
            out.errors.append(f"auto-recovery moved aside {list(moved)}: a crash is not "
                              f"corruption")
        out.results.append(r)
        if rec is not None:
            out.repair = _load_repairs(rec, inodes, end)
        if auto:
            try:
                again = summary((await _load(work, auto, store_kw))[0])
            except RaftError as err:
                out.errors.append(f"a second load failed: {type(err).__name__}: {err}")
                continue
            if again != summary(r):
                out.errors.append(f"a second load returned another result: "
                                  f"{_differ(summary(r), again)}")
    return out


def _differ(a: tuple[Any, ...], b: tuple[Any, ...]) -> str:
    fields = ("term", "vote", "start index", "snapshot", "entries")
    return "; ".join(f"{f} {len(x) if f == 'entries' else x} then "
                     f"{len(y) if f == 'entries' else y}"
                     for f, x, y in zip(fields, a, b, strict=True) if x != y)


def _describe(files: dict[str, bytes]) -> str:
    return ", ".join(f"{n}({len(b)})" for n, b in sorted(files.items()))


def verify(rec: Recording, rng: random.Random, *, max_failures: int = 3,
           samples: int = 4, exhaustive_bits: int = 6, nested_every: int | None = None,
           ) -> Report:
    """Load and check every crash state of rec; stop after max_failures failures.

    Each state is loaded with auto-recovery off and on, and then once more
    (the second load must return what the first did); the auto-recovery
    load is recorded, and of every nested_every-th state whose load repaired
    something (closed an open segment, cut a torn tail, deleted ...) every
    crash state of that load is checked too, against the same expectation:
    a power loss during recovery from a power loss (nested once)."""
    t0 = time.monotonic()
    if nested_every is None:
        nested_every = NESTED_EVERY.get(rec.name, 8)
    report = Report()
    work = state_dir()
    loop = asyncio.new_event_loop()
    # Loading crash states logs a warning for every torn tail cut off: expected
    # here by the thousand, and checked by what the load returns instead.
    disk_log = logging.getLogger("raftpy.io.disk")
    level = disk_log.level
    disk_log.setLevel(logging.ERROR)
    try:
        with probe_once():
            _verify(rec, rng, work, report, loop, max_failures, samples, exhaustive_bits,
                    nested_every)
    finally:
        disk_log.setLevel(level)
        loop.close()
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.monotonic() - t0
    return report


def _verify(rec: Recording, rng: random.Random, work: pathlib.Path, report: Report,
            loop: asyncio.AbstractEventLoop, max_failures: int, samples: int,
            exhaustive_bits: int, nested_every: int) -> None:
    model = powerloss.Model()
    marks_done = 0
    outcomes: dict[bytes, Outcome] = {}
    descriptions: dict[bytes, str] = {}
    checked: set[tuple[bytes, int]] = set()
    repaired = 0

    def problems_of(out: Outcome, exp: powerloss.Expectation) -> list[str]:
        problems = list(out.errors)
        for r, auto in zip(out.results, ("off", "on"), strict=True):
            if r is not None:
                problems += [f"(auto-recovery {auto}) {p}"
                             for p in powerloss.check(model, exp, r)]
        return problems

    points = POINTS[rec.name](rec.events) if rec.name in POINTS else None
    for point, digest, state in powerloss.crash_states(
            rec.events, rec.baseline, rec.baseline_inodes, rng,
            samples=samples, exhaustive_bits=exhaustive_bits, points=points):
        while marks_done < point:             # the model sees what happened before point
            ev = rec.events[marks_done]
            if ev.kind == "mark":
                model.apply(ev.args[0])
            marks_done += 1
        exp = model.expectation()
        nest = False
        if state is not None:
            report.states += 1
            out = outcomes[digest] = loop.run_until_complete(
                _load_state(work / "s", state.files, rec.store_kw, record_repairs=True))
            descriptions[digest] = f"{state.how}; files: {_describe(state.files)}"
            if out.repair is not None:
                repaired += 1
                nest = nested_every > 0 and repaired % nested_every == 1 % nested_every
        if (digest, exp.version) in checked and not nest:
            continue
        checked.add((digest, exp.version))
        report.checks += 1
        out = outcomes[digest]
        problems = problems_of(out, exp)
        if not problems and nest:
            assert out.repair is not None
            problems = _verify_repair(out.repair, rng, work, report, loop, rec.store_kw,
                                      outcomes, exp, problems_of, exhaustive_bits)
        if problems:
            report.failures.append(
                f"{rec.name} seed {rec.seed}, crash after event {point} of "
                f"{len(rec.events)} ({_event_context(rec.events, point)}):\n"
                f"  state: {descriptions[digest]}\n  " + "\n  ".join(problems))
            if len(report.failures) >= max_failures:
                return


def _verify_repair(repair: Repair, rng: random.Random, work: pathlib.Path, report: Report,
                   loop: asyncio.AbstractEventLoop, store_kw: dict[str, Any],
                   outcomes: dict[bytes, Outcome], exp: powerloss.Expectation,
                   problems_of: Callable[[Outcome, powerloss.Expectation], list[str]],
                   exhaustive_bits: int) -> list[str]:
    """Check every crash state of one recorded load against exp (what held at the
    outer crash point): the load's repairs must be crash-safe themselves."""
    report.nested_loads += 1
    for point, digest, state in powerloss.crash_states(
            repair.events, repair.baseline, repair.baseline_inodes, rng, samples=2,
            exhaustive_bits=exhaustive_bits):
        if state is not None:
            report.nested += 1
            if digest not in outcomes:
                outcomes[digest] = loop.run_until_complete(
                    _load_state(work / "n", state.files, store_kw))
        problems = problems_of(outcomes[digest], exp)
        if problems:
            how = "" if state is None else f" ({state.how}; files: {_describe(state.files)})"
            return [f"a crash while loading this state, after event {point} of the load's "
                    f"{len(repair.events)} ({_event_context(repair.events, point)}){how}:"
                    ] + problems
    return []


def _event_context(events: list[Event], point: int) -> str:
    """The last few events before point, briefly."""
    out = []
    for ev in events[max(0, point - 4):point]:
        if ev.kind == "mark":
            note = ev.args[0]
            out.append(f"mark {note[0]} {note[1] if len(note) > 1 else ''}")
        elif ev.kind == "write":
            out.append(f"write ino{ev.args[0]}@{ev.args[1]}+{len(ev.args[2])}")
        else:
            out.append(f"{ev.kind} {' '.join(map(str, ev.args))}")
    return "; ".join(out)


def main() -> None:
    name, seed = sys.argv[1], int(sys.argv[2])
    rec = record(name, seed)
    print(f"{name} seed {seed}: {len(rec.events)} events in {rec.seconds:.2f} s")
    for err in rec.errors + rec.faults:
        print(err)
    report = verify(rec, random.Random(seed), max_failures=5)
    print(f"{report.states} crash states, {report.checks} checks, {report.nested} crash "
          f"states of {report.nested_loads} loads in {report.seconds:.1f} s")
    for f in report.failures:
        print(f)


if __name__ == "__main__":
    main()
