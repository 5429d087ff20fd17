"""Linearizable reads in the simulated cluster, and the mutants the read checker catches.

The checker (raftpy/testing/checkers.py ``on_read``) fails a read whose state
lacks a write acknowledged to any client before the read was asked.  Two
directed scenarios (manual cluster) build the case a read must survive: a
leader cut off from the majority, which still believes it leads, while the
majority elects a new leader that acknowledges a write.  Random runs
(partitions, one-way cuts, a leader paused and cut off, crashes, loss,
duplication, long holds) check every read, and find the mutant that skips
the round; ``RAFTPY_SEED`` replays one run, each run prints its seed.
"""

from __future__ import annotations

import os
import random

import pytest
from mutants import apply_mutant  # tests/sim is on sys.path (rootdir-relative imports)

from raftpy.core.config import Config, ReadMode
from raftpy.core.messages import AppendEntriesResult
from raftpy.core.types import State
from raftpy.errors import NotLeaderError
from raftpy.testing.checkers import Violation
from raftpy.testing.cluster import ClientRequest, Cluster, Network


def _elect_2_while_1_is_cut_off(c: Cluster, keep: list[tuple[int, int, object]]) -> None:
    """Server 1 leads term 2; then its outbound links are cut (it keeps
    believing it leads: its timer never fires here) and 2 wins term 4 with 3's
    vote (3 first campaigns itself: it still knew leader 1)."""
    c.tick(1)
    c.stabilize()
    assert c.servers[1].state == State.LEADER
    c.cut(1, 2)
    c.cut(1, 3)
    c.tick(3)
    c.tick(2)
    _exchange(c, keep)
    c.tick(2)
    _exchange(c, keep)
    assert c.servers[2].state == State.LEADER


def _exchange(c: Cluster, keep: list[tuple[int, int, object]]) -> None:
    """Deliver between 2 and 3 until quiet; what 2 and 3 send to 1 is kept aside."""
    for _ in range(50):
        moved = c.persist()
        for item in list(c.inflight):
            src, dst, _m = item
            c.inflight.remove(item)
            if dst == 1:
                keep.append(item)
            else:
                c._deliver(src, dst, item[2])  # noqa: SLF001 - the test drives delivery
                moved += 1
        if not moved:
            return


def _acknowledged_write_at_2(c: Cluster, keep: list[tuple[int, int, object]]) -> int:
    write = c.propose(2, b"acked...")
    _exchange(c, keep)
    assert write.done and write.error is None
    return write.index


def test_a_cut_off_leader_never_serves_a_stale_read() -> None:
    c = Cluster(3, manual=True, fixed_timeouts=True)
    keep: list[tuple[int, int, object]] = []
    _elect_2_while_1_is_cut_off(c, keep)
    index = _acknowledged_write_at_2(c, keep)
    read = c.read(1)
    assert c.servers[1].state == State.LEADER and read.must_see == index
    c.deliver()
    assert not read.done                  # its round cannot reach a quorum
    c.heal()
    c.elapse(100)
    c.stabilize()
    assert read.done and isinstance(read.error, NotLeaderError)


def test_the_checker_catches_a_read_without_a_round(monkeypatch: pytest.MonkeyPatch) -> None:
    apply_mutant(monkeypatch, "read-skips-round")
    c = Cluster(3, manual=True, fixed_timeouts=True)
    keep: list[tuple[int, int, object]] = []
    _elect_2_while_1_is_cut_off(c, keep)
    index = _acknowledged_write_at_2(c, keep)
    with pytest.raises(Violation, match=f"stale read on server 1.*write at {index}"):
        c.read(1)


def _stale_result_scenario(c: Cluster) -> ClientRequest:
    """An AppendEntriesResult of 2's, sent in term 2 before the cut, arrives at
    1 only after 2 left the term and a write was acknowledged, while 1's read
    round is in flight."""
    keep: list[tuple[int, int, object]] = []
    c.tick(1)
    c.stabilize()
    c.elapse(100)                          # a heartbeat round: 2's reply is held back
    c.deliver(from_id=1)
    held = [m for m in c.inflight if m[0] == 2 and isinstance(m[2], AppendEntriesResult)]
    assert held
    c.inflight = [m for m in c.inflight if m not in held]
    c.stabilize()
    _elect_2_while_1_is_cut_off(c, keep)
    _acknowledged_write_at_2(c, keep)
    read = c.read(1)
    c.deliver()                            # 1's ReadHeartbeats go nowhere (cut)
    c._deliver(held[0][0], held[0][1], held[0][2])  # noqa: SLF001 - the late reply
    return read


def test_a_late_append_entries_result_does_not_confirm_a_round() -> None:
    read = _stale_result_scenario(Cluster(3, manual=True, fixed_timeouts=True))
    assert not read.done


def test_the_checker_catches_a_round_confirmed_by_any_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    apply_mutant(monkeypatch, "read-counts-any-result")
    with pytest.raises(Violation, match="stale read on server 1"):
        _stale_result_scenario(Cluster(3, manual=True, fixed_timeouts=True))


# -- random runs ---------------------------------------------------------------------


def read_run(seed: int, servers: int, duration_ms: int, mode: ReadMode,
             crashes: bool, follower_reads: bool = False) -> tuple[int, int, int]:
    """Writes and reads at random servers (most at whoever believes it leads,
    stale leaders included; with follower reads, half at any server) under
    faults; returns (reads done, reads failed, writes acknowledged).  Raises
    Violation if a read is stale."""
    rng = random.Random(seed)
    network = Network(5, 40, loss=0.02, duplicate=0.02, hold=0.005, hold_ms=(1000, 4000))
    config = Config(read_mode=mode, follower_reads=follower_reads)
    c = Cluster(servers, seed, config=config, network=network)
    spread = 0.5 if follower_reads else 0.9
    ids = list(c.servers)
    reads: list[ClientRequest] = []
    writes: list[ClientRequest] = []
    next_op, next_fault, counter = 0, rng.randint(1000, 3000), 0
    while c.now < duration_ms:
        if c.now >= next_op:
            leaders = [s.id for s in c.servers.values() if s.alive and s.state == State.LEADER]
            target = (rng.choice(leaders) if leaders and rng.random() < spread
                      else rng.choice(ids))
            if c.servers[target].alive:
                if rng.random() < 0.5:
                    writes.append(c.propose(target, b"%08d" % counter))
                    counter += 1
                else:
                    reads.append(c.read(target))
            next_op = c.now + rng.randint(1, 20)
        if c.now >= next_fault:
            _fault(c, rng, ids, crashes)
            next_fault = c.now + rng.randint(500, 3000)
        if not c.step():
            c.now += 10
    done = sum(1 for r in reads if r.done and r.error is None)
    failed = sum(1 for r in reads if r.error is not None)
    acked = sum(1 for w in writes if w.done and w.error is None)
    return done, failed, acked


def _fault(c: Cluster, rng: random.Random, ids: list[int], crashes: bool) -> None:
    kind = rng.random()
    if kind < 0.35:
        c.heal()
        for server in c.servers.values():
            if not server.alive:
                c.start(server.id)
    elif kind < 0.6:
        leader = c.leader()
        alone = leader.id if leader is not None else rng.choice(ids)
        c.partition([alone], [i for i in ids if i != alone])
    elif kind < 0.7:
        leader = c.leader()
        if leader is not None:           # it cannot send, it still hears
            for i in ids:
                if i != leader.id:
                    c.cut(leader.id, i)
    elif kind < 0.85:
        leader = c.leader()              # paused, cut off, and resumed I/O first
        if leader is not None:
            c.pause(leader.id, rng.randint(1500, 4000))
            c.partition([leader.id], [i for i in ids if i != leader.id])
    elif crashes:
        c.crash(rng.choice(ids))


def _seeds(count: int) -> list[int]:
    if "RAFTPY_SEED" in os.environ:
        return [int(os.environ["RAFTPY_SEED"])]
    base = random.SystemRandom().randrange(2**32)
    return [base + k for k in range(count)]


@pytest.mark.parametrize("mode,crashes,follower_reads", [
    (ReadMode.READ_INDEX, True, False), (ReadMode.LEASE, False, False),
    (ReadMode.READ_INDEX, True, True)])
def test_random_runs_serve_only_linearizable_reads(mode: ReadMode, crashes: bool,
                                                   follower_reads: bool) -> None:
    # Leases assume no voter restarts within one (read_index.py): no crashes then.
    totals = [0, 0, 0]
    for seed in _seeds(6):
        servers = 3 if seed % 2 else 5
        print(f"read run: seed {seed}, {servers} servers, {mode.name}, follower reads "
              f"{follower_reads} (replay with RAFTPY_SEED={seed})")
        result = read_run(seed, servers, 30_000, mode, crashes, follower_reads)
        totals = [a + b for a, b in zip(totals, result, strict=True)]
    print(f"reads done {totals[0]}, failed {totals[1]}, writes acknowledged {totals[2]}")
    assert totals[0] > 100 and totals[2] > 100    # the runs did read and write


# Seeds whose random run finds the mutant (a scan of seeds 0..29 found 6, 11,
# 14, 16, 22 and 26); a change to the core moves the runs' trajectories, so
# more than one is kept: at least one must still find it (re-scan if none).
SKIPS_ROUND_FOUND_BY = (6, 11, 14, 16)


def test_random_runs_find_a_read_without_a_round(monkeypatch: pytest.MonkeyPatch) -> None:
    apply_mutant(monkeypatch, "read-skips-round")
    found = []
    for seed in SKIPS_ROUND_FOUND_BY:
        try:
            read_run(seed, 3 if seed % 2 else 5, 30_000, ReadMode.READ_INDEX, True)
        except Violation as violation:
            print(f"read-skips-round: seed {seed}: {violation}")
            found.append(seed)
    assert found, f"none of the seeds {SKIPS_ROUND_FOUND_BY} finds read-skips-round any more"
