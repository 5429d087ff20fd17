"""Seeded random runs: faults, client load, safety after every step, liveness at the end.

May import: the standard library, ``raftpy.core`` and ``raftpy.testing``.
One seed decides everything (cluster size is the caller's): the network's
loss and duplication odds, disk write failure odds, pre-vote, the
flow-control window, whether a 5-server cluster has a standby, the snapshot
threshold, trailing and install timeout, how slow the state machine is to
snapshot, and a schedule of partitions (symmetric and one-way), heals,
crashes, restarts, transfers, barriers, membership changes (a new server
added and promoted to voter or standby, a server removed, a role changed)
and client proposals.  Some seeds also get slow state machines (servers
that take 1-20 ms of simulated time per command applied, their loop busy
meanwhile) and snapshots asked for at random moments on random servers
(``TakeSnapshot``); these draw from a second random stream, so seeds
without them run as they did before.  ``random_run`` raises ``Violation`` when a
safety property breaks, and ``LivenessError`` when, after every fault is
healed, no leader commits a new entry within ``LIVENESS_MS`` of simulated
time or some server fails to apply it, or when a server's state machine
differs from one that applied the committed prefix (snapshot consistency).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from raftpy.core.config import Config
from raftpy.core.configuration import Role
from raftpy.core.trace import Tracer
from raftpy.core.types import EntryType, State
from raftpy.testing.checkers import Violation
from raftpy.testing.cluster import ClientRequest, Cluster, DigestMachine, Disk, Network

__all__ = ["LivenessError", "RunReport", "random_run", "LIVENESS_MS"]

LIVENESS_MS = 60_000


class LivenessError(AssertionError):
    """The healed cluster did not make progress in time."""


@dataclass(frozen=True, slots=True)
class RunReport:
    seed: int
    servers: int
    steps: int
    sim_ms: int
    committed: int
    acked: int
    leaders: int
    snapshots: int = 0
    restores: int = 0
    changes: int = 0
    configurations: int = 0
    slow_servers: int = 0          # servers given an apply latency
    snapshot_requests: int = 0     # snapshots asked for at random moments


def _setup(seed: int, servers: int, tracer: Tracer | None) -> tuple[Cluster, random.Random]:
    rng = random.Random(seed ^ 0x5EED)
    config = Config(election_timeout_ms=1000, heartbeat_timeout_ms=100,
                    pre_vote=rng.random() < 0.5,
                    append_entries_max=rng.choice((4, 64, 65536)),
                    append_bytes_max=rng.choice((64, 1 << 20)),
                    snapshot_threshold=rng.choice((8, 32, 128, 1024)),
                    snapshot_trailing=rng.choice((0, 4, 64)),
                    install_snapshot_timeout_ms=rng.choice((500, 3000, 30000)),
                    max_catch_up_rounds=rng.choice((2, 10)),
                    max_catch_up_round_duration_ms=rng.choice((1500, 5000)))
    network = Network(min_latency_ms=1, max_latency_ms=rng.choice((5, 30, 120)),
                      loss=rng.choice((0.0, 0.01, 0.05, 0.1)),
                      duplicate=rng.choice((0.0, 0.01, 0.05)))
    slow = rng.choice(((1, 5), (1, 50), (200, 2000)))  # snapshotting state machine
    disk = Disk(min_latency_ms=1, max_latency_ms=rng.choice((2, 20)),
                failure=rng.choice((0.0, 0.0, 0.001, 0.01)), snapshot_latency_ms=slow)
    # Some larger clusters carry a standby (replicated to, never counted).
    voters = servers - 1 if servers >= 5 and rng.random() < 0.3 else servers
    cluster = Cluster(servers, seed, config=config, network=network, disk=disk,
                      voters=voters, tracer=tracer)
    return cluster, rng


def _fault(cluster: Cluster, rng: random.Random) -> None:
    ids = list(cluster.servers)
    alive = [i for i in ids if cluster.servers[i].alive]
    dead = [i for i in ids if not cluster.servers[i].alive]
    roll = rng.random()
    if roll < 0.2:
        cluster.heal()
    elif roll < 0.35:
        rng.shuffle(ids)
        cut = rng.randint(1, len(ids) - 1)
        cluster.partition(ids[:cut], ids[cut:])
    elif roll < 0.45:
        a, b = rng.sample(ids, 2)
        cluster.cut(a, b)
    elif roll < 0.6 and alive:
        cluster.crash(rng.choice(alive))
    elif roll < 0.8 and dead:
        cluster.start(rng.choice(dead))
    elif roll < 0.85:
        leader = cluster.leader()
        if leader is not None:
            cluster.transfer(leader.id, rng.choice([0] + ids))
    elif roll < 0.95:
        _membership(cluster, rng)
    else:
        leader = cluster.leader()
        if leader is not None:
            cluster.barrier(leader.id)


def _membership(cluster: Cluster, rng: random.Random) -> None:
    """One change through the leader: add a new server, promote or demote one,
    remove one (never below 2 voters).  Refusals (CantChangeError, ...) are
    part of the game."""
    leader = cluster.leader()
    if leader is None or leader.raft is None:
        return
    conf = leader.raft.configuration
    roll = rng.random()
    spares = [s.id for s in conf.servers if s.role == Role.SPARE]
    if roll < 0.35 and len(cluster.servers) < 8:
        cluster.add(leader.id, cluster.add_server())
    elif roll < 0.7 and spares:
        role = Role.VOTER if rng.random() < 0.7 else Role.STANDBY
        cluster.assign(leader.id, rng.choice(spares), role)
    elif roll < 0.85 and len(conf) > 0:
        server = rng.choice(conf.servers)
        if server.role != Role.VOTER or len(conf.voter_ids) > 2:
            cluster.assign(leader.id, server.id, rng.choice(list(Role)))
    elif len(conf) > 0:
        server = rng.choice(conf.servers)
        if server.role != Role.VOTER or len(conf.voter_ids) > 2:
            cluster.remove(leader.id, server.id)
    cluster.changes += 1


def _client(cluster: Cluster, rng: random.Random, counter: int) -> int:
    leader = cluster.leader()
    target = leader.id if leader is not None and rng.random() < 0.9 else rng.choice(
        list(cluster.servers))
    if not cluster.servers[target].alive:
        return counter
    n = 1 if rng.random() < 0.7 else rng.randint(2, 8)
    payloads = [b"%08d" % (counter + k) for k in range(n)]
    cluster.propose(target, *payloads)
    return counter + n


class _Extras:
    """Slow state machines and snapshots at random moments, for some seeds.

    Drawn from their own stream so that the main one (and every seed that
    gets neither) is unchanged.  A slow run gives each server, including
    those added later, an apply latency of 0, 1, 5 or 20 ms per command
    (at least one server is slow); a snapshotting run asks a random live
    server for a snapshot every 100-2000 ms."""

    __slots__ = ("rng", "latencies", "seen", "next_snapshot", "slow", "requests")

    def __init__(self, seed: int) -> None:
        rng = self.rng = random.Random(seed ^ 0x510E)
        self.latencies = (0, 1, 5, 20) if rng.random() < 0.3 else (0,)
        self.seen: set[int] = set()
        self.next_snapshot = rng.randint(200, 3000) if rng.random() < 0.4 else -1
        self.slow = self.requests = 0

    def __call__(self, cluster: Cluster) -> None:
        rng = self.rng
        if len(self.seen) < len(cluster.servers):
            for server in cluster.servers.values():
                if server.id not in self.seen:
                    self.seen.add(server.id)
                    latency = rng.choice(self.latencies)
                    if len(self.latencies) > 1 and server.id == 1 and not latency:
                        latency = 20  # a slow run has at least one slow machine
                    server.apply_latency_ms = latency
                    self.slow += latency > 0
        if 0 <= self.next_snapshot <= cluster.now:
            alive = [s.id for s in cluster.servers.values() if s.alive]
            if alive:
                cluster.take_snapshot(rng.choice(alive))
                self.requests += 1
            self.next_snapshot = cluster.now + rng.randint(100, 2000)


def random_run(seed: int, servers: int = 3, steps: int = 5000,
               tracer: Tracer | None = None) -> RunReport:
    """One seeded run; raises Violation or LivenessError, else returns a report."""
    cluster, rng = _setup(seed, servers, tracer)
    extras = _Extras(seed)
    counter = 0
    next_client = rng.randint(0, 300)
    next_fault = rng.randint(500, 3000)
    while cluster.steps < steps:
        extras(cluster)
        if cluster.now >= next_client:
            counter = _client(cluster, rng, counter)
            next_client = cluster.now + rng.randint(5, 250)
        if cluster.now >= next_fault:
            _fault(cluster, rng)
            next_fault = cluster.now + rng.randint(100, 3000)
        if not cluster.step():
            cluster.now += 100  # everything is down: let time pass
    _check_liveness(cluster, counter)
    checker = cluster.checker
    assert checker is not None
    return RunReport(seed, servers, cluster.steps, cluster.now, len(checker.committed),
                     len(checker.acked), len(checker.leaders), len(checker.snapshots),
                     checker.restores, cluster.changes, checker.configurations,
                     extras.slow, extras.requests)


def _done(req: ClientRequest | None) -> Callable[[], bool]:
    return lambda: req is not None and req.done


def _check_liveness(cluster: Cluster, counter: int) -> None:
    """Heal everything; a leader must commit a new entry and every server apply it."""
    cluster.heal()
    cluster.network = Network(cluster.network.min_latency_ms, cluster.network.max_latency_ms)
    cluster.disk = Disk(cluster.disk.min_latency_ms, cluster.disk.max_latency_ms)
    for server in cluster.servers.values():
        if server.raft is not None and server.raft.state == State.UNAVAILABLE:
            cluster.crash(server.id)  # a fatal disk error: the operator restarts it
        if not server.alive:
            cluster.start(server.id)
    deadline = cluster.now + LIVENESS_MS
    req: ClientRequest | None = None
    while cluster.now < deadline:
        if req is not None and req.done and req.error is None:
            break
        if req is None or req.done:
            req = None
            leader = cluster.leader()
            if leader is not None and leader.raft is not None and leader.raft.leader_id:
                req = cluster.propose(leader.id, b"%08d" % counter)
        cluster.run_until(_done(req), 50)
    if req is None or not req.done or req.error is not None:
        raise LivenessError(f"no entry committed {LIVENESS_MS} ms after healing "
                            f"(t={cluster.now})")
    index = req.index
    raft = cluster.servers[req.server_id].raft
    assert raft is not None
    # Every server the leader replicates to (spares and removed servers are not).
    members = [cluster.servers[s.id] for s in raft.configuration.servers
               if s.role != Role.SPARE]
    if not cluster.run_until(lambda: all(
            s.raft is not None and s.raft.last_applied >= index
            for s in members), 2 * LIVENESS_MS):
        raise LivenessError(f"not every server applied {index} after healing")
    _check_machines(cluster)
    checker = cluster.checker
    assert checker is not None
    top = max(checker.acked, default=0)
    if top > index:
        raise LivenessError(f"acknowledged entry {top} beyond the final one {index}")


def _check_machines(cluster: Cluster) -> None:
    """Each server's state machine equals one that applied the committed prefix."""
    checker = cluster.checker
    assert checker is not None
    wanted = sorted({s.raft.last_applied for s in cluster.servers.values()
                     if s.raft is not None and isinstance(s.machine, DigestMachine)})
    reference = DigestMachine()
    states = {0: reference.snapshot()}
    position = 0
    for index in wanted:
        for k in range(position, index):
            entry = checker.committed[k]
            if entry.type == EntryType.COMMAND:
                reference.apply(k + 1, entry.payload)
        position = index
        states[index] = reference.snapshot()
    for server in cluster.servers.values():
        if server.raft is not None and isinstance(server.machine, DigestMachine):
            if server.machine.snapshot() != states[server.raft.last_applied]:
                raise Violation(f"server {server.id}'s state machine differs from the "
                                f"committed prefix up to {server.raft.last_applied}")
