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
