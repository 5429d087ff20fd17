"""A deterministic simulated cluster: servers, a clock, a network and disks.

May import: the standard library, ``raftpy.errors``, ``raftpy.core`` and
``raftpy.testing``.
Everything random comes from one ``random.Random(seed)``, so a seed replays a
run exactly.  Rules the simulation keeps (they are the shell's duties, see
raftpy/core/update.py):

* term and vote are durable at once (before any message leaves), unless
  that write fails (``Disk.hard_state_failure``): then the core hears
  ``HardStateFailed`` at once and nothing of that Update is written or sent;
* log writes complete in order after a disk latency (each server may have
  its own ``Disk``: a slow disk on one server) and only then are reported
  with ``Persisted``; a crash loses every write not yet complete, or, with
  ``Disk.torn``, keeps an entry-aligned prefix of them (what a real disk may
  leave: never less than was acknowledged, maybe more, loaded at restart);
* messages are delayed by a network latency, and may be lost, duplicated,
  held for long (``Network.hold``), reordered, or cut by partitions
  (symmetric or one-way) at send or delivery; a message sent to a crashed
  server or over a cut link is, with ``Network.refused``/``cut_failure``
  odds, reported back to its sender with ``SendFailed`` (a connection
  refused or down) instead of vanishing;
* the checkers of checkers.py run on every Update;
* a snapshot asked for (``Update.take_snapshot``) is captured from the state
  machine at once and becomes durable after ``snapshot_latency_ms`` (a slow
  state machine), without holding back log writes; the disk then keeps only
  ``snapshot_trailing`` entries before it.  A snapshot to install is a disk
  write queued behind the others (a crash before it completes loses it);
  then the state machine is restored from it.  ``take_snapshot`` asks a
  server for one at once (``TakeSnapshot``), whatever the threshold.
* a slow state machine: a server with ``apply_latency_ms`` spends that
  much simulated time per command it applies.  The shell applies every
  Update before stepping the core again (update.py), so the server's loop is
  busy: results are reported at once, but every event that reaches the server
  until ``busy_until`` (messages, timers, disk completions, client requests)
  waits, in order, and its applies lag the cluster's commits.  When the loop
  is free again, the events it held are stepped in one ``step_all``, as the
  Server drains what arrived meanwhile: one Update for all of them (this
  found a snapshot labelled with an index below what its state machine had
  applied).  Manual mode ignores it.  With ``batch_same_ms`` a free server's
  events of one simulated ms (messages, timer, completions, send failures)
  are stepped together too, as one iteration of the Server's loop would.
* servers can be added (empty state) and given to the leader with
  ``add``/``assign``/``remove``; ``recover`` forces a configuration on a
  stopped server (raft_recover); ``lose`` stops a server for good and
  ``recover_from`` runs the documented disaster recovery (raft_recover on
  one survivor, its data directory copied to the others); ``pause`` stops a
  server's loop for a while (SIGSTOP) and resumes it I/O first;
* beyond checkers.py the cluster checks what only it can see: a leader won
  its term with durable votes of a quorum of its configuration, an index a
  leader commits is durable on a quorum of its voters, and a leader cut
  off from a majority of its voters (``partition``/``cut``) commits nothing
  it appended after the cut.

Two ways to drive it: ``run``/``step`` pop the earliest pending event (a
timer, a disk completion or a message delivery; ties: timer, disk, network,
lower server id first, as libraft's fixture); or ``manual=True``, where
nothing happens unless asked (``deliver``, ``persist``, ``tick``), which is
what transcript tests use.  Library users can plug their own state machine
(anything with ``apply(index, payload) -> result``) per server::

    cluster = Cluster(3, seed=42, machine=MyMachine, network=Network(1, 20, loss=0.01))
    cluster.run_until(lambda: cluster.leader() is not None, 10_000)
    req = cluster.propose(cluster.leader().id, b"set x=1.")
    cluster.run_until(lambda: req.done, 5_000)      # req.result: MyMachine's answer
    cluster.partition([1], [2, 3]); cluster.crash(2); cluster.start(2); cluster.heal()

A machine that should take part in snapshots also has ``snapshot() -> bytes``
and ``restore(data)``; without them snapshots are skipped (as libraft does
when the state machine reports RAFT_BUSY).
"""

from __future__ import annotations

import heapq
import random
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from raftpy.core.config import Config
from raftpy.core.configuration import Configuration, Role
from raftpy.core.events import (
    Add,
    Assign,
    Barrier,
    Close,
    Event,
    HardStateFailed,
    Persisted,
    PersistFailed,
    Propose,
    Read,
    Receive,
    Remove,
    SendFailed,
    SnapshotInstalled,
    SnapshotTaken,
    Start,
    TakeSnapshot,
    Tick,
    Transfer,
)
from raftpy.core.membership import bootstrap, recover_entry
from raftpy.core.messages import Message
from raftpy.core.raft import Raft
from raftpy.core.snapshot_types import Snapshot
from raftpy.core.trace import Tracer
from raftpy.core.types import Entry, EntryType, State
from raftpy.core.update import Update
from raftpy.testing.checkers import SafetyChecker, Violation
from raftpy.testing.libraft_follower import LibraftFollowerRaft

__all__ = ["Network", "Disk", "StateMachine", "DigestMachine", "ClientRequest",
           "SimServer", "Cluster", "FixedTimeouts"]

# Event kinds, in tie order.  _WAITED: events held by a busy loop; _FAILED: a
# SendFailed on its way back to the sender.
_WAITED, _TIMER, _DISK, _SNAP, _NET, _FAILED = -1, 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Network:
    """Message delivery: latency drawn uniformly in [min, max], loss and duplication odds.

    ``hold`` is the odds that a message is held ``hold_ms`` (drawn uniformly)
    instead, a link stalled for long.  A message to a crashed server is
    reported back to its sender (``SendFailed``, after a latency: a connect
    attempt) with the odds ``refused``, one over a cut link with the odds
    ``cut_failure``; otherwise it vanishes silently.
    """

    min_latency_ms: int = 15
    max_latency_ms: int = 15
    loss: float = 0.0
    duplicate: float = 0.0
    hold: float = 0.0
    hold_ms: tuple[int, int] = (0, 0)
    refused: float = 0.0
    cut_failure: float = 0.0


@dataclass(frozen=True, slots=True)
class Disk:
    """Log writes: latency drawn uniformly in [min, max], completing in order.

    ``failure`` is the odds that an append fails (an I/O error): it changes
    nothing on disk and poisons every write queued behind it, each of which
    is reported failed too (``PersistFailed``), as a real writer would; so is
    an append issued before a busy loop let the core hear of the failure.
    ``hard_state_failure`` is the odds that persisting term and vote fails.
    ``torn``: a crash keeps a random entry-aligned prefix of the writes in
    flight (each snapshot being taken survives or not), instead of none.
    """

    min_latency_ms: int = 10
    max_latency_ms: int = 10
    failure: float = 0.0
    snapshot_latency_ms: tuple[int, int] = (10, 10)
    hard_state_failure: float = 0.0
    torn: bool = False


class StateMachine(Protocol):
    def apply(self, index: int, payload: bytes | memoryview) -> Any: ...


class DigestMachine:
    """The default state machine: counts the commands it applied and chains a
    digest over them in order, so two machines are equal iff they applied the
    same commands in the same order.  Its snapshot is 16 bytes."""

    __slots__ = ("count", "digest")

    def __init__(self) -> None:
        self.count = 0
        self.digest = 0

    def apply(self, index: int, payload: bytes | memoryview) -> Any:
        self.count += 1
        self.digest = zlib.crc32(payload, self.digest)  # deterministic across processes
        return self.count

    def snapshot(self) -> bytes:
        return self.count.to_bytes(8, "little") + self.digest.to_bytes(8, "little")

    def restore(self, data: bytes | memoryview) -> None:
        data = bytes(data)
        self.count = int.from_bytes(data[:8], "little")
        self.digest = int.from_bytes(data[8:16], "little")


class FixedTimeouts(random.Random):
    """libraft fixture's election timeouts: server i draws T + 100*(i-1), clamped."""

    def __init__(self, server_id: int) -> None:
        super().__init__(server_id)
        self.server_id = server_id

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        assert stop is not None
        return min(start + 100 * (self.server_id - 1), stop - 1)


@dataclass(slots=True)
class ClientRequest:
    """A client's request as the simulation tracks it (the core sees it as ``req``)."""

    server_id: int
    payloads: tuple[bytes, ...]
    index: int = 0
    result: Any = None
    error: Exception | None = None
    done: bool = False
    # A read: the highest index acknowledged to any client when it was asked
    # (it must see that write); -1 for every other request.  Its result is
    # the index its server had applied when it ran.
    must_see: int = -1


class SimServer:
    """One simulated server: its Raft, its durable state and its pending disk writes."""

    __slots__ = ("id", "address", "raft", "alive", "term", "voted_for", "durable",
                 "offset", "snapshot", "writes", "disk_free", "incarnation", "deadline",
                 "timer_seq", "machine", "results", "state", "taking", "apply_latency_ms",
                 "busy_until", "waiting", "poisoned", "disk", "commit_seen", "since",
                 "paused_until")

    def __init__(self, server_id: int, machine: StateMachine) -> None:
        self.id = server_id
        self.address = str(server_id)
        self.raft: Raft | None = None
        self.alive = False
        self.term = 0
        self.voted_for = 0
        self.durable: list[Entry] = []                    # the log on "disk"
        self.offset = 0                                   # durable[0] is entry offset+1
        self.snapshot: Snapshot | None = None             # the snapshot on "disk"
        # (done, truncate, first, entries, snapshot to install or None)
        self.writes: list[tuple[int, int, int, list[Entry], Snapshot | None]] = []
        # (done, snapshot, whether the machine could take it) being written
        self.taking: list[tuple[int, Snapshot, bool]] = []
        self.disk_free = 0
        self.incarnation = 0
        self.deadline: int | None = None
        self.timer_seq = 0
        self.machine = machine
        self.results: dict[int, Any] = {}                 # index -> apply result
        self.state = State.UNAVAILABLE                    # as of the last Update
        self.apply_latency_ms = 0                         # per command applied (slow machine)
        self.busy_until = 0                               # the loop is applying until then
        self.waiting = 0                                  # events held meanwhile, in order
        self.poisoned = False                             # a write failed; none followed since
        self.disk: Disk | None = None                     # its own disk (None: the cluster's)
        self.commit_seen = 0                              # as leader, checked up to here
        self.since = 0                                    # time of its last state change or crash
        self.paused_until = 0                             # a pause (SIGSTOP) ends then


def _covered(server: SimServer) -> int:
    """Entries up to this index are in the server's durable snapshot or compacted
    below its log (committed, so as every leader has them).  A snapshot may run
    ahead of the log on disk: a leader applies what a quorum of followers
    stored before its own write is done (spec §2.6)."""
    snapshot = server.snapshot
    return max(server.offset, snapshot.index if snapshot is not None else 0)


class Cluster:
    """N servers with ids 1..N (addresses "1".."N"), bootstrapped as voters, or
    all started from one hand-made ``snapshot`` (its configuration, its term,
    an empty log after it) as if they had compacted a common history.

    ``on_send(from_id, to_id, message)``, if set, sees every message as it is
    sent, before the network decides its fate (a test may cut the link then).
    """

    def __init__(self, n: int, seed: int = 0, *, config: Config | None = None,
                 network: Network | None = None, disk: Disk | None = None,
                 voters: int | None = None, manual: bool = False,
                 tracer: Tracer | None = None, check: bool = True,
                 machine: Callable[[], StateMachine] = DigestMachine,
                 fixed_timeouts: bool = False, snapshot: Snapshot | None = None,
                 libraft: frozenset[int] = frozenset(),
                 batch_same_ms: bool = False) -> None:
        self.rng = random.Random(seed)
        self.libraft = libraft  # ids that answer as libraft followers do
        self.seed = seed
        self.config = config or Config()
        self.network = network or Network()
        self.disk = disk or Disk()
        self.manual = manual
        self._batch_voters: Sequence[int] | None = None   # before the step_all being handled
        # Step a free server's events of one simulated ms in one step_all (see step).
        self.batch_same_ms = batch_same_ms
        self._collect: tuple[SimServer, list[Event]] | None = None
        self.tracer = tracer
        self.fixed_timeouts = fixed_timeouts
        self.now = 0
        self.steps = 0
        self.changes = 0                                    # membership requests made
        self._seq = 0
        self._queue: list[tuple[int, int, int, int, Any]] = []  # (time, kind, seq, id, data)
        self.inflight: list[tuple[int, int, Message]] = []  # manual mode: (from, to, msg)
        self.blocked: set[tuple[int, int]] = set()          # (from, to) pairs cut
        self.lost: set[int] = set()                         # stopped for good
        self.links_changed = 0                              # last partition, cut or heal
        # leader id -> (term, last index when a cut left it without a majority)
        self.minority: dict[int, tuple[int, int]] = {}
        self.on_send: Callable[[int, int, Message], None] | None = None
        self.fail_hard_state: set[int] = set()              # their next term/vote write fails
        # faults that happened: SendFailed reported, crashes that kept part
        # of the writes in flight, term/vote writes failed
        self.send_failures = self.torn_crashes = self.hard_state_failures = 0
        self.checker: SafetyChecker | None = SafetyChecker() if check else None
        self.machine_factory = machine
        self.servers = {i: SimServer(i, machine()) for i in range(1, n + 1)}
        members = [(i, str(i)) for i in range(1, n + 1)]
        voters = n if voters is None else voters
        conf = Configuration()
        for i, address in members:
            conf = conf.add(i, address, 1 if i <= voters else 0)  # type: ignore[arg-type]
        self.configuration = conf
        if snapshot is not None:
            self.configuration = snapshot.configuration
            if self.checker is not None:
                self.checker.on_start_snapshot(snapshot)
            for server in self.servers.values():
                server.snapshot, server.offset, server.term = snapshot, snapshot.index, \
                    snapshot.term
        else:
            boot = bootstrap(0, conf)
            if self.checker is not None:
                self.checker.on_bootstrap(boot[0])
            for server in self.servers.values():
                server.durable = list(boot)
                server.term = 1
        for server in self.servers.values():
            self.start(server.id)

    # -- lifecycle -------------------------------------------------------------

    def _rng_for(self, server_id: int) -> random.Random:
        if self.fixed_timeouts:
            return FixedTimeouts(server_id)
        return random.Random(self.rng.getrandbits(64))

    def start(self, server_id: int) -> None:
        """(Re)start a server from its durable state (spec §2.1)."""
        server = self.servers[server_id]
        assert not server.alive and server_id not in self.lost
        server.commit_seen = 0
        snapshot = server.snapshot
        if snapshot is not None and server.offset + len(server.durable) < snapshot.index:
            server.durable, server.offset = [], snapshot.index  # stale entries (spec §2.1)
        kind = LibraftFollowerRaft if server_id in self.libraft else Raft
        server.raft = kind(server_id, server.address, self.config, self._rng_for(server_id),
                           term=server.term, voted_for=server.voted_for,
                           entries=list(server.durable), start_index=server.offset + 1,
                           snapshot=snapshot, tracer=self.tracer)
        server.alive = True
        server.since = self.now
        if snapshot is not None:
            self._restore(server, snapshot)
        if self.checker is not None:
            self.checker.on_restart(server_id, server.raft.last_applied)
        self.feed(server, Start(self.now))

    def crash(self, server_id: int) -> None:
        """Stop a server; writes still in flight are lost, messages to it dropped."""
        server = self.servers[server_id]
        if not server.alive:
            return
        if self.tracer is not None:
            self.tracer(server_id, self.now, "crash")
        server.alive = False
        server.state = State.UNAVAILABLE
        server.since = self.now
        server.raft = None
        if self._disk(server).torn:
            self._tear(server)
        server.writes.clear()
        server.taking.clear()
        server.poisoned = False
        server.disk_free = self.now
        server.incarnation += 1
        server.deadline = None
        server.timer_seq += 1
        server.machine = type(server.machine)()
        server.results.clear()
        server.busy_until = server.waiting = server.paused_until = 0

    def _tear(self, server: SimServer) -> None:
        """A crash with writes in flight: a prefix of them reached the disk, cut
        at an entry boundary (a batch in libraft's segments is checksummed, so
        a torn batch is dropped at load; entries before it stay).  Snapshots
        being taken are separate files: each is there or not."""
        rng = self.rng
        writes = server.writes
        self.torn_crashes += bool(writes or server.taking)
        if writes:
            whole = rng.randint(0, len(writes))
            for k, (_done, truncate, first, entries, install) in enumerate(writes[:whole + 1]):
                end = server.offset + len(server.durable)
                if install is not None:
                    if k < whole:
                        server.durable, server.offset = [], install.index
                        server.snapshot = install
                    continue
                if entries and first != (truncate - 1 if truncate else end) + 1:
                    break  # queued behind a failed write: never reaches the disk
                keep = len(entries) if k < whole else rng.randint(0, len(entries))
                if k == whole and not keep:
                    break
                if truncate:
                    del server.durable[truncate - 1 - server.offset:]
                server.durable.extend(entries[:keep])
        for _done, snapshot, ok in server.taking:
            if ok and rng.random() < 0.5:
                self._keep_snapshot(server, snapshot)
        if self.tracer is not None and (writes or server.taking):
            self.tracer(server.id, self.now, f"crash with {len(writes)} writes in flight: "
                        f"log on disk to {server.offset + len(server.durable)}")

    def lose(self, server_id: int) -> None:
        """Stop a server for good (its machine is gone); it never restarts, and
        what it had sent and is still on the way (or waiting for a busy loop)
        is gone with it."""
        self.crash(server_id)
        self.lost.add(server_id)
        def sent_by_it(item: tuple[int, int, int, int, Any]) -> bool:
            kind, data = item[1], item[4]
            if kind == _NET:
                return bool(data[0] == server_id)
            event = data[1] if kind == _WAITED else None  # held by a busy loop
            return isinstance(event, Receive) and event.from_id == server_id

        dropped = [item for item in self._queue if sent_by_it(item)]
        self._queue = [item for item in self._queue if not sent_by_it(item)]
        heapq.heapify(self._queue)
        for item in dropped:
            if item[1] == _WAITED:
                self.servers[item[3]].waiting -= 1
        self.inflight = [item for item in self.inflight if item[0] != server_id]

    def last_delivery(self) -> int:
        """When the last message now on its way arrives (now if none)."""
        return max([item[0] for item in self._queue if item[1] in (_NET, _FAILED)],
                   default=self.now)

    def copy_data(self, from_id: int, to_id: int) -> None:
        """Copy a stopped server's durable state (its data directory) onto another."""
        src, dst = self.servers[from_id], self.servers[to_id]
        assert not src.alive and not dst.alive and not src.writes
        dst.term, dst.voted_for = src.term, src.voted_for
        dst.durable, dst.offset, dst.snapshot = list(src.durable), src.offset, src.snapshot

    def recover_from(self, survivor_id: int, configuration: Configuration) -> None:
        """Disaster recovery the documented way (libraft raft.h): every server of
        configuration is stopped; raft_recover runs on survivor_id only, and its
        data directory is then copied to the others.  Servers outside the
        configuration are lost for good.  Messages still in flight are gone
        (the cluster was down), and the checkers start a new history from the
        survivor's log: what only lost servers held is lost, as the operator
        accepted.  Start the servers afterwards."""
        members = {s.id for s in configuration.servers}
        for server in self.servers.values():
            if server.id not in members:
                self.lose(server.id)
            assert not server.alive, f"server {server.id} must be stopped first"
        self.lost -= members
        self.recover(survivor_id, configuration)
        for member in members - {survivor_id}:
            self.copy_data(survivor_id, member)
        self._queue = [item for item in self._queue if item[1] != _NET]
        heapq.heapify(self._queue)
        self.inflight = []
        self.minority.clear()
        survivor = self.servers[survivor_id]
        if self.checker is not None:
            snapshot = survivor.snapshot
            offset_term = (0 if survivor.offset == 0 else snapshot.term
                           if snapshot is not None and snapshot.index == survivor.offset
                           else None)
            self.checker.on_disaster_recovery(survivor.durable, survivor.offset,
                                              frozenset(configuration.voter_ids), offset_term)
            if survivor.voted_for:
                for member in members:
                    self.checker.on_vote(member, survivor.term, survivor.voted_for)

    def pause(self, server_id: int, ms: int) -> None:
        """Stop a server's loop for ms (SIGSTOP, then SIGCONT): everything that
        reaches it meanwhile waits; when it resumes, the messages and requests
        that arrived run before its timer (as asyncio runs the I/O that is ready
        before the timers that are due), so a leader's check-quorum comes late."""
        server = self.servers[server_id]
        if server.alive:
            server.busy_until = server.paused_until = max(server.busy_until, self.now + ms)

    def close(self, server_id: int) -> None:
        """Shut a server down cleanly (Close): it stays UNAVAILABLE until restarted."""
        self.feed(self.servers[server_id], Close(self.now))

    # -- partitions ------------------------------------------------------------

    def cut(self, from_id: int, to_id: int) -> None:
        """Drop messages from from_id to to_id (one way)."""
        self.blocked.add((from_id, to_id))
        self.links_changed = self.now
        self._watch_minority()

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut every link between different groups (symmetric); servers not named are alone."""
        side = {}
        for k, group in enumerate(groups):
            for i in group:
                side[i] = k
        for a in self.servers:
            for b in self.servers:
                if a != b and side.get(a, -a) != side.get(b, -b):
                    self.blocked.add((a, b))
        self.links_changed = self.now
        self._watch_minority()

    def heal(self) -> None:
        self.blocked.clear()
        self.links_changed = self.now
        self.minority.clear()

    def _cut_off(self, raft: Raft) -> bool:
        """Whether the links cut leave raft without a majority of its voters."""
        me = raft.id
        blocked = self.blocked
        reach = sum(1 for v in raft._voters
                    if v == me or ((me, v) not in blocked and (v, me) not in blocked))
        return reach < raft._quorum

    def _watch_minority(self) -> None:
        """A leader the cuts leave without a majority may commit what it had
        appended (its acks may be in), never anything newer."""
        if self.checker is None:
            return
        for server in self.servers.values():
            raft = server.raft
            if (server.alive and raft is not None and raft.state == State.LEADER
                    and server.id not in self.minority and self._cut_off(raft)):
                self.minority[server.id] = (raft.current_term, raft.log.last_index)

    # -- feeding servers ----------------------------------------------------------

    def feed(self, server: SimServer, event: Event, waited: bool = False) -> Update | None:
        """Step the server's core with event; None if its loop is busy applying
        (the event then waits until ``busy_until``, behind those already waiting)."""
        raft = server.raft
        assert raft is not None
        if server.busy_until > self.now or (server.waiting and not waited):
            server.waiting += 1
            when = max(server.busy_until, self.now)
            if type(event) is Tick and server.paused_until >= when:
                when += 1  # a resumed loop runs the I/O that arrived before its timers
            self._push(when, _WAITED, server.id, (raft, event))
            return None
        collect = self._collect
        if collect is not None and collect[0] is server:
            collect[1].append(event)  # stepped with the rest of this ms (step)
            return None
        update = raft.step(event)
        self._handle(server, raft, update)
        return update

    def feed_all(self, server: SimServer, events: list[Event]) -> Update:
        """Step the (free) server's core with events in one ``step_all``, as the
        Server drains what arrived while its loop was busy: one Update for
        them all."""
        raft = server.raft
        assert raft is not None
        if len(events) == 1:
            update = raft.step(events[0])
            self._handle(server, raft, update)
            return update
        self._batch_voters = raft._voters
        try:
            update = raft.step_all(events)
            self._handle(server, raft, update)
        finally:
            self._batch_voters = None
        return update

    def _take_waiting(self, server: SimServer, raft: Raft, when: int,
                      batch: list[Event]) -> None:
        """Move the other events server's busy loop held until ``when`` into batch
        (in order): the loop finds them all ready at once."""
        for item in self._same_ms(when, lambda item: item[1] == _WAITED and (
                item[3] == server.id and item[4][0] is raft)):
            server.waiting -= 1
            batch.append(replace(item[4][1], time_ms=when))

    def _handle(self, server: SimServer, raft: Raft, u: Update) -> None:
        checker = self.checker
        failed = False
        if u.hard_state is not None:
            disk = self._disk(server)
            if server.id in self.fail_hard_state or (
                    disk.hard_state_failure and self.rng.random() < disk.hard_state_failure):
                self.fail_hard_state.discard(server.id)
                self.hard_state_failures += 1
                failed = True
            else:
                server.term, server.voted_for = u.hard_state
                if checker is not None and server.voted_for:
                    checker.on_vote(server.id, server.term, server.voted_for)
        if failed:
            pass  # nothing that depends on the term or vote leaves (update.py)
        elif u.truncate_from or u.persist:
            if checker is not None:
                if u.truncate_from:
                    checker.on_truncate(server.id, u.truncate_from, server.durable,
                                        server.offset)
                if u.persist:
                    prev = raft.log.term_of(u.persist_index - 1) or 0
                    checker.on_write(server.id, u.persist_index, u.persist, prev)
            self._write(server, u.truncate_from, u.persist_index, u.persist)
        if u.messages and not failed:
            for to_id, _address, message in u.messages:
                self._send(server.id, to_id, message)
        if u.apply:
            self._apply(server, u.apply_index, u.apply)
        if u.install_snapshot is not None and not failed:
            self._write(server, 0, 0, [], u.install_snapshot)
        if u.take_snapshot is not None and not failed:
            self._take(server, u.take_snapshot)
        if u.completed or u.failed or u.accepted or u.reads:
            self._resolve(server, u)
        if u.state_changed and u.state != server.state:
            server.state = u.state
            server.since = self.now
            if u.state == State.LEADER and checker is not None:
                checker.on_leader(server.id, raft.current_term, raft.log, raft._voters)
                server.commit_seen = raft.commit_index  # inherited: committed before
                if self._cut_off(raft):
                    self.minority[server.id] = (raft.current_term, raft.log.last_index)
        if checker is not None and u.state == State.LEADER:
            self._check_matches(server, raft, checker)
            if u.persist and any(e.type == EntryType.CHANGE for e in u.persist):
                checker.on_change(server.id, raft.log, raft.commit_index)
            if u.commit_index > server.commit_seen:
                server.commit_seen = u.commit_index
                self._check_commit(server, raft, checker)
        if u.deadline_ms != server.deadline:
            server.deadline = u.deadline_ms
            server.timer_seq += 1
            if not self.manual and u.deadline_ms is not None:
                self._push(u.deadline_ms, _TIMER, server.id, server.timer_seq)
        if failed:
            if self.tracer is not None:
                self.tracer(server.id, self.now, "term/vote write failed")
            # Reported before any other event reaches the core (update.py), so
            # past a busy loop's queue: libraft's set_term fails synchronously.
            self._handle(server, raft, raft.step(HardStateFailed(self.now, OSError("I/O error"))))

    def _disk(self, server: SimServer) -> Disk:
        return server.disk if server.disk is not None else self.disk

    def _holders(self, index: int, term: int | None, voters: Sequence[int]) -> int:
        """How many of voters hold entry index (of term) durably."""
        holders = 0
        for voter in voters:
            other = self.servers.get(voter)
            if other is None:
                continue
            k = index - 1 - other.offset
            if index <= _covered(other) or (
                    k < len(other.durable) and other.durable[k].term == term):
                holders += 1
        return holders

    def _check_commit(self, server: SimServer, raft: Raft, checker: SafetyChecker) -> None:
        """The index a leader just committed is durable on a quorum of its voters,
        and is not newer than what a leader cut off from its majority had."""
        index = raft.commit_index
        term = raft.log.term_of(index)
        voters: Sequence[int] = raft._voters
        holders = self._holders(index, term, voters)
        before = self._batch_voters
        if holders < len(voters) // 2 + 1 and before is not None and before != voters:
            # A batch that changed the configuration: the commit may have been
            # counted before the change took effect, under the voters then.
            voters, holders = before, self._holders(index, term, before)
        checker.on_commit(server.id, index, holders, voters)
        watched = self.minority.get(server.id)
        if watched is not None and watched[0] == raft.current_term and index > watched[1]:
            if self._cut_off(raft):
                raise Violation(f"minority leader {server.id} (term {watched[0]}) commits "
                                f"{index}, appended after it was cut off at {watched[1]}")
            del self.minority[server.id]  # a change made its side a majority (remove)

    def _check_matches(self, server: SimServer, raft: Raft, checker: SafetyChecker) -> None:
        term = raft.current_term
        for server_id, p in raft.progress.items():
            other = self.servers[server_id]
            if (server_id != server.id and p.match_index and other.raft is not None
                    and other.raft.current_term == term):
                checker.on_match(server.id, server_id, p.match_index,
                                 raft.log.term_of(p.match_index), other.durable,
                                 other.offset, _covered(other))

    def _apply(self, server: SimServer, first: int, entries: list[Entry]) -> None:
        if self.checker is not None:
            self.checker.on_apply(server.id, first, entries)
        machine = server.machine
        results = server.results
        commands = 0
        for k, entry in enumerate(entries):
            if entry.type == EntryType.COMMAND:
                results[first + k] = machine.apply(first + k, entry.payload)
                commands += 1
        if server.apply_latency_ms and commands and not self.manual:
            server.busy_until = self.now + server.apply_latency_ms * commands

    def _resolve(self, server: SimServer, u: Update) -> None:
        for req, first in u.accepted:
            if isinstance(req, ClientRequest):
                req.index = first
        for req, error in u.failed:
            if isinstance(req, ClientRequest):
                req.error = error
                req.done = True
        raft = server.raft
        assert raft is not None
        for req, index in u.completed:
            if isinstance(req, ClientRequest):
                req.done = True
                # a command's result is its apply result; a barrier's the index
                # it was applied at; a transfer's the leader afterwards
                req.result = server.results.get(index) if req.payloads else index
                entry = raft.log.get(index)
                if self.checker is not None and req.payloads and entry is not None:
                    self.checker.on_ack(index, entry)
        for req in u.reads:
            if isinstance(req, ClientRequest):
                req.done = True
                req.result = raft.last_applied
                if self.checker is not None:
                    self.checker.on_read(server.id, req.must_see, raft.last_applied)

    def _push(self, when: int, kind: int, server_id: int, data: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, kind, self._seq, server_id, data))

    def _write(self, server: SimServer, truncate: int, first: int, entries: list[Entry],
               install: Snapshot | None = None) -> None:
        disk = self._disk(server)
        latency = (disk.min_latency_ms if disk.min_latency_ms == disk.max_latency_ms
                   else self.rng.randint(disk.min_latency_ms, disk.max_latency_ms))
        done = max(self.now, server.disk_free) + latency
        server.disk_free = done
        server.writes.append((done, truncate, first, entries, install))
        if not self.manual:
            self._push(done, _DISK, server.id, server.incarnation)

    def _complete_write(self, server: SimServer) -> None:
        failure = self._disk(server).failure
        if server.writes[0][3] and failure and self.rng.random() < failure:
            self._fail_writes(server)
            return
        _done, truncate, first, entries, install = server.writes[0]
        end = truncate - 1 if truncate else server.offset + len(server.durable)
        if entries and install is None and first != end + 1 and server.poisoned:
            # Issued after a failed write that a busy loop had not yet seen:
            # the writer stays poisoned until a write follows the log again.
            self._fail_writes(server)
            return
        server.writes.pop(0)
        if install is not None:
            self._install(server, install)
            return
        durable = server.durable
        if truncate:
            del durable[truncate - 1 - server.offset:]
        if entries:
            assert first == server.offset + len(durable) + 1, (first, len(durable))
            server.poisoned = False
            durable.extend(entries)
            self.feed(server, Persisted(self.now, first + len(entries) - 1, entries[-1].term))

    def _install(self, server: SimServer, snapshot: Snapshot) -> None:
        """The snapshot replaces the log on disk; the state machine is restored."""
        server.durable, server.offset, server.snapshot = [], snapshot.index, snapshot
        server.machine = self.machine_factory()
        self._restore(server, snapshot)
        if self.checker is not None:
            self.checker.on_restart(server.id, snapshot.index)
        self.feed(server, SnapshotInstalled(self.now, snapshot.index))

    def _restore(self, server: SimServer, snapshot: Snapshot) -> None:
        restore = getattr(server.machine, "restore", None)
        if restore is None:
            return
        restore(snapshot.data)
        if self.checker is not None:
            self.checker.on_restore(server.id, snapshot.index, snapshot.data,
                                    server.machine.snapshot())  # type: ignore[attr-defined]

    def _take(self, server: SimServer, request: Snapshot) -> None:
        """Capture the state machine now; the snapshot is durable after a latency."""
        take = getattr(server.machine, "snapshot", None)
        snapshot = Snapshot(request.index, request.term, request.configuration_index,
                            request.configuration, take() if take is not None else b"")
        if self.checker is not None and take is not None:
            self.checker.on_snapshot(server.id, snapshot.index, snapshot.data)
        lo, hi = self._disk(server).snapshot_latency_ms
        done = self.now + (lo if lo == hi else self.rng.randint(lo, hi))
        server.taking.append((done, snapshot, take is not None))
        if not self.manual:
            self._push(done, _SNAP, server.id, server.incarnation)

    def _complete_snapshot(self, server: SimServer) -> None:
        _done, snapshot, ok = server.taking.pop(0)
        if not ok:
            self.feed(server, SnapshotTaken(self.now, snapshot.index, None))
            return
        self._keep_snapshot(server, snapshot)
        self.feed(server, SnapshotTaken(self.now, snapshot.index, snapshot.data))

    def _keep_snapshot(self, server: SimServer, snapshot: Snapshot) -> None:
        """A snapshot taken is durable: the disk keeps only the trailing entries."""
        if server.snapshot is None or snapshot.index > server.snapshot.index:
            server.snapshot = snapshot
            # Keep the trailing entries (libraft's snapshot_put with trailing).
            keep_from = min(snapshot.index - self.config.snapshot_trailing,
                            server.offset + len(server.durable))
            if keep_from > server.offset:
                del server.durable[:keep_from - server.offset]
                server.offset = keep_from

    def complete_snapshots(self, server_id: int = 0) -> int:
        """Manual mode: the snapshots being taken become durable (0 = every server)."""
        count = 0
        for server in self.servers.values():
            if server_id in (0, server.id) and server.alive:
                while server.taking:
                    self._complete_snapshot(server)
                    count += 1
        return count

    def fail_writes(self, server_id: int) -> None:
        """Make the pending writes of a server fail (an I/O error)."""
        self._fail_writes(self.servers[server_id])

    def _fail_writes(self, server: SimServer) -> None:
        """The first queued write fails, and with it all log writes behind it; a
        snapshot install queued among them still happens."""
        failed, server.writes = server.writes, []
        server.poisoned = True
        server.incarnation += 1  # their completion events are void
        server.disk_free = self.now
        if not self.manual:
            for done, _snapshot, _ok in server.taking:  # snapshots are not affected
                self._push(done, _SNAP, server.id, server.incarnation)
        if self.tracer is not None:
            self.tracer(server.id, self.now, "disk write failed")
        for _done, truncate, first, entries, install in failed:
            if install is not None:
                if server.alive:
                    self._install(server, install)
            elif not entries:
                del server.durable[truncate - 1 - server.offset:]  # a bare truncation
            elif server.alive:
                self.feed(server, PersistFailed(self.now, first, OSError("I/O error")))

    def _send(self, from_id: int, to_id: int, message: Message) -> None:
        if self.on_send is not None:
            self.on_send(from_id, to_id, message)
        net = self.network
        rng = self.rng
        if (from_id, to_id) in self.blocked:
            if net.cut_failure and rng.random() < net.cut_failure and not self.manual:
                self._report_failure(from_id, to_id, message)
            return
        if self.manual:
            self.inflight.append((from_id, to_id, message))
            return
        target = self.servers.get(to_id)
        if net.refused and (target is None or not target.alive) and rng.random() < net.refused:
            self._report_failure(from_id, to_id, message)
            return
        if net.loss and rng.random() < net.loss:
            return
        lo, hi = net.min_latency_ms, net.max_latency_ms
        if net.hold and rng.random() < net.hold:
            lo, hi = net.hold_ms
        self._push(self.now + (lo if lo == hi else rng.randint(lo, hi)), _NET, to_id,
                   (from_id, message))
        if net.duplicate and rng.random() < net.duplicate:
            self._push(self.now + rng.randint(lo, hi), _NET, to_id, (from_id, message))

    def _report_failure(self, from_id: int, to_id: int, message: Message) -> None:
        """The sender's transport learns, one latency later, that the message did
        not go out (a refused or broken connection)."""
        self.send_failures += 1
        lo, hi = self.network.min_latency_ms, self.network.max_latency_ms
        self._push(self.now + (lo if lo == hi else self.rng.randint(lo, hi)), _FAILED,
                   from_id, (self.servers[from_id].raft, to_id, message))

    def fail_send(self, from_id: int = 0, to_id: int = 0) -> int:
        """Manual mode: the queued messages matching from/to (0 = any) fail to go
        out; each sender hears ``SendFailed``.  Returns how many."""
        keep: list[tuple[int, int, Message]] = []
        take: list[tuple[int, int, Message]] = []
        for item in self.inflight:
            (take if from_id in (0, item[0]) and to_id in (0, item[1]) else keep).append(item)
        self.inflight = keep
        for src, dst, message in take:
            sender = self.servers[src]
            if sender.alive:
                self.feed(sender, SendFailed(self.now, dst, message))
        return len(take)

    def _deliver(self, from_id: int, to_id: int, message: Message) -> bool:
        server = self.servers[to_id]
        if not server.alive or (from_id, to_id) in self.blocked:
            return False
        self.feed(server, Receive(self.now, from_id, str(from_id), message))
        return True

    # -- automatic stepping -----------------------------------------------------------

    def step(self) -> bool:
        """Run the earliest pending event; False if there is none.

        With ``batch_same_ms`` the other events a free server has at the same
        simulated ms (messages, timer, disk and snapshot completions, send
        failures) are stepped with it in one ``step_all``: the Server drains
        whatever reached its loop in one iteration, and events of one ms
        arrive together."""
        queue = self._queue
        servers = self.servers
        while queue:
            when, kind, seq, server_id, data = heapq.heappop(queue)
            server = servers[server_id]
            if kind == _WAITED:
                raft, event = data
                if raft is not server.raft or not server.alive:
                    continue  # the server crashed meanwhile: its loop is gone
                if server.busy_until > when:  # busy again: wait on, keeping its place
                    heapq.heappush(queue, (server.busy_until, kind, seq, server_id, data))
                    continue
                server.waiting -= 1
                self.now = when
                batch = [replace(event, time_ms=when)]
                self._take_waiting(server, server.raft, when, batch)
                self.feed_all(server, batch)
            elif not self.batch_same_ms:
                if not self._run_item(server, when, kind, data):
                    continue
            elif not self._run_same_ms(server, when, kind, data):
                continue
            self.steps += 1
            return True
        return False

    def _run_same_ms(self, server: SimServer, when: int, kind: int, data: Any) -> bool:
        """Run the item and the server's other non-held items at ``when``, feeding
        the events they make in one step_all; False if none was current."""
        events: list[Event] = []
        self._collect = (server, events)
        try:
            ran = self._run_item(server, when, kind, data)
            for item in self._same_ms(when, lambda item: item[3] == server.id
                                      and item[1] != _WAITED):
                ran = self._run_item(server, when, item[1], item[4]) or ran
        finally:
            self._collect = None
        if events and server.raft is not None:
            self.feed_all(server, events)
        return ran

    def _same_ms(self, when: int, mine: Callable[[Any], bool]) -> Iterator[Any]:
        """Pop the queue's items at ``when`` one by one, yielding those ``mine``
        accepts (an item pushed at ``when`` meanwhile comes too); the others go
        back when the caller is done."""
        queue = self._queue
        others = []
        try:
            while queue and queue[0][0] == when:
                item = heapq.heappop(queue)
                if mine(item):
                    yield item
                else:
                    others.append(item)
        finally:
            for item in others:
                heapq.heappush(queue, item)

    def _run_item(self, server: SimServer, when: int, kind: int, data: Any) -> bool:
        """Run one timer, message, completion or send failure; False if stale."""
        if kind == _NET:
            self.now = when
            return self._deliver(data[0], server.id, data[1])
        if kind == _TIMER:
            if data != server.timer_seq or not server.alive:
                return False
            self.now = when
            self.feed(server, Tick(when))
        elif kind == _FAILED:
            raft, to_id, message = data
            if raft is not server.raft or not server.alive:
                return False  # the sender restarted: its transport is new
            self.now = when
            self.feed(server, SendFailed(when, to_id, message))
        else:
            if data != server.incarnation or not server.alive:
                return False
            self.now = when
            if kind == _DISK:
                self._complete_write(server)
            else:
                self._complete_snapshot(server)
        return True

    def run_until(self, done: Callable[[], bool], max_ms: int) -> bool:
        """Step until done() or until simulated time passes now+max_ms."""
        limit = self.now + max_ms
        while not done():
            if not self._queue or self._queue[0][0] > limit:
                self.now = max(self.now, limit)
                return False
            self.step()
        return True

    def run_for(self, ms: int) -> None:
        limit = self.now + ms
        while self._queue and self._queue[0][0] <= limit:
            self.step()
        self.now = max(self.now, limit)

    # -- manual stepping (transcripts) ----------------------------------------------

    def deliver(self, from_id: int = 0, to_id: int = 0, drop: bool = False) -> int:
        """Deliver (or drop) the queued messages matching from/to (0 = any), in order."""
        keep, take = [], []
        for item in self.inflight:
            if (from_id in (0, item[0])) and (to_id in (0, item[1])):
                take.append(item)
            else:
                keep.append(item)
        self.inflight = keep
        if not drop:
            for src, dst, message in take:
                self._deliver(src, dst, message)
        return len(take)

    def persist(self, server_id: int = 0) -> int:
        """Complete the pending disk writes of one server (0 = all)."""
        count = 0
        for server in self.servers.values():
            if server_id in (0, server.id) and server.alive:
                while server.writes:
                    self.now = max(self.now, server.writes[0][0]) if not self.manual else self.now
                    self._complete_write(server)
                    count += 1
        return count

    def stabilize(self, max_rounds: int = 100) -> None:
        """Deliver messages and complete writes until nothing is pending (no time passes)."""
        for _ in range(max_rounds):
            if not (self.persist() + self.deliver()):
                return

    def tick(self, server_id: int, advance_to_deadline: bool = True) -> None:
        """Fire a server's timer: time advances to its deadline if that is later."""
        server = self.servers[server_id]
        if advance_to_deadline and server.deadline is not None:
            self.now = max(self.now, server.deadline)
        self.feed(server, Tick(self.now))

    def elapse(self, ms: int) -> None:
        """Advance time; every server whose deadline passed gets a Tick (id order)."""
        self.now += ms
        for server in self.servers.values():
            if server.alive and server.deadline is not None and server.deadline <= self.now:
                self.feed(server, Tick(self.now))

    # -- clients --------------------------------------------------------------------------

    def leader(self) -> SimServer | None:
        """The live leader with the highest term, if any."""
        best = None
        for server in self.servers.values():
            raft = server.raft
            if server.alive and raft is not None and raft.state == State.LEADER:
                if best is None or raft.current_term > best.raft.current_term:  # type: ignore[union-attr]
                    best = server
        return best

    def propose(self, server_id: int, *payloads: bytes) -> ClientRequest:
        req = ClientRequest(server_id, tuple(payloads))
        self.feed(self.servers[server_id], Propose(self.now, list(payloads), req))
        return req

    def barrier(self, server_id: int) -> ClientRequest:
        req = ClientRequest(server_id, ())
        self.feed(self.servers[server_id], Barrier(self.now, req))
        return req

    def read(self, server_id: int) -> ClientRequest:
        """A linearizable read at server_id; checked against every write
        acknowledged before now (checkers.py ``on_read``)."""
        checker = self.checker
        req = ClientRequest(server_id, (), must_see=checker.acked_max if checker else 0)
        self.feed(self.servers[server_id], Read(self.now, req))
        return req

    def take_snapshot(self, server_id: int) -> None:
        """Ask server_id for a snapshot now (``TakeSnapshot``), whatever the threshold."""
        self.feed(self.servers[server_id], TakeSnapshot(self.now))

    def transfer(self, server_id: int, target_id: int = 0) -> ClientRequest:
        req = ClientRequest(server_id, ())
        self.feed(self.servers[server_id], Transfer(self.now, target_id, req))
        return req

    def add(self, server_id: int, new_id: int) -> ClientRequest:
        """Ask server_id (the leader) to add new_id as a spare (raft_add)."""
        req = ClientRequest(server_id, ())
        self.feed(self.servers[server_id], Add(self.now, new_id, str(new_id), req))
        return req

    def assign(self, server_id: int, target_id: int, role: Role) -> ClientRequest:
        req = ClientRequest(server_id, ())
        self.feed(self.servers[server_id], Assign(self.now, target_id, role, req))
        return req

    def remove(self, server_id: int, target_id: int) -> ClientRequest:
        req = ClientRequest(server_id, ())
        self.feed(self.servers[server_id], Remove(self.now, target_id, req))
        return req

    def add_server(self) -> int:
        """A new server with empty state (not bootstrapped), started; returns its id."""
        server_id = max(self.servers) + 1
        self.servers[server_id] = SimServer(server_id, self.machine_factory())
        self.start(server_id)
        return server_id

    def recover(self, server_id: int, configuration: Configuration) -> None:
        """raft_recover on a stopped server: force-append the configuration."""
        server = self.servers[server_id]
        assert not server.alive and not server.writes
        server.durable.append(recover_entry(configuration))
        if self.checker is not None:
            self.checker.on_recover(frozenset(configuration.voter_ids))

    def raft(self, server_id: int) -> Raft:
        raft = self.servers[server_id].raft
        assert raft is not None, f"server {server_id} is down"
        return raft
