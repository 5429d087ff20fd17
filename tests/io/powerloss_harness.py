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
from raftpy.errors import RaftError
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

    def __init__(self, store: DiskStore, rec: Recorder, rng: random.Random) -> None:
        self.store = store
        self.rec = rec
        self.rng = rng
        self.next = 1                      # index the next append starts at
        self.term = 1                      # term of new entries
        self.meta_term = 0
        self.log: dict[int, tuple[int, int, bytes]] = {}    # issued log
        self.acked_last = 0
        self.snapshot_index = 0
        self.ops = 0
        self.tasks: list[asyncio.Future[Any]] = []
        self.sizes = (0, 8, 24, 64, 200, 600, 1500, 2600)

    # Each op is issued by creating its task now: tasks start in creation
    # order, so the store sees the calls in the order they were marked.
    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    def payload(self, index: int, size: int) -> bytes:
        self.ops += 1
        head = struct.pack("<QQ", index, self.ops)
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
            await self.store.append(first, entries)
            self.rec.mark(("append_ok", first, n))
            self.acked_last = max(self.acked_last, first + n - 1)
        return self._spawn(run())

    def truncate(self, index: int) -> asyncio.Future[Any]:
        assert 0 < index < self.next
        for i in range(index, self.next):
            del self.log[i]
        self.next = index
        self.rec.mark(("truncate", index))

        async def run() -> None:
            await self.store.truncate(index)
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
            if trailing:
                await self.store.snapshot_put(trailing, snap)
            else:
                await self.store.snapshot_install(snap)
            self.rec.mark(("snapshot_ok", term, index))
        return self._spawn(run())

    def new_term(self, vote: bool) -> asyncio.Future[Any]:
        self.meta_term += 1
        t = self.meta_term
        self.rec.mark(("term", t))

        async def run() -> None:
            await self.store.set_term(t)
            self.rec.mark(("term_ok", t))
            if vote:
                v = t % 3 + 1
                self.rec.mark(("vote", t, v))
                await self.store.set_vote(v)
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


WORKLOADS: dict[str, tuple[Callable[[Driver], Awaitable[None]], dict[str, Any]]] = {
    "appends": (w_appends, {"segment_size_bytes": 16384}),
    "rollover": (w_rollover, {"segment_size_bytes": 8192}),
    "truncate": (w_truncate, {"segment_size_bytes": 8192}),
    "snapshots": (w_snapshots, {"segment_size_bytes": 8192}),
    "installs": (w_installs, {"segment_size_bytes": 8192}),
    "race": (w_race, {"segment_size_bytes": 8192}),
}


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
        rec = Recorder(str(path))
        kw = dict(store_kw, prepared_segments=rng.choice((1, 2)), use_aio=use_aio)

        errors: list[str] = []

        async def go() -> None:
            store = DiskStore(str(path), fs=rec, **kw)
            await store.open()
            await store.load()
            d = Driver(store, rec, rng)
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

        asyncio.run(go())
        return Recording(name, seed, list(rec.events), rec.baseline, rec.baseline_inodes,
                         kw, time.monotonic() - t0, errors)
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- checking

@dataclass
class Outcome:
    """A load of one crash state (auto-recovery off, then on)."""

    results: list[LoadResult | None]
    errors: list[str]


@dataclass
class Report:
    states: int = 0               # distinct crash states loaded
    checks: int = 0               # (state, crash point) pairs checked
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _write_state(path: pathlib.Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    for name, data in files.items():
        (path / name).write_bytes(data)


async def _load(path: pathlib.Path, auto: bool, store_kw: dict[str, Any]) -> LoadResult:
    store = DiskStore(str(path), auto_recovery=auto, prepared_segments=1,
                      zero_fill_segments=False,
                      segment_size_bytes=store_kw["segment_size_bytes"])
    await store.open()
    try:
        return await store.load()
    finally:
        await store.close()


async def _load_state(work: pathlib.Path, files: dict[str, bytes],
                      store_kw: dict[str, Any]) -> Outcome:
    out = Outcome([], [])
    for auto in (False, True):
        _write_state(work, files)
        try:
            r = await _load(work, auto, store_kw)
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
    return out


def _describe(files: dict[str, bytes]) -> str:
    return ", ".join(f"{n}({len(b)})" for n, b in sorted(files.items()))


def verify(rec: Recording, rng: random.Random, *, max_failures: int = 3,
           samples: int = 4, exhaustive_bits: int = 6) -> Report:
    """Load and check every crash state of rec; stop after max_failures failures."""
    t0 = time.monotonic()
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
            _verify(rec, rng, work, report, loop, max_failures, samples, exhaustive_bits)
    finally:
        disk_log.setLevel(level)
        loop.close()
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.monotonic() - t0
    return report


def _verify(rec: Recording, rng: random.Random, work: pathlib.Path, report: Report,
            loop: asyncio.AbstractEventLoop, max_failures: int, samples: int,
            exhaustive_bits: int) -> None:
    model = powerloss.Model()
    marks_done = 0
    outcomes: dict[bytes, Outcome] = {}
    descriptions: dict[bytes, str] = {}
    checked: set[tuple[bytes, int]] = set()
    for point, digest, state in powerloss.crash_states(
            rec.events, rec.baseline, rec.baseline_inodes, rng,
            samples=samples, exhaustive_bits=exhaustive_bits):
        while marks_done < point:             # the model sees what happened before point
            ev = rec.events[marks_done]
            if ev.kind == "mark":
                model.apply(ev.args[0])
            marks_done += 1
        exp = model.expectation()
        if state is not None:
            report.states += 1
            outcomes[digest] = loop.run_until_complete(
                _load_state(work / "s", state.files, rec.store_kw))
            descriptions[digest] = f"{state.how}; files: {_describe(state.files)}"
        if (digest, exp.version) in checked:
            continue
        checked.add((digest, exp.version))
        report.checks += 1
        out = outcomes[digest]
        problems = list(out.errors)
        for r, auto in zip(out.results, ("off", "on"), strict=True):
            if r is not None:
                problems += [f"(auto-recovery {auto}) {p}"
                             for p in powerloss.check(model, exp, r)]
        if problems:
            report.failures.append(
                f"{rec.name} seed {rec.seed}, crash after event {point} of "
                f"{len(rec.events)} ({_event_context(rec.events, point)}):\n"
                f"  state: {descriptions[digest]}\n  " + "\n  ".join(problems))
            if len(report.failures) >= max_failures:
                return


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
    for err in rec.errors:
        print(err)
    report = verify(rec, random.Random(seed), max_failures=5)
    print(f"{report.states} crash states, {report.checks} checks in {report.seconds:.1f} s")
    for f in report.failures:
        print(f)


if __name__ == "__main__":
    main()
