"""The simulated cluster as a library user sees it: own state machine, faults, replay."""

from __future__ import annotations

from typing import Any

import pytest

from raftpy.core.trace import ListTracer
from raftpy.core.types import State
from raftpy.errors import NotLeaderError
from raftpy.testing.checkers import SafetyChecker, Violation
from raftpy.testing.cluster import ClientRequest, Cluster, Disk, Network


class Counter:
    """A user's state machine: adds the integer in each command."""

    def __init__(self) -> None:
        self.total = 0

    def apply(self, index: int, payload: bytes | memoryview) -> Any:
        self.total += int(bytes(payload))
        return self.total


def elect(cluster: Cluster) -> int:
    assert cluster.run_until(lambda: cluster.leader() is not None, 10_000)
    leader = cluster.leader()
    assert leader is not None
    return leader.id


def test_user_state_machine_sees_commands_in_order_everywhere() -> None:
    cluster = Cluster(3, seed=7, machine=Counter, network=Network(1, 30), disk=Disk(1, 5))
    leader = elect(cluster)
    requests = [cluster.propose(leader, b"%08d" % k) for k in range(1, 11)]
    assert cluster.run_until(lambda: all(r.done for r in requests), 5_000)
    assert [r.result for r in requests] == [sum(range(1, k + 1)) for k in range(1, 11)]
    cluster.run_for(1_000)
    assert {s.machine.total for s in cluster.servers.values()} == {55}  # type: ignore[attr-defined]


def test_follower_refuses_and_names_the_leader() -> None:
    cluster = Cluster(3, seed=1)
    leader = elect(cluster)
    cluster.run_for(200)
    follower = next(i for i in cluster.servers if i != leader)
    req = cluster.propose(follower, b"00000001")
    assert isinstance(req.error, NotLeaderError) and req.error.leader_id == leader


def test_minority_crash_and_partition_then_recovery() -> None:
    cluster = Cluster(5, seed=3, network=Network(1, 20, loss=0.05, duplicate=0.05))
    leader = elect(cluster)
    cluster.crash(leader)
    others = [i for i in cluster.servers if i != leader]
    cluster.partition(others[:1], others[1:])
    new = elect(cluster)
    assert new in others[1:]
    req = cluster.propose(new, b"00000042")
    assert cluster.run_until(lambda: req.done, 10_000) and req.error is None
    cluster.heal()
    cluster.start(leader)
    assert cluster.run_until(lambda: all(
        s.raft is not None and s.raft.last_applied >= req.index
        for s in cluster.servers.values()), 10_000)
    assert cluster.raft(leader).state == State.FOLLOWER


def test_standby_servers_follow_and_time_still_moves() -> None:
    cluster = Cluster(4, seed=5, voters=3, network=Network(1, 10))
    leader = elect(cluster)
    cluster.crash(leader)
    cluster.run_for(5_000)  # the standby's expired timer must not stall the clock
    assert cluster.now >= 5_000
    assert cluster.raft(4).state == State.FOLLOWER
    assert cluster.leader() is not None and cluster.leader().id != 4  # type: ignore[union-attr]


def test_checker_rejects_two_leaders_in_a_term() -> None:
    checker = SafetyChecker()
    cluster = Cluster(3, seed=1)
    elect(cluster)
    raft = cluster.raft(1)
    checker.on_leader(1, 5, raft.log)
    with pytest.raises(Violation):
        checker.on_leader(2, 5, raft.log)


def test_checker_rejects_different_entries_applied_at_one_index() -> None:
    checker = SafetyChecker()
    from raftpy.core.types import Entry, EntryType
    checker.on_apply(1, 1, [Entry(1, EntryType.COMMAND, b"a")])
    with pytest.raises(Violation):
        checker.on_apply(2, 1, [Entry(1, EntryType.COMMAND, b"b")])


def test_tracer_sees_every_server() -> None:
    tracer = ListTracer()
    cluster = Cluster(3, seed=2, tracer=tracer)
    elect(cluster)
    assert {line.split()[1] for line in tracer.lines} == {"1:", "2:", "3:"}
    assert any("became leader" in line for line in tracer.lines)


class SnapshotCounter(Counter):
    """Counter with snapshots: its state is the total."""

    def snapshot(self) -> bytes:
        return b"%d" % self.total

    def restore(self, data: bytes | memoryview) -> None:
        self.total = int(bytes(data))


def test_lagging_follower_gets_a_snapshot_and_its_machine_is_restored() -> None:
    from raftpy.core.config import Config
    config = Config(snapshot_threshold=8, snapshot_trailing=2)
    cluster = Cluster(3, seed=11, config=config, machine=SnapshotCounter,
                      network=Network(1, 10), disk=Disk(1, 5, snapshot_latency_ms=(50, 200)))
    leader = elect(cluster)
    follower = next(i for i in cluster.servers if i != leader)
    cluster.crash(follower)
    requests = [cluster.propose(leader, b"%08d" % 1) for _ in range(40)]
    assert cluster.run_until(lambda: all(r.done for r in requests), 10_000)
    cluster.run_for(1_000)
    assert cluster.raft(leader).log.offset > 2  # compacted past the follower's log
    cluster.start(follower)
    assert cluster.run_until(lambda: cluster.raft(follower).last_applied
                             >= requests[-1].index, 10_000)
    assert cluster.raft(follower).snapshot is not None
    assert cluster.checker is not None and cluster.checker.restores >= 1
    assert cluster.servers[follower].machine.total == 40  # type: ignore[attr-defined]


def test_servers_join_and_leave_through_the_leader() -> None:
    from raftpy.core.configuration import Role
    cluster = Cluster(3, seed=4, network=Network(1, 10))
    leader = elect(cluster)
    cluster.run_for(300)  # the leader's no-op commits
    new = cluster.add_server()
    req = cluster.add(leader, new)
    assert cluster.run_until(lambda: req.done, 5_000) and req.error is None
    req = cluster.assign(leader, new, Role.VOTER)
    assert cluster.run_until(lambda: req.done, 5_000) and req.error is None
    assert cluster.raft(leader).configuration.voter_ids == (1, 2, 3, new)
    req = cluster.remove(leader, leader)
    assert cluster.run_until(lambda: req.done, 5_000) and req.error is None
    assert cluster.run_until(lambda: cluster.leader() is not None
                             and cluster.leader().id != leader, 10_000)  # type: ignore[union-attr]
    assert cluster.raft(leader).state == State.FOLLOWER


def test_a_slow_state_machine_holds_its_loop_and_lags_behind() -> None:
    cluster = Cluster(3, seed=3, network=Network(1, 5), disk=Disk(1, 2))
    leader = elect(cluster)
    slow = next(i for i in cluster.servers if i != leader)
    cluster.servers[slow].apply_latency_ms = 200
    requests = [cluster.propose(leader, b"%08d" % k) for k in range(5)]
    assert cluster.run_until(lambda: all(r.done for r in requests), 1_000)
    top = requests[-1].index
    # The quorum committed without waiting; the slow server is still busy applying.
    assert cluster.run_until(lambda: cluster.raft(slow).last_applied >= top, 1_000)
    server = cluster.servers[slow]
    assert server.busy_until > cluster.now
    # Its loop is held: a message that arrives now waits until busy_until.
    commit = cluster.raft(slow).commit_index
    more = cluster.propose(leader, b"00000099")
    assert cluster.run_until(lambda: more.done, 1_000)
    assert cluster.now < server.busy_until and cluster.raft(slow).commit_index == commit
    cluster.run_for(2_000)
    assert cluster.raft(slow).last_applied == more.index


def test_take_snapshot_at_any_moment() -> None:
    cluster = Cluster(3, seed=4, network=Network(1, 5), disk=Disk(1, 2))
    leader = elect(cluster)
    req = cluster.propose(leader, b"00000001", b"00000002")
    assert cluster.run_until(lambda: req.done, 1_000)
    applied = cluster.raft(leader).last_applied
    cluster.take_snapshot(leader)  # far below the default threshold of 1024
    assert cluster.run_until(lambda: cluster.raft(leader).snapshot is not None, 1_000)
    snapshot = cluster.raft(leader).snapshot
    assert snapshot is not None and snapshot.index == applied
    assert cluster.servers[leader].snapshot == snapshot
    checker = cluster.checker
    assert checker is not None and applied in checker.snapshots


def test_requests_a_busy_loop_holds_keep_their_order() -> None:
    """Events held while a slow machine applies reach the core in arrival order,
    even when the loop gets busy again before all of them are through (seed 7
    made a request overtake an older one before f3026c8)."""
    cluster = Cluster(3, seed=7, network=Network(1, 10), disk=Disk(1, 3))
    leader = elect(cluster)
    cluster.servers[leader].apply_latency_ms = 7
    requests: list[ClientRequest] = []
    for k in range(200):
        req = cluster.propose(leader, b"%08d" % k)
        requests.append(req)
        cluster.run_until(lambda r=req: r.done, 3 + k % 11)  # may stop mid-instant
    assert cluster.run_until(lambda: all(r.done for r in requests), 10_000)
    indexes = [r.index for r in requests if r.error is None]
    assert len(indexes) > 100 and indexes == sorted(indexes)


# -- what real I/O does: failed sends, failed term/vote writes, own disks, torn writes --


def test_sends_to_a_crashed_server_are_reported_failed() -> None:
    from raftpy.core.progress import ProgressMode
    tracer = ListTracer()
    cluster = Cluster(3, seed=5, network=Network(1, 10, refused=1.0), tracer=tracer)
    leader = elect(cluster)
    cluster.run_for(300)
    dead = next(i for i in cluster.servers if i != leader)
    cluster.crash(dead)
    req = cluster.propose(leader, b"00000001")
    cluster.run_for(300)
    assert req.done and any(f"send to {dead} failed" in line for line in tracer.lines)
    p = cluster.raft(leader).progress[dead]
    assert p.mode == ProgressMode.PROBE and p.unreachable and p.next_index == p.match_index + 1
    transfer = cluster.transfer(leader)  # any voter: not the dead one
    transfer_target = cluster.raft(leader).transfer
    assert transfer_target is not None and transfer_target.target_id != dead
    assert cluster.run_until(lambda: transfer.done, 2_000)


def test_sends_over_a_cut_link_may_be_reported_failed() -> None:
    tracer = ListTracer()
    cluster = Cluster(3, seed=6, network=Network(1, 10, cut_failure=1.0), tracer=tracer)
    leader = elect(cluster)
    other = next(i for i in cluster.servers if i != leader)
    cluster.cut(leader, other)
    cluster.propose(leader, b"00000001")
    cluster.run_for(300)
    assert any(f"{leader}: send to {other} failed" in line for line in tracer.lines)
    quiet = Cluster(3, seed=6, network=Network(1, 10), tracer=ListTracer())
    leader = elect(quiet)
    quiet.cut(leader, other)
    quiet.run_for(300)
    assert not any("failed" in line for line in quiet.tracer.lines)  # type: ignore[union-attr]


def test_a_failed_term_or_vote_write_sends_nothing_and_is_fatal() -> None:
    tracer = ListTracer()
    cluster = Cluster(3, seed=8, network=Network(1, 10), tracer=tracer)
    cluster.fail_hard_state.add(2)
    leader = elect(cluster)
    assert leader != 2
    assert cluster.raft(2).state == State.UNAVAILABLE
    assert cluster.servers[2].term == 1 and cluster.servers[2].voted_for == 0  # disk unchanged
    assert any("2: term/vote write failed" in line for line in tracer.lines)
    odds = Cluster(3, seed=9, network=Network(1, 10), disk=Disk(1, 5, hard_state_failure=1.0))
    odds.run_for(5_000)
    assert odds.leader() is None  # every term/vote write fails: nobody can even campaign
    assert all(s.raft is not None and s.raft.state == State.UNAVAILABLE
               for s in odds.servers.values())


def test_each_server_may_have_its_own_disk() -> None:
    cluster = Cluster(3, seed=10, network=Network(1, 1), disk=Disk(1, 1))
    leader = elect(cluster)
    slow = next(i for i in cluster.servers if i != leader)
    cluster.servers[slow].disk = Disk(400, 400)
    cluster.run_for(300)
    req = cluster.propose(leader, b"00000001")
    assert cluster.run_until(lambda: req.done, 100)  # the quorum does not wait for it
    assert cluster.raft(slow).last_stored < req.index
    assert cluster.run_until(lambda: cluster.raft(slow).last_stored >= req.index, 500)


def test_a_crash_may_keep_part_of_the_writes_in_flight() -> None:
    """With a torn disk, a crash keeps an entry-aligned prefix of the unacknowledged
    writes; what survives is loaded at the restart, and acknowledged entries stay."""
    kept = set()
    for seed in range(30):
        cluster = Cluster(3, seed=seed, network=Network(1, 2), disk=Disk(50, 50, torn=True))
        leader = elect(cluster)
        cluster.run_for(500)
        follower = next(i for i in cluster.servers if i != leader)
        stored = cluster.raft(follower).last_stored
        for k in range(6):
            cluster.propose(leader, *[b"%08d" % (k * 3 + j) for j in range(3)])
            cluster.run_for(10)
        writes = len(cluster.servers[follower].writes)
        assert writes > 1
        acked = cluster.raft(follower).last_stored
        cluster.crash(follower)
        server = cluster.servers[follower]
        on_disk = server.offset + len(server.durable)
        assert stored <= acked <= on_disk
        kept.add(on_disk - acked)
        cluster.start(follower)
        assert cluster.raft(follower).log.last_index == on_disk
        assert cluster.run_until(lambda c=cluster, f=follower: c.raft(f).last_applied
                                 >= c.raft(c.leader().id).commit_index, 5_000)  # type: ignore[union-attr]
    assert 0 in kept and len(kept) > 3  # none, some, and more survive, whole and partial


# -- the checkers: a starting snapshot, skipped applies, quorums ---------------------------


def test_a_cluster_may_start_from_a_hand_made_snapshot() -> None:
    from raftpy.core.configuration import Configuration
    from raftpy.core.snapshot_types import Snapshot
    from raftpy.testing.cluster import DigestMachine
    machine = DigestMachine()
    for k in range(100):
        machine.apply(k + 1, b"%08d" % k)
    conf = Configuration.of((1, "1"), (2, "2"), (3, "3"))
    start = Snapshot(120, 4, 7, conf, machine.snapshot())
    cluster = Cluster(3, seed=12, network=Network(1, 10), snapshot=start)
    assert all(cluster.raft(i).last_applied == 120 for i in cluster.servers)
    leader = elect(cluster)
    assert cluster.raft(leader).current_term > 4
    req = cluster.propose(leader, b"00000100")
    assert cluster.run_until(lambda: req.done, 2_000) and req.error is None
    assert req.index == 122 and req.result == 101  # after the barrier at 121
    cluster.run_for(500)
    checker = cluster.checker
    assert checker is not None and checker.base == 120 and checker.last_committed == 122
    machine.apply(122, b"00000100")
    assert {s.machine.snapshot() for s in cluster.servers.values()} == {  # type: ignore[attr-defined]
        machine.snapshot()}


def test_checker_flags_an_apply_that_skips_an_index() -> None:
    from raftpy.core.types import Entry, EntryType
    entry = Entry(1, EntryType.COMMAND, b"a" * 8)
    checker = SafetyChecker()
    from raftpy.core.configuration import Configuration
    checker.on_bootstrap(Entry(1, EntryType.CHANGE, Configuration.of((1, "1")).encode()))
    checker.on_restart(1, 1)                       # bootstrapped: entry 1 applied
    checker.on_apply(1, 2, [entry])
    with pytest.raises(Violation, match="skips an index"):
        checker.on_apply(1, 4, [entry])            # its own pointer is at 2
    checker.on_restart(2, 1)
    checker.on_apply(2, 2, [entry])
    with pytest.raises(Violation, match="committed prefix ending at 2"):
        checker.on_restart(3, 3)                   # restarts beyond anything committed
    checker.applied[3] = 3                         # a pointer that jumped anyway
    with pytest.raises(Violation, match="entries 3..3 skipped"):
        checker.on_apply(3, 4, [entry])
    assert checker.last_committed == 2             # nothing was stored misaligned


def test_checker_flags_leaders_and_commits_without_a_quorum() -> None:
    from raftpy.core.log import Log
    checker = SafetyChecker()
    checker.on_vote(1, 5, 1)
    with pytest.raises(Violation, match="election without a quorum"):
        checker.on_leader(1, 5, Log(), (1, 2, 3))
    checker.on_vote(3, 6, 1)
    checker.on_vote(1, 6, 1)
    checker.on_leader(1, 6, Log(), (1, 2, 3))
    checker.on_leader(4, 7, Log(), (4,))           # a sole voter needs no vote
    checker.on_commit(1, 9, 2, (1, 2, 3))
    with pytest.raises(Violation, match="commit durability"):
        checker.on_commit(1, 10, 2, (1, 2, 3, 4, 5))


def test_quorum_checks_catch_a_core_that_counts_one_voter_short(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A core whose quorum is one short elects and commits in a minority: the
    cluster's checks say so (this is what they are for)."""
    from raftpy.core.state import RaftState
    real = RaftState._set_configuration

    def short(self: RaftState, conf: Any) -> None:
        real(self, conf)
        self._quorum = max(1, len(self._voters) // 2)

    monkeypatch.setattr(RaftState, "_set_configuration", short)
    with pytest.raises(Violation, match="without a quorum|commit durability|minority leader"):
        for seed in range(20):
            cluster = Cluster(5, seed=seed, network=Network(1, 10))
            cluster.partition([1, 2], [3, 4, 5])
            cluster.run_for(3_000)
            for server in list(cluster.servers.values()):
                if server.raft is not None and server.raft.state == State.LEADER:
                    cluster.propose(server.id, b"00000001")
            cluster.run_for(3_000)


def test_a_minority_leader_that_commits_is_caught() -> None:
    cluster = Cluster(5, seed=13, network=Network(1, 10))
    leader = elect(cluster)
    cluster.run_for(300)
    others = [i for i in cluster.servers if i != leader]
    cluster.partition([leader, others[0]], others[1:])
    assert cluster.minority.get(leader) is not None
    raft = cluster.raft(leader)
    cluster.propose(leader, b"00000001")
    raft.commit_index = raft.log.last_index  # a broken core's commit
    with pytest.raises(Violation, match="commit durability|minority leader"):
        cluster._check_commit(cluster.servers[leader], raft, cluster.checker)  # type: ignore[arg-type]


def test_disaster_recovery_the_documented_way() -> None:
    """A majority lost for good: nothing commits and nobody is elected; then
    raft_recover on one survivor, its data copied to the other, and the two
    form the cluster again with the survivor's log."""
    from raftpy.core.configuration import Configuration
    cluster = Cluster(5, seed=14, network=Network(1, 10), disk=Disk(1, 3))
    leader = elect(cluster)
    reqs = [cluster.propose(leader, b"%08d" % k) for k in range(5)]
    assert cluster.run_until(lambda: all(r.done for r in reqs), 2_000)
    survivors = [i for i in cluster.servers if i != leader][:2]
    for i in cluster.servers:
        if i not in survivors:
            cluster.lose(i)
    tops = {i: cluster.raft(i).commit_index for i in survivors}
    last = max(cluster.raft(i).log.last_index for i in survivors)
    for k in range(20):                       # clients keep asking; nobody can commit
        for i in survivors:
            cluster.propose(i, b"%08d" % (100 + k))
        cluster.run_for(500)
    for i in survivors:
        assert cluster.raft(i).state != State.LEADER
        assert cluster.raft(i).commit_index <= last
    for i in survivors:
        cluster.crash(i)
    best = max(survivors, key=lambda i: (cluster.servers[i].durable[-1].term,
                                         cluster.servers[i].offset
                                         + len(cluster.servers[i].durable)))
    conf = Configuration.of(*[(i, str(i)) for i in survivors])
    cluster.recover_from(best, conf)
    assert cluster.lost == set(cluster.servers) - set(survivors)
    for i in survivors:
        cluster.start(i)
    new = elect(cluster)
    assert new in survivors
    req = cluster.propose(new, b"00000099")
    assert cluster.run_until(lambda: req.done, 5_000) and req.error is None
    assert all(cluster.raft(i).last_applied >= min(tops.values()) for i in survivors)
    checker = cluster.checker
    assert checker is not None and checker.recoveries == 1
    assert checker.voters == frozenset(survivors)


def test_a_snapshot_ahead_of_the_log_on_disk_counts_as_holding_its_entries() -> None:
    """A leader applies what a quorum of followers stored before its own write is
    done, so its snapshot may cover entries its log on disk lacks (spec §2.6):
    the checkers must count those as held (a false alarm on seed 1405 of the
    first swarm version)."""
    from raftpy.core.types import Entry, EntryType
    checker = SafetyChecker()
    durable = [Entry(1, EntryType.COMMAND, b"a" * 8)] * 8      # entries 1..8 on disk
    checker.on_match(1, 2, 10, 2, durable, 0, covered=10)       # 10 is in its snapshot
    with pytest.raises(Violation, match="counts follower 2 at 10"):
        checker.on_match(1, 2, 10, 2, durable, 0)
