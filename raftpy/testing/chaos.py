"""Seeded swarm runs: faults, client load, safety after every step, tight liveness at the end.

May import: the standard library, ``raftpy.core`` and ``raftpy.testing``.
One seed decides everything (cluster size is the caller's).  Like swarm
testing, each seed first draws which features it has (``Swarm``: each on or
off), so that a feature is tested both alone and together with others, and
faults that mask each other are sometimes apart:

* long message holds (a link stalled for 2-5 election timeouts);
* transfers racing check-quorum (the leader cut off just after a transfer);
* snapshots sent into partitions (the link cut as an InstallSnapshot leaves);
* slow disks (servers with their own, slow, disk);
* membership changes (add, promote, demote, remove);
* log write failures, term/vote write failures (the server becomes
  UNAVAILABLE and is restarted later), send failures (messages to crashed
  servers refused, some over cut links reported), torn writes at a crash;
* slow state machines (1-20 ms per command; the loop is busy meanwhile) and
  snapshots asked for at random moments;
* a disaster: a majority of the voters lost for good, checked to elect and
  commit nothing, then recovered the documented way (raft_recover on the
  most up-to-date survivor, its data copied to the others).

Always on: message loss and duplication odds, pre-vote or not, flow-control
windows, snapshot thresholds, partitions (symmetric and one-way), crashes,
restarts, transfers, barriers and client proposals.  Every step is checked
(checkers.py, and the cluster's quorum checks).  During the run a transfer
to "any voter" must not pick a voter the leader had every chance to learn
was dead.  At the end everything is healed and liveness has tight bounds
(``Bounds``): a request commits within a few election timeouts, and each
member then catches up within a bound computed from the seed's latencies,
windows and lag (a few heartbeats for a short lag); every state machine
must equal a replay of the committed prefix.  ``random_run`` raises
``Violation`` (safety) or ``LivenessError``.  Seeds with ``seed // 2`` odd
also step each free server's events of one simulated ms in one step_all
(``Cluster.batch_same_ms``), as one iteration of the Server's loop does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from raftpy.core.config import Config
from raftpy.core.configuration import Configuration, Role
from raftpy.core.messages import InstallSnapshot, Message
from raftpy.core.raft import Raft
from raftpy.core.trace import Tracer
from raftpy.core.types import EntryType, State
from raftpy.testing.checkers import Violation
from raftpy.testing.cluster import ClientRequest, Cluster, DigestMachine, Disk, Network, SimServer

__all__ = ["LivenessError", "RunReport", "Swarm", "Bounds", "random_run"]


class LivenessError(AssertionError):
    """The healed cluster did not make progress in time."""


@dataclass(frozen=True, slots=True)
class Swarm:
    """The features one seed has (each drawn on or off)."""

    holds: bool = False
    transfer_races: bool = False
    snapshot_partitions: bool = False
    slow_disks: bool = False
    membership: bool = False
    write_failures: bool = False
    term_vote_failures: bool = False
    send_failures: bool = False
    torn_writes: bool = False
    slow_machines: bool = False
    snapshot_requests: bool = False
    disaster: bool = False

    @classmethod
    def draw(cls, seed: int) -> Swarm:
        rng = random.Random(seed ^ 0x5A4A)
        on = {f.name: rng.random() < 0.5 for f in fields(cls)}
        on["disaster"] = rng.random() < 0.15  # heavy: rarer
        return cls(**on)

    def names(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]


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
    features: tuple[str, ...] = ()
    send_failures: int = 0         # SendFailed events the cluster reported
    torn_crashes: int = 0          # crashes that kept part of the writes in flight
    hard_state_failures: int = 0
    recoveries: int = 0
    commit_ms: int = 0             # from the healed, quiet cluster to the request applied
    catch_up_ratio: float = 0.0    # worst member: time taken / its bound


def _setup(seed: int, servers: int, swarm: Swarm, tracer: Tracer | None,
           libraft: frozenset[int] = frozenset()) -> tuple[Cluster, random.Random]:
    rng = random.Random(seed ^ 0x5EED)
    T = 1000  # election timeout
    config = Config(election_timeout_ms=T, heartbeat_timeout_ms=100,
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
    if swarm.holds:
        network = replace(network, hold=rng.choice((0.002, 0.01, 0.03)),
                          hold_ms=(2 * T, 5 * T))
    if swarm.send_failures:
        network = replace(network, refused=rng.choice((1.0, 1.0, 0.5)),
                          cut_failure=rng.choice((0.3, 1.0)))
    slow = rng.choice(((1, 5), (1, 50), (200, 2000)))  # snapshotting state machine
    disk = Disk(min_latency_ms=1, max_latency_ms=rng.choice((2, 20)),
                failure=rng.choice((0.001, 0.01)) if swarm.write_failures else 0.0,
                snapshot_latency_ms=slow,
                hard_state_failure=(rng.choice((0.002, 0.02)) if swarm.term_vote_failures
                                    else 0.0),
                torn=swarm.torn_writes)
    # Some larger clusters carry a standby (replicated to, never counted).
    voters = servers - 1 if servers >= 5 and rng.random() < 0.3 else servers
    # Half the seeds (both sizes) step each free server's events of one ms in
    # one step_all, as the Server drains a loop iteration; decided by the seed
    # alone, so the other half replay exactly as before.
    cluster = Cluster(servers, seed, config=config, network=network, disk=disk,
                      voters=voters, tracer=tracer, libraft=libraft,
                      batch_same_ms=seed // 2 % 2 == 1)
    return cluster, rng


class _Run:
    """The state of one run: its streams, its scheduled actions, its checks."""

    def __init__(self, seed: int, servers: int, tracer: Tracer | None,
                 libraft: frozenset[int] = frozenset()) -> None:
        self.swarm = swarm = Swarm.draw(seed)
        self.cluster, self.rng = _setup(seed, servers, swarm, tracer, libraft)
        # Features draw from their own stream: the main one stays comparable.
        self.frng = random.Random(seed ^ 0x510E)
        self.latencies = (0, 1, 5, 20) if swarm.slow_machines else (0,)
        self.seen: set[int] = set()
        self.next_snapshot = self.frng.randint(200, 3000) if swarm.snapshot_requests else -1
        self.later: list[tuple[int, Callable[[], None]]] = []
        self.disaster_at = -1
        if swarm.disaster:
            self.disaster_at = self.frng.randint(1000, 3500)  # in steps
        if swarm.snapshot_partitions:
            self.cluster.on_send = self._snapshot_into_partition

    # -- per-server features, for servers as they appear ------------------------

    def new_servers(self) -> None:
        cluster, frng = self.cluster, self.frng
        if len(self.seen) == len(cluster.servers):
            return
        for server in cluster.servers.values():
            if server.id in self.seen:
                continue
            self.seen.add(server.id)
            latency = frng.choice(self.latencies)
            if len(self.latencies) > 1 and server.id == 1 and not latency:
                latency = 20  # a slow run has at least one slow machine
            server.apply_latency_ms = latency
            if self.swarm.slow_disks and (server.id == 2 or frng.random() < 0.3):
                lo = frng.choice((20, 50))
                server.disk = replace(cluster.disk, min_latency_ms=lo,
                                      max_latency_ms=lo * frng.choice((2, 6)))

    def _snapshot_into_partition(self, from_id: int, to_id: int, message: Message) -> None:
        if isinstance(message, InstallSnapshot) and self.frng.random() < 0.5:
            self.cluster.cut(from_id, to_id)
            self.cluster.cut(to_id, from_id)

    # -- the schedule ----------------------------------------------------------------

    def tick(self) -> None:
        cluster = self.cluster
        self.new_servers()
        if 0 <= self.next_snapshot <= cluster.now:
            alive = [s.id for s in cluster.servers.values() if s.alive]
            if alive:
                cluster.take_snapshot(self.frng.choice(alive))
            self.next_snapshot = cluster.now + self.frng.randint(100, 2000)
        if self.later and self.later[0][0] <= cluster.now:
            _when, action = self.later.pop(0)
            action()
        if 0 <= self.disaster_at <= cluster.steps:
            self.disaster_at = -1
            _disaster(self)

    def fault(self) -> None:
        cluster, rng = self.cluster, self.rng
        ids = list(cluster.servers)
        up = [i for i in ids if cluster.servers[i].alive and i not in cluster.lost]
        down = [i for i in ids if (not cluster.servers[i].alive
                                   or cluster.raft(i).state == State.UNAVAILABLE)
                and i not in cluster.lost]
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
        elif roll < 0.6 and up:
            cluster.crash(rng.choice(up))
        elif roll < 0.8 and down:
            server_id = rng.choice(down)
            cluster.crash(server_id)  # an UNAVAILABLE one is restarted by its operator
            cluster.start(server_id)
        elif roll < 0.85:
            leader = cluster.leader()
            if leader is not None:
                self.transfer(leader, rng.choice([0] + ids))
        elif roll < 0.95:
            if self.swarm.membership:
                _membership(cluster, rng)
        else:
            leader = cluster.leader()
            if leader is not None:
                cluster.barrier(leader.id)

    def transfer(self, leader: SimServer, target: int) -> None:
        cluster = self.cluster
        cluster.transfer(leader.id, target)
        if target == 0:
            self.check_transfer_target(leader)
        if self.swarm.transfer_races and self.frng.random() < 0.7:
            # The leader is cut off from the others a moment later: its
            # check-quorum, the target's campaign and the others' timers race.
            delay = self.frng.randint(0, cluster.config.election_timeout_ms)
            others = [i for i in cluster.servers if i != leader.id]
            keep = self.frng.sample(others, self.frng.randint(0, 1))
            self.later.append((cluster.now + delay,
                               lambda: cluster.partition([leader.id, *keep])))
            self.later.sort(key=lambda item: item[0])

    def check_transfer_target(self, leader: SimServer) -> None:
        """A transfer to any voter must not go to a voter the leader had every
        chance to learn was dead (its sends refused, issue 8 A8), while another
        voter it has been talking to undisturbed is there to take over."""
        cluster = self.cluster
        raft = leader.raft
        net = cluster.network
        if raft is None or raft.transfer is None or net.refused < 1.0:
            return
        target = cluster.servers[raft.transfer.target_id]
        config = cluster.config
        # Long enough for a heartbeat to go out and its refusal to come back,
        # and for anything the target sent before it died to have arrived.
        settle = (config.heartbeat_timeout_ms + 3 * net.max_latency_ms
                  + (net.hold_ms[1] if net.hold else 0))
        now = cluster.now
        if target.alive or now - target.since < settle or now - leader.since < settle:
            return
        blocked = cluster.blocked
        if now - cluster.links_changed < settle or (leader.id, target.id) in blocked:
            return  # over a cut link a refusal is reported only at cut_failure odds
        for voter in raft._voters:
            other = cluster.servers[voter]
            if (voter != leader.id and other.alive and now - other.since >= settle
                    and (voter, leader.id) not in blocked and (leader.id, voter) not in blocked
                    and other.raft is not None and other.raft.state != State.UNAVAILABLE):
                raise LivenessError(f"transfer to any voter picked {target.id}, dead since "
                                    f"{target.since}, over {voter} (t={now})")


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


def _last_entry(server: SimServer) -> tuple[int, int]:
    """(term, index) of the last entry on server's disk."""
    index = server.offset + len(server.durable)
    if server.durable:
        return server.durable[-1].term, index
    return (server.snapshot.term if server.snapshot is not None else 0), index


def _disaster(run: _Run) -> None:
    """A quorum of the voters is lost for good (a majority of them, or half of
    an even number: one survives).  With the network healed and
    every survivor up, for six election timeouts of client load nobody may be
    elected and nothing appended since may commit (the cluster's quorum checks
    watch every step too); then recover the documented way."""
    cluster, frng = run.cluster, run.frng
    survivors = [s for s in cluster.servers.values() if s.id not in cluster.lost]
    best = max(survivors, key=_last_entry)
    raft = best.raft
    if raft is None:  # down: read its configuration the way it will load it
        cluster.start(best.id)
        raft = best.raft
    assert raft is not None
    conf = raft.configuration
    voters = list(conf.voter_ids)
    if len(voters) < 2:
        return
    # Enough voters that no quorum is left, but one survives: of the
    # configuration of the most up-to-date log, and of every configuration a
    # survivor could still count votes in (its latest and its committed one:
    # with a change uncommitted, servers on the old one may elect).
    lost = set(frng.sample(voters, len(voters) - len(voters) // 2))
    confs = [conf] + [c for s in cluster.servers.values() if s.raft is not None
                      and s.id not in cluster.lost
                      for c in (s.raft.configuration, s.raft.configuration_committed)]
    for c in confs:
        alive = [v for v in c.voter_ids if v not in lost]
        while alive and len(alive) >= len(c.voter_ids) // 2 + 1:
            lost.add(alive.pop(frng.randrange(len(alive))))
    # Servers that vote in none of them go too: a promotion under way would
    # otherwise give the survivors a quorum again, legitimately (single-server
    # changes: {1,3} with 1 lost becomes {1,2,3}, whose majority {2,3} commits).
    anywhere = {v for c in confs for v in c.voter_ids}
    lost |= {s.id for s in cluster.servers.values() if s.id not in anywhere}
    if all(s.id in lost or s.id in cluster.lost for s in cluster.servers.values()):
        return  # nobody would survive
    # A campaign begun before the loss may still win with votes granted
    # before it; none begun after may (nor may an entry appended after commit).
    checker = cluster.checker
    assert checker is not None
    terms = max([s.raft.current_term for s in cluster.servers.values()
                 if s.raft is not None] + list(checker.leaders))
    for server_id in sorted(lost):
        cluster.lose(server_id)
    cluster.heal()
    for server in cluster.servers.values():
        if server.id not in cluster.lost and not server.alive:
            cluster.start(server.id)
    checker = cluster.checker
    assert checker is not None
    tops = max([s.raft.log.last_index for s in cluster.servers.values()
                if s.raft is not None], default=0)
    for _ in range(60):
        for server in cluster.servers.values():
            if server.alive and server.raft is not None:
                cluster.propose(server.id, b"disaster")
        cluster.run_for(100)
    for server in cluster.servers.values():
        r = server.raft
        if r is None:
            continue
        if r.commit_index > tops:
            raise Violation(f"server {server.id} commits {r.commit_index} without a "
                            f"quorum: {sorted(lost)} are lost, the log ended at {tops}")
    if max(checker.leaders, default=0) > terms:
        raise Violation(f"a leader was elected in term {max(checker.leaders)} with "
                        f"{sorted(lost)} lost (voters {sorted(voters)})")
    # Recovery: stop everyone, raft_recover on the most up-to-date survivor
    # (what the operator should pick), copy its data to the rest.
    members = [s for s in cluster.servers.values() if s.id not in cluster.lost]
    for server in cluster.servers.values():
        cluster.crash(server.id)
    best = max((cluster.servers[s.id] for s in members), key=_last_entry)
    recovered = Configuration.of(*[(s.id, s.address, Role.VOTER) for s in members])
    cluster.recover_from(best.id, recovered)
    for s in members:
        cluster.start(s.id)


def random_run(seed: int, servers: int = 3, steps: int = 5000,
               tracer: Tracer | None = None,
               libraft: frozenset[int] = frozenset()) -> RunReport:
    """One seeded run; raises Violation or LivenessError, else returns a report.

    ``libraft``: ids of servers that answer as libraft followers do
    (raftpy/testing/libraft_follower.py), for a mixed cluster."""
    run = _Run(seed, servers, tracer, libraft)
    cluster, rng = run.cluster, run.rng
    counter = 0
    next_client = rng.randint(0, 300)
    next_fault = rng.randint(500, 3000)
    while cluster.steps < steps:
        run.tick()
        if cluster.now >= next_client:
            counter = _client(cluster, rng, counter)
            next_client = cluster.now + rng.randint(5, 250)
        if cluster.now >= next_fault:
            run.fault()
            next_fault = cluster.now + rng.randint(100, 3000)
        if not cluster.step():
            cluster.now += 100  # everything is down: let time pass
    commit_ms, ratio = _check_liveness(run, counter)
    checker = cluster.checker
    assert checker is not None
    return RunReport(seed, servers, cluster.steps, cluster.now, checker.last_committed,
                     len(checker.acked), len(checker.leaders), len(checker.snapshots),
                     checker.restores, cluster.changes, checker.configurations,
                     tuple(run.swarm.names()), cluster.send_failures, cluster.torn_crashes,
                     cluster.hard_state_failures, checker.recoveries, commit_ms, ratio)


@dataclass(frozen=True, slots=True)
class Bounds:
    """How long a healed, quiet cluster may honestly take (all in ms).

    ``commit``: from quiet to a new request applied on the leader.  Elections
    may be needed: each round waits at most 2T for a timer, costs two round
    trips (pre-vote and vote) and a term/vote write; split votes may take a
    few rounds; a busy server (a slow state machine working off its entries)
    holds its timers and messages meanwhile, and a leader whose followers
    lag must first get its log to a quorum of them (``catch_up`` for the
    quorum's slowest): that is ``backlog``.  "A few election timeouts": 8 T
    plus the backlog.

    ``catch_up(lag, rounds, commands)``: from the commit to a member having
    applied it, for a member ``lag`` entries behind that the leader's flow
    control sends in ``rounds`` windows: a heartbeat for the leader to
    probe, two round trips to find where the member's log ends, another
    heartbeat and round trip if it needs a snapshot (and one more heartbeat
    to probe after it), then one round trip per window, and the member's
    state machine applying ``commands`` at its speed, plus whatever the
    leader and the member were still busy with; half again for the ways
    these queue behind each other (a message waiting for a busy loop, a
    write behind another).  A round trip is two network latencies and a
    disk write.  Nothing here waits for
    install_snapshot_timeout_ms: that a snapshot is lost silently is not
    in a healed cluster's nature."""

    heartbeat_ms: int
    election_ms: int
    net_ms: int
    disk_ms: int
    backlog_ms: int

    @property
    def round_trip_ms(self) -> int:
        return 2 * self.net_ms + self.disk_ms

    @property
    def commit(self) -> int:
        return 8 * self.election_ms + 4 * self.round_trip_ms + self.backlog_ms

    def catch_up(self, rounds: int, commands: int, apply_ms: int, disk_ms: int,
                 leader_busy_ms: int) -> int:
        rtt = 2 * self.net_ms + disk_ms
        work = (3 * self.heartbeat_ms + (4 + rounds) * rtt + commands * apply_ms
                + leader_busy_ms)
        return work * 3 // 2  # the parts overlap and queue in ways a sum misses


def _catch_up_limits(bounds: Bounds, cluster: Cluster, leader: SimServer,
                     members: dict[int, SimServer], index: int) -> dict[int, int]:
    """Each member's catch-up bound, as of now, from leader's log."""
    raft = leader.raft
    assert raft is not None
    now = cluster.now
    leader_busy = max(0, leader.busy_until - now)
    limits = {}
    for member in members.values():
        r = member.raft
        assert r is not None
        if member is leader:
            limits[member.id] = bounds.commit  # it leads now: it commits, not catches up
            continue
        disk = member.disk or cluster.disk
        # what it applies: its own entries, then the leader's
        mine = min(r.log.last_index, index)
        commands = (_commands(r, r.last_applied + 1, mine)
                    + _commands(raft, max(mine, r.last_applied) + 1, index))
        # A divergent tail is probed one index per round trip (libraft's
        # rule: next_index = min(rejected, last_log_index + 1)).
        # The leader streams from what it knows the member has (a member only
        # acknowledges what a message covered, even if it has more).
        match = _last_match(raft, r)
        p = raft.progress.get(member.id)
        known = min(match, p.match_index) if p is not None else 0
        limits[member.id] = bounds.catch_up(
            _windows(raft, known + 1, index) + r.last_stored - match, commands,
            member.apply_latency_ms, disk.max_latency_ms,
            leader_busy + max(0, member.busy_until - now))
        # Its disk first works off the writes already queued, one at a time.
        limits[member.id] += len(member.writes) * disk.max_latency_ms
        # A member taking a snapshot installs the leader's once its own is
        # taken; a snapshot lost on its way is sent again at the first refusal
        # an election timeout after it (replication.py _maybe_decrement).
        limits[member.id] += disk.snapshot_latency_ms[1] + raft.config.election_timeout_ms
    return limits


def _last_match(leader: Raft, member: Raft) -> int:
    """The last index where member's log agrees with leader's, as far as both know."""
    index = min(member.last_stored, leader.log.last_index)
    while index > max(member.log.offset, leader.log.offset):
        if member.log.term_of(index) == leader.log.term_of(index):
            break
        index -= 1
    return index


def _windows(raft: Raft, first: int, last: int) -> int:
    """How many flow-control windows the leader needs to send first..last
    (trigger_all: a window holds at most append_entries_max entries and is
    full once its payload bytes reach append_bytes_max)."""
    config = raft.config
    log = raft.log
    first = max(first, log.offset + 1)
    windows = count = size = 0
    for index in range(first, last + 1):
        entry = log.get(index)
        if count == 0:
            windows += 1
        count += 1
        size += len(entry.payload) if entry is not None else 8
        if count >= config.append_entries_max or size >= config.append_bytes_max:
            count = size = 0
    return windows


def _commands(raft: Raft, first: int, last: int) -> int:
    """COMMAND entries first..last in raft's log (compacted ones count as commands)."""
    log = raft.log
    known = max(first, log.offset + 1)
    return (max(0, min(known, last + 1) - first)
            + sum(1 for i in range(known, last + 1)
                  if (e := log.get(i)) is not None and e.type == EntryType.COMMAND))


def _done(req: ClientRequest | None) -> Callable[[], bool]:
    return lambda: req is not None and req.done


def _heal(cluster: Cluster) -> None:
    """Every fault ends: links, odds of loss and failure, servers down."""
    cluster.heal()
    cluster.on_send = None
    net = cluster.network
    cluster.network = Network(net.min_latency_ms, net.max_latency_ms)
    disk = cluster.disk
    cluster.disk = Disk(disk.min_latency_ms, disk.max_latency_ms,
                        snapshot_latency_ms=disk.snapshot_latency_ms)
    for server in cluster.servers.values():
        if server.disk is not None:
            server.disk = Disk(server.disk.min_latency_ms, server.disk.max_latency_ms,
                               snapshot_latency_ms=server.disk.snapshot_latency_ms)
        if server.id in cluster.lost:
            continue
        if server.raft is not None and server.raft.state == State.UNAVAILABLE:
            cluster.crash(server.id)  # a fatal disk error: the operator restarts it
        if not server.alive:
            cluster.start(server.id)


def _check_liveness(run: _Run, counter: int) -> tuple[int, float]:
    """Heal everything; a leader must commit a new entry within Bounds.commit and
    every member apply it within its Bounds.catch_up.  Returns the time the
    commit took and the worst member's catch-up time over its bound."""
    cluster = run.cluster
    _heal(cluster)
    # Messages held before the heal still arrive: the cluster is quiet after.
    cluster.run_for(cluster.last_delivery() - cluster.now)
    config = cluster.config
    disks = [cluster.disk] + [s.disk for s in cluster.servers.values() if s.disk is not None]
    top = max(s.raft.log.last_index for s in cluster.servers.values() if s.raft is not None)
    backlog = 0
    for server in cluster.servers.values():
        if server.raft is not None and server.apply_latency_ms:
            # still applying what it was handed, then what it has yet to apply
            backlog = max(backlog, max(0, server.busy_until - cluster.now)
                          + server.apply_latency_ms * _commands(
                              server.raft, server.raft.last_applied + 1, top))
    bounds = Bounds(config.heartbeat_timeout_ms, config.election_timeout_ms,
                    cluster.network.max_latency_ms, max(d.max_latency_ms for d in disks),
                    backlog)
    # A leader with entries its followers lack first gets them to a quorum.
    best = max((s for s in cluster.servers.values() if s.raft is not None),
               key=_last_entry)
    assert best.raft is not None
    voters = [cluster.servers[v] for v in best.raft._voters
              if v != best.id and v in cluster.servers and cluster.servers[v].raft is not None]
    if voters:
        costs = sorted(_catch_up_limits(bounds, cluster, best, {v.id: v for v in voters},
                                        best.raft.log.last_index).values())
        if best.id in best.raft._voters:
            extra = costs[min(best.raft._quorum - 1, len(costs)) - 1]
        else:
            # it leads until its removal commits; then a voter, once it caught
            # up, brings the others (costs as seen from best: close enough)
            extra = costs[0] + costs[min(best.raft._quorum, len(costs)) - 1]
        bounds = replace(bounds, backlog_ms=backlog + extra)
    start = cluster.now
    deadline = start + bounds.commit
    req: ClientRequest | None = None
    while cluster.now < deadline:
        if req is not None and req.done and req.error is None:
            break
        if req is None or req.done:
            req = None
            leader = cluster.leader()
            if leader is not None and leader.raft is not None and leader.raft.leader_id:
                req = cluster.propose(leader.id, b"%08d" % counter)
        cluster.run_until(_done(req), min(50, deadline - cluster.now))
    if req is None or not req.done or req.error is not None:
        leader = cluster.leader()
        raise LivenessError(f"no entry committed {bounds.commit} ms after healing "
                            f"(t={start}..{cluster.now}, leader "
                            f"{leader.raft if leader is not None else None})")
    committed_at = cluster.now
    index = req.index
    raft = cluster.servers[req.server_id].raft
    assert raft is not None
    # Every server the leader replicates to (spares and removed servers are not).
    members = [cluster.servers[s.id] for s in raft.configuration.servers
               if s.role != Role.SPARE and s.id != raft.id]
    worst = 0.0
    pending = {m.id: m for m in members}
    limits: dict[int, int] = {}
    anchor = -1
    while pending:
        leader = cluster.leader()
        if leader is not None and leader.raft is not None and leader.since != anchor:
            # Measured from the commit, or from the election of the leader that
            # has to do the work (a server back with a higher term may force
            # one: without pre-vote, its refusals depose the leader).
            anchor = leader.since
            limits = _catch_up_limits(bounds, cluster, leader, pending, index)
            if leader.id != req.server_id:
                # a new leader commits an entry of its own term first
                limits = {i: limit + bounds.commit for i, limit in limits.items()}
        now = cluster.now
        start_at = max(committed_at, anchor)
        for server_id, member in list(pending.items()):
            r = member.raft
            assert r is not None
            if r.last_applied >= index and member.busy_until <= now:
                if leader is not None and server_id in limits:
                    worst = max(worst, (now - start_at) / limits[server_id])
                del pending[server_id]
                continue
            late = ((leader is not None and now - start_at > limits.get(server_id, 0))
                    or now - committed_at > bounds.commit + max(limits.values(), default=0))
            if late or not cluster.step():
                view = leader.raft.progress.get(server_id) if leader and leader.raft else None
                raise LivenessError(
                    f"server {server_id} has not applied {index} {now - start_at} ms after "
                    f"it committed or its leader was elected (bound "
                    f"{limits.get(server_id)} ms): {r}, leader "
                    f"{leader.id if leader else None}'s view {view}")
    _check_machines(cluster)
    checker = cluster.checker
    assert checker is not None
    top_acked = max(checker.acked, default=0)
    if top_acked > index:
        raise LivenessError(f"acknowledged entry {top_acked} beyond the final one {index}")
    return committed_at - start, worst


def _check_machines(cluster: Cluster) -> None:
    """Each server's state machine equals one that applied the committed prefix."""
    checker = cluster.checker
    assert checker is not None
    wanted = sorted({s.raft.last_applied for s in cluster.servers.values()
                     if s.raft is not None and isinstance(s.machine, DigestMachine)})
    reference = DigestMachine()
    if checker.base:
        reference.restore(checker.base_data)
    states = {checker.base: reference.snapshot()}
    position = checker.base
    for index in wanted:
        for i in range(position + 1, index + 1):
            entry = checker.committed_entry(i)
            assert entry is not None, i
            if entry.type == EntryType.COMMAND:
                reference.apply(i, entry.payload)
        position = max(position, index)
        states[index] = reference.snapshot()
    for server in cluster.servers.values():
        if server.raft is not None and isinstance(server.machine, DigestMachine):
            if server.machine.snapshot() != states[server.raft.last_applied]:
                raise Violation(f"server {server.id}'s state machine differs from the "
                                f"committed prefix up to {server.raft.last_applied}")
