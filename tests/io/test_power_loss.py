"""Power-loss testing of DiskStore (issue 8, B3).

Workloads (tests/io/powerloss_harness.py) run against a real directory with
every durability-relevant call recorded (raftpy.io.fs.Recorder); from each
recording raftpy.testing.powerloss builds every crash state an ext4-like disk
may leave at every point (unsynced writes present, absent or torn per 4 KiB
block, undurable directory changes applied or not per entry), and each is
loaded with auto-recovery off and on and checked: acknowledged entries at
their index with their bytes, term and vote at least as acknowledged, nothing
at a wrong index, the log agreeing with the snapshot, and load never failing.

Against the code before issue 8's fixes it reported: open segments loaded at
the wrong index after a snapshot (A2a), segments left past the snapshot or
after a gap by interrupted installations and truncations (A2b), truncate
racing an installation (A2c), torn multi-block writes called corruption (A3)
and logs contradicting the snapshot (A4).

The ``faults`` workload also fails the disk (harness.FaultyRecorder: a write
that fails after some or all of its blocks landed, a failed fsync, no space
for a new segment, a failed close or cut-back) and re-issues appends as the
core does after PersistFailed.  The ``failed-write`` workload is the same
with one fault only, a segment write whose data landed and then failed:
with the cut-back wait undone it finds the review's failed-write
misplacement in 18 of 20 seeds (with ``faults``' mixed plans, in about a
third, which let 8 seeds in a row miss it in CI).  The ``big`` workload
writes one batch larger than the torn reach.  Each auto-recovery load is
recorded, and of some of those that repaired something every crash state is
loaded again (a power loss during recovery); every load is repeated and must
return the same result.

Budget: RAFTPY_POWERLOSS_STATES (default 6000) distinct crash states in all,
shared by the workloads; each workload runs seeds seed, seed+1, ... until its
share is checked, or, between two recordings, once RAFTPY_POWERLOSS_SECONDS
(default 20) have passed and at least 100 states are checked (some seeds
give far costlier states than others; one recording is always checked whole).
The seed is printed; replay with RAFTPY_SEED=<seed>, or one workload by
hand: python tests/io/powerloss_harness.py WORKLOAD SEED.
"""

from __future__ import annotations

import os
import random
import sys
import time

import pytest

from raftpy.io.fs import Event
from raftpy.testing import powerloss

sys.path.insert(0, os.path.dirname(__file__))
import powerloss_harness as harness  # noqa: E402

STATES = int(os.environ.get("RAFTPY_POWERLOSS_STATES", "6000"))
SECONDS = float(os.environ.get("RAFTPY_POWERLOSS_SECONDS", "20"))
RUNS = [("appends", None), ("appends", False), ("rollover", None), ("truncate", None),
        ("snapshots", None), ("installs", None), ("race", None), ("race", False),
        ("faults", None), ("faults", False), ("big", None)]


# ------------------------------------------------------ the generator itself

def images(events: list[tuple[str, tuple]], baseline: dict[str, bytes] | None = None,
           point: int | None = None) -> list[dict[str, bytes]]:
    baseline = baseline or {}
    inodes = {name: k + 1 for k, name in enumerate(sorted(baseline))}
    evs = [Event(k, a) for k, a in events]
    point = len(evs) if point is None else point
    return [s.files for p, _d, s in powerloss.crash_states(
        evs, baseline, inodes, random.Random(1), points=[point]) if s is not None]


def test_a_pending_write_is_torn_in_every_combination_of_blocks():
    a, b = b"a" * 4096, b"b" * 4096
    got = images([("create", ("f", 1)), ("write", (1, 0, a + b, 1)), ("fsync", (1, 1)),
                  ("dirsync", (1,))])
    # Both syncs began at position 1: they cover the create (position 0), not
    # the write (position 1), which stays pending.
    contents = sorted(f["f"] for f in got)
    assert contents == sorted([b"", a, bytes(4096) + b, a + b])     # b without a too


def test_durable_writes_and_syncs_cover_only_what_came_before_them():
    a, b = b"a" * 4096, b"b" * 4096
    got = images([("create", ("f", 1)), ("dirsync", (1,)), ("write", (1, 0, a, 1)),
                  ("durable", (1,)), ("write", (1, 4096, b, 2))])
    assert sorted(f["f"] for f in got) == [a, a + b]


def test_undurable_renames_and_unlinks_are_applied_or_not_per_entry():
    base = {"old": b"x" * 8, "gone": b"y" * 8}         # inodes by name: gone 1, old 2
    got = images([("rename", ("old", "new", 2)), ("unlink", ("gone", 1))], base)
    names = sorted(tuple(sorted(f)) for f in got)
    assert names == [("gone", "new"), ("gone", "old"), ("new",), ("old",)]
    assert all(f.get("new", b"x" * 8) == b"x" * 8 for f in got)


def test_file_data_synced_survives_under_its_old_name_when_the_rename_does_not():
    got = images([("create", ("tmp", 1)), ("write", (1, 0, b"data" * 2, 1)), ("fsync", (1, 2)),
                  ("dirsync", (3,)), ("rename", ("tmp", "final", 1))])
    assert sorted(tuple(f.items()) for f in got) == [(("final", b"data" * 2),),
                                                     (("tmp", b"data" * 2),)]


# ------------------------------------------------------------ the workloads

@pytest.fixture(scope="module")
def seed() -> int:
    value = int(os.environ.get("RAFTPY_SEED", random.SystemRandom().randrange(2**31)))
    print(f"\npower-loss seed {value} (replay with RAFTPY_SEED={value}); "
          f"{STATES} crash states (RAFTPY_POWERLOSS_STATES)")
    return value


@pytest.mark.parametrize("workload,use_aio", RUNS,
                         ids=[f"{w}{'-threads' if a is False else ''}" for w, a in RUNS])
def test_every_crash_state_loads_what_was_acknowledged(workload, use_aio, seed):
    share = max(1, STATES // len(RUNS))
    t0 = time.monotonic()
    states = checks = events = nested = 0
    runs = 0
    failures: list[str] = []
    while states < share:
        s = seed + runs
        rec = harness.record(workload, s, use_aio=use_aio)
        assert not rec.errors, f"{workload} seed {s}: the workload failed:\n" + \
            "\n".join(rec.errors)
        report = harness.verify(rec, random.Random(s))
        states += report.states
        checks += report.checks
        nested += report.nested
        events += len(rec.events)
        failures += report.failures
        runs += 1
        if failures or runs >= 50:
            break
        if states >= 100 and time.monotonic() - t0 > SECONDS:
            print(f"{workload}: time budget of {SECONDS:.0f} s spent "
                  f"(RAFTPY_POWERLOSS_SECONDS), {states} of {share} crash states")
            break
    print(f"{workload}{' (thread writes)' if use_aio is False else ''}: {runs} recordings "
          f"(seeds {seed}..{seed + runs - 1}), {events} events, {states} crash states, "
          f"{checks} checks, {nested} crash states of its loads, {time.monotonic() - t0:.1f} s")
    assert not failures, "\n\n".join(failures)
    assert states >= min(share, 100), f"only {states} crash states"


# --------------------------------------- the checker catches each defect

def _no_torn_reach(mp: pytest.MonkeyPatch) -> None:
    """A3 undone: any valid batch after damage is corruption, a zero format
    word with data is corruption."""
    import raftpy.io.disk as disk
    mp.setattr(disk.layout, "torn_reach", lambda *a: 0)


def _no_disagreement(mp: pytest.MonkeyPatch) -> None:
    """A4 (and the log behind the snapshot) undone: load keeps whatever it read."""
    import raftpy.io.disk as disk
    mp.setattr(disk, "_disagrees", lambda *a: "")


def _one_sync_deletion(mp: pytest.MonkeyPatch) -> None:
    """A2b undone: the segments of an installation deleted newest first with one
    directory sync (any of them may outlive a crash)."""
    from raftpy.io.disk import DiskStore

    def delete_log(self, segments, snapshot_index):
        for name, _last in reversed(segments):
            self._fs.unlink(self._p(name))
        self._fsync_dir()
    mp.setattr(DiskStore, "_delete_log", delete_log)


def _snapshot_at_once(mp: pytest.MonkeyPatch) -> None:
    """A2a undone: a snapshot goes to disk at once, before the appends it covers
    are written and their segment closed."""
    from raftpy.io.disk import DiskStore

    async def at_once(self):
        return None
    mp.setattr(DiskStore, "_close_earlier_appends", at_once)


def _no_cutback_wait(mp: pytest.MonkeyPatch) -> None:
    """Review finding 1 undone: after a failed write, the next segment is
    written before the failed one is durably cut back."""
    from raftpy.io.disk import DiskStore

    async def no_wait(self):
        return None
    mp.setattr(DiskStore, "_await_cutback", no_wait)


def _load_cut_not_synced(mp: pytest.MonkeyPatch) -> None:
    """A repair by load made unsafe: a torn tail is cut off and the segment
    renamed closed without syncing the cut first (a crash during that load
    can leave a closed segment ending in the torn write).  Only the checks of
    the crash states of a load find it."""
    from raftpy.io.disk import DiskStore
    from raftpy.testing.mutation import mutated

    mp.setattr(DiskStore, "_load_open", mutated(
        DiskStore, "_load_open", "self._fs.ftruncate(fd, scan.end)\n"
        "        self._fs.fsync(fd)\n", "self._fs.ftruncate(fd, scan.end)\n"))


def _format_0_torn_only_within_reach(mp: pytest.MonkeyPatch) -> None:
    """Review finding 2 undone: a segment whose format word is 0 is a torn
    first write only if nothing lies beyond the torn reach (a batch larger
    than the reach, written alone, torn, was corruption)."""
    from raftpy import _bindings
    from raftpy.io.disk import DiskStore
    from raftpy.testing.mutation import mutated

    mp.setattr(DiskStore, "_load_open", mutated(
        DiskStore, "_load_open", "if data[:8] == bytes(8):", "if False:"))
    # _judge: where prescan_segment (load's reader thread) and scan_segment
    # classify a segment's end.
    mp.setattr(_bindings, "_judge", mutated(
        _bindings, "_judge",
        "    return SegmentScan([], 0, 0, ScanOutcome.TORN_TAIL, Status(status), err, 0, -1)\n"
        "    if status in",
        "    beyond = view[torn_reach:]\n"
        "        if beyond.nbytes == 0 or bytes(beyond).count(0) == beyond.nbytes:\n"
        "            return SegmentScan([], 0, 0, ScanOutcome.TORN_TAIL, Status(status), "
        "err, 0, -1)\n"
        "    if status in"))


@pytest.mark.parametrize("undo,workload", [(_snapshot_at_once, "snapshots"),
                                           (_format_0_torn_only_within_reach, "big"),
                                           (_no_cutback_wait, "failed-write"),
                                           (_load_cut_not_synced, "appends"),
                                           (_no_torn_reach, "appends"),
                                           (_no_disagreement, "installs"),
                                           (_one_sync_deletion, "installs")],
                         ids=["A2a-snapshot-ahead", "big-torn-first-write",
                              "failed-write-cutback", "load-repair-unsynced", "A3-torn-writes",
                              "A4-snapshot-disagreement",
                              "A2b-install-deletion-order"])
def test_the_checker_finds_each_defect_when_its_fix_is_undone(undo, workload, seed,
                                                              monkeypatch):
    undo(monkeypatch)
    for s in range(seed, seed + 8):
        rec = harness.record(workload, s)
        report = harness.verify(rec, random.Random(s), max_failures=1)
        if report.failures:
            print(f"found after {report.states} states (seed {s}):\n{report.failures[0]}")
            return
    pytest.fail(f"the checker found nothing in 8 recordings of {workload} with "
                f"{undo.__doc__}")
