"""Crash safety of DiskStore with real processes and SIGKILL (issue 5, point 3).

A child process (crash_child.py) writes to a data directory and prints a line
after every durable operation; the parent kills it with SIGKILL at a random
moment, many times over on the same directory (each child resumes from what
load returns, so the log keeps growing across crashes), and after every kill
loads a copy of the directory with auto-recovery OFF and checks:

- load succeeds: nothing a crash leaves behind is reported as corrupt;
- every acknowledged entry is present, with its content, at its index;
  indexes are contiguous; every entry present (acknowledged or not) is one
  the child wrote at that index, never garbage;
- acknowledged term and vote are durable, and never more than the one
  change in flight is visible;
- the next child's load returns what the parent's load of the copy did.

The parent loads a COPY so that the child, not the parent, performs the
recovery (renaming and truncating open segments): crashes during that
recovery are part of what is tested.

Also here, deterministic crash points: a process dying at each file deletion
of truncate and of a snapshot installation, and set_term/set_vote in flight
together (each of these found a bug, fixed in 2d99972).

Randomized: the seed is printed; replay with RAFTPY_SEED=<seed>.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib.util
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import pytest

import raftpy
from raftpy import _bindings
from raftpy.io import layout
from raftpy.io.aio import TMPFS_MAGIC
from raftpy.io.disk import DiskStore, LoadResult

HERE = pathlib.Path(__file__).resolve().parent
CHILD = HERE / "crash_child.py"
ROOT = pathlib.Path(raftpy.__file__).resolve().parent.parent
SEGMENT_KIB = 64

_spec = importlib.util.spec_from_file_location("raftpy_crash_child", CHILD)
assert _spec is not None and _spec.loader is not None
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)
expected_entry = functools.lru_cache(maxsize=None)(child.entry_for)


@pytest.fixture
def disk_dir(tmp_path):
    """A directory on a real disk (O_DIRECT and AIO), not on tmpfs."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        on_tmpfs = _bindings.fs_type(fd) == TMPFS_MAGIC
    finally:
        os.close(fd)
    if not on_tmpfs:
        yield tmp_path
        return
    base = HERE / ".aio-scratch"
    base.mkdir(exist_ok=True)
    path = pathlib.Path(tempfile.mkdtemp(dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- the child

def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("RAFTPY_TRACE", None)
    return env


def run_and_kill(data: pathlib.Path, seed: int, opts: list[str], rng: random.Random,
                 logs: pathlib.Path) -> list[str]:
    """Start a child on data, SIGKILL it at a random moment, return what it printed."""
    stderr_path = logs / f"child-{seed}.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, str(CHILD), str(data), str(seed), *opts],
                                stdout=subprocess.PIPE, stderr=stderr, env=child_env())
    lines: list[str] = []
    first_ack = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode().rstrip("\n")
            lines.append(line)
            if line.startswith("ack "):
                first_ack.set()
        first_ack.set()          # EOF: the child died (on its own or by our kill)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if rng.random() < 0.15:
            # Now and then kill it early: while it loads (renaming and
            # truncating what the last crash left) or prepares segments.
            time.sleep(rng.uniform(0.0, 0.4))
        else:
            assert first_ack.wait(30), "the child acknowledged nothing in 30 s"
            time.sleep(rng.uniform(0.0, 0.25))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)    # only the child we started
        proc.wait()
        reader.join(10)
        assert proc.stdout is not None
        proc.stdout.close()
    err = stderr_path.read_text(errors="replace")
    assert proc.returncode == -signal.SIGKILL, (
        f"child (seed {seed}) exited with {proc.returncode}, not by our SIGKILL:\n{err}")
    return lines


# -------------------------------------------------------------- the model

@dataclass
class Model:
    """What the directory must hold, from the last check plus the child's lines."""

    entries: dict[int, int] = field(default_factory=dict)   # index -> generation
    start_index: int = 1
    term: int = 0                 # highest term known durable
    voted: dict[int, int] = field(default_factory=dict)     # term -> vote known durable
    snapshot_index: int = 0       # highest snapshot known durable
    snapshots: set[int] = field(default_factory=set)        # every index ever snapshotted
    max_gen: int = 0
    loaded: tuple[int, int, int, int] | None = None         # what the child's load must say
    kills: int = 0
    acked: int = 0
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("written open segments", "truncations", "snapshots", "killed mid-truncate",
         "killed before first ack"), 0))

    def apply(self, lines: list[str]) -> int | None:
        """Replay the child's lines; return a truncation point still in flight, if any."""
        pending_truncate = None
        for line in lines:
            word, *args = line.split()
            nums = [int(a) for a in args]
            if word == "loaded":
                assert self.loaded is None or tuple(nums) == self.loaded, (
                    f"the child loaded {nums}, the parent's load of the same "
                    f"directory gave {self.loaded}")
            elif word == "ack":
                last, n, gen = nums
                for i in range(last - n + 1, last + 1):
                    self.entries[i] = gen
                self.acked += n
            elif word == "term":
                self.term = max(self.term, nums[0])
            elif word == "vote":
                self.voted[nums[0]] = nums[1]
            elif word == "truncating":
                pending_truncate = nums[0]
                self.max_gen = max(self.max_gen, nums[1])
            elif word == "truncated":
                self.stats["truncations"] += 1
                for i in [i for i in self.entries if i >= nums[0]]:
                    del self.entries[i]
                pending_truncate = None
            elif word == "snapshotting":
                self.snapshots.add(nums[0])
            elif word == "snapshot":
                self.stats["snapshots"] += 1
                self.snapshot_index = max(self.snapshot_index, nums[0])
            else:
                raise AssertionError(f"unexpected line from the child: {line!r}")
        if pending_truncate is not None:
            self.stats["killed mid-truncate"] += 1
        if not any(line.startswith("ack ") for line in lines):
            self.stats["killed before first ack"] += 1
        return pending_truncate

    def check(self, r: LoadResult, pending_truncate: int | None) -> None:
        last = r.start_index + len(r.entries) - 1
        snap = r.snapshot
        # Snapshot: at least the last acknowledged one, and one the child took.
        if self.snapshot_index:
            assert snap is not None and snap.index >= self.snapshot_index, (
                f"snapshot {self.snapshot_index} was acknowledged, load found "
                f"{snap and snap.index}")
        if snap is not None:
            assert snap.index in self.snapshots, f"unknown snapshot index {snap.index}"
            assert snap.data == child.snapshot_data(snap.index)
            assert snap.configuration == child.CONF and snap.configuration_index == 1
            assert r.start_index <= snap.index + 1 and last >= snap.index
        else:
            assert r.start_index == 1, r.start_index
        # Every entry present is one the child wrote at that index.
        for k, e in enumerate(r.entries):
            i = r.start_index + k
            gen = e.term - 1 - i // 500
            assert 0 <= gen <= self.max_gen, f"entry {i}: impossible term {e.term}"
            want = expected_entry(i, gen)
            assert (e.term, e.type, bytes(e.payload)) == (want.term, want.type, want.payload), (
                f"entry {i} has wrong content")
        # Every acknowledged entry is present, unchanged (unless compacted
        # under a snapshot, or cut by a truncation that was in flight).
        for i, gen in self.entries.items():
            if pending_truncate is not None and i >= pending_truncate and i > last:
                continue
            if i < r.start_index:
                assert snap is not None and i <= snap.index, (
                    f"acknowledged entry {i} is missing (log starts at {r.start_index})")
                continue
            assert i <= last, (f"acknowledged entry {i} is missing: the log ends at {last}")
            got = r.entries[i - r.start_index].term - 1 - i // 500
            assert got == gen, f"entry {i}: generation {got}, acknowledged {gen}"
        # Term and vote: what was acknowledged, plus at most the change in flight.
        assert self.term <= r.term <= self.term + 1, (
            f"term {r.term} on disk, {self.term} acknowledged")
        if r.voted_for:
            assert r.voted_for == child.vote_for(r.term), (r.term, r.voted_for)
        if r.term in self.voted:
            assert r.voted_for == self.voted[r.term], (
                f"vote {self.voted[r.term]} in term {r.term} acknowledged, "
                f"load found {r.voted_for}")

    def reset_to(self, r: LoadResult) -> None:
        """The loaded state is what the next child starts from."""
        self.entries = {r.start_index + k: e.term - 1 - (r.start_index + k) // 500
                        for k, e in enumerate(r.entries)}
        self.start_index = r.start_index
        self.term = r.term
        self.voted = {r.term: r.voted_for} if r.voted_for else {}
        self.snapshot_index = r.snapshot.index if r.snapshot is not None else 0
        self.loaded = (r.start_index, len(r.entries), r.term, r.voted_for)


def load_copy(data: pathlib.Path, scratch: pathlib.Path) -> LoadResult:
    """Load a copy of data with auto-recovery off; check nothing was quarantined."""
    copy = scratch / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data, copy)
    result = asyncio.run(load_dir(copy))
    listing = layout.list_dir(str(copy))
    assert not listing.corrupt_files and not listing.tmp_files, listing
    shutil.rmtree(copy)
    return result


async def load_dir(path: pathlib.Path) -> LoadResult:
    store = DiskStore(str(path), segment_size_bytes=SEGMENT_KIB * 1024, auto_recovery=False,
                      prepared_segments=1)
    await store.open()
    try:
        return await store.load()
    finally:
        await store.close()


def crash_loop(disk_dir: pathlib.Path, seed: int, kills: int, opts: list[str],
               budget_s: float) -> Model:
    rng = random.Random(seed)
    data = disk_dir / "data"
    data.mkdir()
    scratch = disk_dir / "scratch"
    scratch.mkdir()
    model = Model()
    deadline = time.monotonic() + budget_s
    for _ in range(kills):
        lines = run_and_kill(data, rng.randrange(2**32), opts, rng, scratch)
        pending = model.apply(lines)
        model.stats["written open segments"] += written_open_segments(data)
        try:
            result = load_copy(data, scratch)
            model.check(result, pending)
        except Exception as err:
            raise AssertionError(f"after kill {model.kills + 1} (seed {seed}): {err}\n"
                                 f"child said: {lines[:3]} ... {lines[-5:]}") from err
        model.reset_to(result)
        model.kills += 1
        if time.monotonic() > deadline:
            break
    # Finally the directory itself (not a copy) loads, to the same state.
    final = asyncio.run(load_dir(data))
    model.check(final, None)
    assert not layout.list_dir(str(data)).corrupt_files
    print(f"{model.kills} kills, {model.acked} entries acknowledged, log "
          f"{final.start_index}..{final.start_index + len(final.entries) - 1}, "
          f"term {final.term}; {model.stats}")
    return model


def written_open_segments(data: pathlib.Path) -> int:
    """How many open segments the crash left with something written in them."""
    count = 0
    for seg in layout.list_dir(str(data)).segments:
        if seg.is_open:
            with open(data / seg.name, "rb") as f:
                count += f.read(8) == (1).to_bytes(8, "little")
    return count


def test_sigkill_while_appending(disk_dir, seeded_random):
    """Append-only with term and vote changes: 3 directories side by side (AIO on
    asyncio, thread-pool writes, AIO on uvloop), 18 kills each."""
    seed = seeded_random.randrange(2**32)
    print(f"crash seed {seed}")
    variants = ([], ["--no-aio"], ["--uvloop"])
    for k in range(len(variants)):
        (disk_dir / f"run{k}").mkdir()
    with concurrent.futures.ThreadPoolExecutor(len(variants)) as pool:
        jobs = [pool.submit(crash_loop, disk_dir / f"run{k}", seed + k, 18, opts, 40)
                for k, opts in enumerate(variants)]
        models = [job.result() for job in jobs]
    kills = sum(m.kills for m in models)
    assert all(m.acked > 0 for m in models)
    assert kills >= 50, f"only {kills} kills in the time budget"
    assert sum(m.stats["written open segments"] for m in models) >= kills // 2


def test_sigkill_with_truncate_and_snapshots(disk_dir, seeded_random):
    """Appends mixed with truncations and snapshots (trailing > 0) on 16 KiB
    segments, killed 12 times (kills land inside truncations too)."""
    seed = seeded_random.randrange(2**32)
    print(f"crash seed {seed}")
    model = crash_loop(disk_dir, seed, 12, ["--mode", "mixed", "--truncate-rate", "0.05",
                                            "--segment-kib", "16"], budget_s=12)
    assert model.acked > 0
    assert model.stats["truncations"] and model.stats["snapshots"], model.stats


# ------------------------------------ crash points in truncate and install

CRASH_POINT_CHILD = """
import asyncio, os, sys
from raftpy.core.configuration import Configuration
from raftpy.core.types import Entry, EntryType
from raftpy.io.disk import DiskStore, Snapshot
from raftpy.io.fs import Fs

path, op, (index, crash_at, snap) = sys.argv[1], sys.argv[2], map(int, sys.argv[3:])


class CrashingFs(Fs):                       # the process dies at the crash_at-th unlink
    armed = False
    calls = 0

    def unlink(self, name):
        if self.armed:
            if self.calls == crash_at:
                os._exit(9)
            self.calls += 1
        os.unlink(name)


async def main():
    fs = CrashingFs()
    store = DiskStore(path, segment_size_bytes=8192, fs=fs)
    await store.open()
    await store.load()
    for i in range(1, 301, 10):
        await store.append(i, [Entry(1, EntryType.COMMAND, j.to_bytes(8, "little") * 12)
                               for j in range(i, i + 10)])
    if snap:
        await store.snapshot_put(1000, Snapshot(1, snap, Configuration.of((1, "a:1")), 1,
                                                b"snapshot"))
    fs.armed = True
    if op == "truncate":
        await store.truncate(index)
    else:                                   # install a snapshot at index
        await store.snapshot_install(Snapshot(2, index, Configuration.of((1, "a:1")), 1,
                                             b"installed"))
    os._exit(3)                             # fewer unlinks than crash_at

asyncio.run(main())
"""


def crash_at_unlink(path: pathlib.Path, op: str, index: int, crash_at: int,
                    snap: int, auto_recovery: bool) -> LoadResult:
    """Run CRASH_POINT_CHILD, then load what it left."""
    proc = subprocess.run([sys.executable, "-c", CRASH_POINT_CHILD, str(path), op, str(index),
                           str(crash_at), str(snap)], env=child_env(), capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == 9, proc.stderr
    print("after the crash:", sorted(os.listdir(path)))

    async def load() -> LoadResult:
        async with DiskStore(str(path), segment_size_bytes=8192,
                             auto_recovery=auto_recovery) as store:
            return await store.load()

    return asyncio.run(load())


@pytest.mark.parametrize("index,crash_at,snap", [
    (60, 0, 0), (60, 1, 0), (60, 2, 0), (60, 3, 0), (60, 4, 0),
    (230, 0, 200), (230, 1, 200), (290, 0, 250)])
def test_crash_inside_truncate(disk_dir, index, crash_at, snap):
    """Entries 1..300 in 8 KiB segments (closed 1-70, 71-140, ..., 281-300),
    maybe a snapshot, truncate(index); the process dies at the crash_at-th file
    deletion of the truncation.  It was not acknowledged, so a load (even
    without auto-recovery: a crash is not corruption) must give entries 1..M,
    M >= index-1, each the one appended."""
    r = crash_at_unlink(disk_dir, "truncate", index, crash_at, snap, auto_recovery=False)
    last = r.start_index + len(r.entries) - 1
    assert r.start_index <= (snap + 1 if snap else 1) and last >= index - 1
    for k, e in enumerate(r.entries):
        i = r.start_index + k
        assert bytes(e.payload) == i.to_bytes(8, "little") * 12


@pytest.mark.parametrize("index,crash_at,auto_recovery", [
    (500, 0, True), (500, 2, True), (500, 4, True), (200, 1, True), (200, 3, True),
    (200, 1, False),
    (200, 3, False), (500, 0, False)])
def test_crash_inside_snapshot_install(disk_dir, index, crash_at, auto_recovery):
    """Entries 1..300 in 8 KiB segments, snapshot_install at index (beyond
    the log, or inside it as for a follower with a conflicting tail), the process
    dies at the crash_at-th deletion.  The snapshot files were complete before
    any deletion: load must succeed with that snapshot and only original entries."""
    r = crash_at_unlink(disk_dir, "install", index, crash_at, 0, auto_recovery)
    assert r.snapshot is not None and r.snapshot.index == index
    assert r.snapshot.data == b"installed"
    for k, e in enumerate(r.entries):
        i = r.start_index + k
        assert bytes(e.payload) == i.to_bytes(8, "little") * 12


def test_concurrent_term_and_vote_changes(tmp_path):
    """set_term(5) and set_vote(3) in flight together, both acknowledged: three
    metadata writes in all, so versions 2 and 3 on disk (spec §3.4), and the
    acknowledged term 5 is what loads."""
    async def go() -> tuple[LoadResult, tuple[int, int]]:
        async with DiskStore(str(tmp_path)) as store:
            await store.load()
            await store.set_term(1)
            await asyncio.gather(store.set_term(5), store.set_vote(3))
            in_memory = (store.term, store.voted_for)
        async with DiskStore(str(tmp_path)) as store:
            return await store.load(), in_memory

    r, in_memory = asyncio.run(go())
    versions = sorted(int.from_bytes((tmp_path / n).read_bytes()[8:16], "little")
                      for n in ("metadata1", "metadata2"))
    assert versions == [2, 3], f"versions on disk {versions} after three writes"
    assert r.term == 5 and (r.term, r.voted_for) == in_memory
