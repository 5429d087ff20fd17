"""An explicit-state model checker for the core: every ordering of the enabled
actions, breadth first, with state hashing, up to a depth bound.

May import: the standard library, ``raftpy.errors`` and ``raftpy.core``.

The model is the real ``Raft`` of each server behind a minimal shell (the
duties of update.py): term and vote are durable at once, log writes and
snapshot installs complete in order when a ``persist`` action says so, a
snapshot being taken becomes durable on a ``snapshot`` action, and every
message sent waits in the network until an action delivers, duplicates or
drops it.  Actions, all enabled whenever they make sense:

* ``deliver``/``duplicate``/``drop`` any message in flight (a duplicate is
  delivered and stays in flight);
* ``tick`` a server: its clock jumps to its next deadline; a leader can also
  jump straight to its election-timer deadline (check-quorum, a transfer's
  timeout), skipping the heartbeats in between (its loop was stalled);
* ``persist`` the oldest pending write of a server, ``snapshot`` (the one
  being taken becomes durable), ``fail`` the oldest pending log write (and
  the writes queued behind it: ``PersistFailed``);
* ``restart`` a server: it crashes (pending writes and volatile state lost)
  and starts again from its durable state;
* ``send_fail`` a message in flight: it is not delivered and its sender
  hears ``SendFailed``; ``hard_state_fail`` a server: its next term/vote
  write fails (``HardStateFailed``: nothing of that Update is written or
  sent);
* client requests at the leader: ``propose``, ``transfer`` (to each other
  voter, or 0), ``take`` (TakeSnapshot), and in the membership models
  ``add`` (a server that started empty), ``assign`` (a spare to voter or
  standby) and ``remove``;
* ``batch`` (with ``Bounds.batch`` >= 2; off in most models): 2 to
  ``batch`` of one server's enabled inputs, in every order, fed in ONE
  ``step_all``, as the Server drains every event that arrived in one loop
  iteration: messages deliverable to it, its oldest pending write's
  completion (``Persisted``/``SnapshotInstalled``) or failure (``fail``:
  ``PersistFailed`` of it and the writes behind it), a send of its that
  failed (``SendFailed``), its snapshot taken (``SnapshotTaken``), and the
  client requests a leader takes: ``take``, ``propose``, ``transfer``,
  ``add``, ``assign``, ``remove`` (each within its budget, as the single
  actions offer them).  Each input's shell side happens first (the message
  leaves the network, the write reaches the disk or fails), then the one
  Update is carried out exactly as a single step's; an input an earlier one
  in the batch made void (a completion after ``fail`` failed every write)
  is left out.  With ``Bounds.batch_ticks`` the server's timer firing is an
  input too (events after it in the batch arrived later); it multiplies the
  states, so no model in the suite has it.  Restarts and ``hard_state_fail``
  (a flag on the server's next term/vote write, not an event) are never
  batched.

Each server has a clock of its own (the core only ever compares times it
read itself), so timers fire in every order relative to each other and to
deliveries: the asynchronous model in which Raft's safety must hold.
Election timeouts are fixed per server (no randomness to enumerate).
A ``stabilize`` action delivers every message and completes every write
until nothing is left (no time passes): one step for what a quiet cluster
does between two faults, so that deep interleavings are reached at a small
depth; the fine-grained actions remain available at every state.  With
``fifo`` each link delivers in order and never duplicates (TCP, the stock
transport): fewer orders, a deeper search in the same time.

States are hashed on everything that decides the future: every field of each
core (times taken relative to that server's clock, capped above the largest
timeout, beyond which no comparison changes), its durable state, pending
writes, the state machine, the messages in flight (a multiset: identical
copies are counted, each deliverable at its own moment) and the budgets used.  Bounds
keep the space finite: the depth, the number of client requests, restarts,
duplicates and drops, the term, and the messages in flight (a state with more
is checked but not expanded).

Safety properties, checked in every state reached (dissertation Figure 3.2;
a core assertion failing counts too):

* election safety: one leader per term, over the whole history;
* log matching: in every log, in memory, on disk and in messages in flight,
  two entries with one index and term are equal, as are their predecessors;
* state machine safety: every server's committed prefix is one log;
* leader completeness: a leader of a term above the one in which an entry
  was first committed holds that entry;
* durability: every committed entry is durable on a majority of the voters
  of the latest committed configuration (in its log or under its snapshot);
* a leader's match_index for a follower of its term names an entry that
  follower holds durably;
* the shell's state machine applies each index once, in order, and a
  snapshot the core asks for (``take_snapshot``) is at the index that
  machine has applied once the Update's entries are applied (update.py
  duty 6; labelled lower, the entries in between are applied again after a
  restart or an install from it: what the Server's batches once did,
  27eea35).  Checked as the Update is carried out.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from raftpy.core.config import Config
from raftpy.core.configuration import Configuration, Role, decode_configuration
from raftpy.core.events import (
    Add,
    Assign,
    Event,
    HardStateFailed,
    Persisted,
    PersistFailed,
    Propose,
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
from raftpy.core.log import Log
from raftpy.core.membership import bootstrap
from raftpy.core.messages import (
    AppendEntries,
    InstallSnapshot,
    Message,
)
from raftpy.core.progress import Progress
from raftpy.core.raft import Raft
from raftpy.core.snapshot_types import Snapshot
from raftpy.core.state import PendingTransfer, RaftState, ReadRounds
from raftpy.core.trace import Tracer
from raftpy.core.types import Entry, EntryType, State
from raftpy.core.update import Update

__all__ = ["Bounds", "Counterexample", "Report", "explore", "replay", "MODELS"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """What one exploration covers.  ``voters < servers`` makes the others spares
    (the membership model: the spare can be promoted, a server removed)."""

    depth: int = 12
    servers: int = 3
    voters: int = 3
    joining: int = 0            # servers beyond ``servers``, started empty, to be added
    proposals: int = 1
    transfers: int = 1
    snapshots: int = 0          # TakeSnapshot requests
    restarts: int = 1
    duplicates: int = 1
    drops: int = 1
    changes: int = 0            # membership requests (assign, remove)
    failures: int = 0           # log writes failing (an I/O error, PersistFailed)
    send_failures: int = 0      # messages not handed to their peer (SendFailed)
    hard_state_failures: int = 0  # term/vote writes failing (HardStateFailed)
    timeouts: int = 3           # ticks of followers and candidates (elections)
    leader_ticks: int = 3       # ticks of leaders (heartbeats, check-quorum)
    max_in_flight: int = 6
    max_term: int = 4
    pre_vote: bool = False
    late_ticks: bool = True     # a leader may skip its heartbeats to its election deadline
    fifo: bool = False          # messages on each link arrive in order (TCP), no duplicates
    stabilize: bool = True      # offer the macro action: deliver and persist until quiet
    # Events per batched step: one server's enabled inputs (deliveries to it,
    # its oldest write's completion, its snapshot taken, a propose or take)
    # fed in one ``step_all``, in every order, as the Server drains what
    # arrived in one loop iteration.  0 or 1: no batched steps.
    batch: int = 0
    batch_ticks: bool = False   # a batch may hold the server's timer firing too
    # Steps run before the search starts (not counted in depth or budgets), to
    # begin from an interesting state: "tick 1", "tick-late 1", "stabilize",
    # "deliver SRC DST" (the first message on that link), "persist I",
    # "propose I", "take I", "snapshot I", "restart I", "transfer I TARGET".
    prefix: tuple[str, ...] = ()
    max_states: int = 0         # stop after this many distinct states (0: no limit)
    max_seconds: float = 0.0    # stop after this long (0: no limit)


#: Named models for the test suite and the command line.
_LEADER = ("tick 1", "stabilize")            # 1 leads term 2, its barrier committed
_SNAPSHOTTED = _LEADER + ("propose 1", "persist 1", "deliver 1 2", "persist 2", "deliver 2 1",
                          "take 1", "snapshot 1")  # 1 snapshotted at 3; 3 lacks entry 3
MODELS: dict[str, Bounds] = {
    # From the bootstrap state: elections, transfers, check-quorum (issue 8, A1).
    "election": Bounds(depth=16, proposals=0, transfers=1, restarts=0, duplicates=0,
                       drops=0, max_in_flight=8, max_term=3, timeouts=2, leader_ticks=3),
    # A leader and its followers: a write, crashes, loss and duplication.
    "replication": Bounds(depth=12, prefix=_LEADER, proposals=1, transfers=0, restarts=1,
                          duplicates=1, drops=1, timeouts=1, leader_ticks=2),
    # The leader has just snapshotted (trailing 0) past follower 3, which has
    # not seen entry 3: compaction, InstallSnapshot, installs racing elections.
    "snapshot": Bounds(depth=12, prefix=_SNAPSHOTTED, proposals=1, transfers=0, snapshots=1,
                       restarts=1, duplicates=0, drops=1, send_failures=1, timeouts=1,
                       leader_ticks=2),
    # The same state, each server's inputs also fed two at a time in one
    # step_all (as the Server drains one loop iteration): snapshots asked for
    # early in a batch, commits and applies later in it.  No losses (the
    # snapshot model has them), to reach the same depth.
    "batch": Bounds(depth=12, prefix=_SNAPSHOTTED, batch=2, proposals=1, transfers=0,
                    snapshots=1, restarts=1, duplicates=0, drops=0, send_failures=0,
                    timeouts=1, leader_ticks=2),
    # Failures and client requests in batches: entry 3 is on its way to both
    # followers (written by none yet) when writes fail, sends fail and a
    # transfer or a second entry is asked for, each of these arriving in one
    # loop iteration with the server's other inputs.
    "batch-faults": Bounds(depth=8, prefix=_LEADER + ("propose 1", "deliver 1 2",
                                                      "deliver 1 3"),
                           batch=2, proposals=1, transfers=1, restarts=0, duplicates=0,
                           drops=0, failures=1, send_failures=1, timeouts=1,
                           leader_ticks=1),
    # Membership changes in batches with the other inputs (the membership
    # model, each server's inputs also fed two at a time).
    "batch-membership": Bounds(depth=12, voters=2, prefix=_LEADER, batch=2, proposals=1,
                               transfers=0, restarts=0, duplicates=0, drops=1, changes=1),
    # Pre-vote elections, and log writes that fail (PersistFailed).
    "prevote": Bounds(depth=12, pre_vote=True, prefix=_LEADER, proposals=1, transfers=1,
                      restarts=0, duplicates=0, drops=1, failures=1, timeouts=2,
                      leader_ticks=2),
    # Sends that fail (the connection is down), term/vote writes that fail.
    "faults": Bounds(depth=12, prefix=_LEADER, proposals=1, transfers=1, restarts=0,
                     duplicates=0, drops=0, send_failures=2, hard_state_failures=1,
                     timeouts=2, leader_ticks=2),
    # 2 voters and a server joining with an empty log: add it, promote it
    # (AppendEntries from index 1), remove one.
    "joining": Bounds(depth=12, servers=2, voters=2, joining=1, prefix=_LEADER,
                      proposals=1, transfers=0, restarts=0, duplicates=0, drops=1,
                      changes=2, timeouts=2, leader_ticks=2),
    # 2 voters and a spare: promotion (catch-up rounds), demotion, removal.
    "membership": Bounds(depth=12, voters=2, prefix=_LEADER, proposals=1, transfers=0,
                         restarts=0, duplicates=0, drops=1, changes=1),
}

# Few heartbeats per election timeout: time is what multiplies states most, and
# safety must not depend on the ratio.
_CONFIG = Config(election_timeout_ms=200, heartbeat_timeout_ms=100,
                 install_snapshot_timeout_ms=300, snapshot_threshold=1 << 30,
                 snapshot_trailing=0, max_catch_up_rounds=2,
                 max_catch_up_round_duration_ms=300)
_CAP = 500  # above every timeout of _CONFIG: relative times beyond it compare alike
_NEVER = -(1 << 62)


class _Timeouts(random.Random):
    """Election timeouts fixed per server (T + 100*(i-1))."""

    def __init__(self, server_id: int = 1) -> None:
        super().__init__(server_id)
        self.server_id = server_id

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        assert stop is not None
        return min(start + 100 * (self.server_id - 1), stop - 1)


# -- the shell ------------------------------------------------------------------

class _Server:
    """One server: its core, clock, durable state, pending writes and machine."""

    __slots__ = ("id", "raft", "clock", "deadline", "term", "vote", "log", "offset",
                 "snapshot", "writes", "taking", "count", "digest", "applied",
                 "fail_hard_state", "key")

    def __init__(self, server_id: int) -> None:
        self.id = server_id
        self.raft: Raft | None = None
        self.clock = 0
        self.deadline: int | None = None
        self.term = 0
        self.vote = 0
        self.log: tuple[Entry, ...] = ()          # durable entries offset+1..
        self.offset = 0
        self.snapshot: Snapshot | None = None     # durable snapshot
        # pending writes: (truncate_from, first, entries, snapshot to install)
        self.writes: tuple[tuple[int, int, tuple[Entry, ...], Snapshot | None], ...] = ()
        self.taking: Snapshot | None = None       # snapshot being taken (with data)
        self.count = 0                            # the state machine: commands applied
        self.digest = 0                           # and a digest over them
        self.applied = 0                          # the index the machine has applied up to
        self.fail_hard_state = False              # the next term/vote write fails
        self.key: int | None = None               # cached fingerprint (a hash)


def _voters_in(payload: bytes | memoryview) -> frozenset[int]:
    """The voters of a CHANGE entry's configuration."""
    return _decode_voters(bytes(payload))


@functools.lru_cache(maxsize=4096)
def _decode_voters(payload: bytes) -> frozenset[int]:
    # The safety checks decode the same few configurations in every state:
    # remembered, they cost a lookup instead of a fifth of the search.
    return frozenset(decode_configuration(payload).voter_ids)


def _machine_bytes(count: int, digest: int) -> bytes:
    return count.to_bytes(8, "little") + digest.to_bytes(8, "little")


class _World:
    """A global state: servers, messages in flight, budgets used, history."""

    __slots__ = ("servers", "net", "used", "leaders", "committed", "commit_terms", "voters",
                 "depth", "path")

    def __init__(self) -> None:
        self.servers: list[_Server] = []
        self.net: Any = frozenset()     # (from, to, message key): a set, or a tuple (fifo)
        self.used: tuple[int, ...] = (0,) * len(_USED)
        self.leaders: tuple[tuple[int, int], ...] = ()            # (term, leader id)
        self.committed: tuple[Entry, ...] = ()                     # the committed log
        self.commit_terms: tuple[int, ...] = ()                    # term each first committed in
        self.voters: frozenset[int] = frozenset()                  # latest committed configuration
        self.depth = 0
        self.path: tuple[tuple[Any, ...], ...] = ()

    def key(self) -> tuple[Any, ...]:
        return (tuple(_server_key(s) for s in self.servers), self.net, self.used,
                self.leaders, len(self.committed), self.commit_terms)


_USED = {"propose": 0, "transfer": 1, "take": 2, "restart": 3, "duplicate": 4, "drop": 5,
         "change": 6, "timeout": 7, "leader_tick": 8, "fail": 9, "send_fail": 10,
         "hard_state_fail": 11}


# A leader's client requests other than propose: the budget each uses and the
# event it becomes, from the clock and the action's arguments after the server.
_REQUESTS: dict[str, tuple[str, Callable[..., Event]]] = {
    "transfer": ("transfer", lambda now, target: Transfer(now, target)),
    "add": ("change", lambda now, server_id: Add(now, server_id, str(server_id))),
    "assign": ("change", lambda now, server_id, role: Assign(now, server_id, Role(role))),
    "remove": ("change", lambda now, server_id: Remove(now, server_id)),
}


class Violation(AssertionError):
    """A safety property broke (or a core assertion failed) in a reachable state."""


# -- fingerprints -----------------------------------------------------------------

_SKIP = frozenset({"id", "address", "config", "rng", "tracer", "now", "_out", "_targets",
                   "_promotion_req"})
_TIMES = frozenset({"election_timer_start", "round_start"})
_PROGRESS_TIMES = frozenset({"last_send", "snapshot_last_send"})
_FIELDS = tuple(f for f in RaftState.__slots__ if f not in _SKIP)


def _rel(t: int, now: int) -> int:
    return min(now - t, _CAP) if t != _NEVER else _CAP


def _canon(value: Any, now: int) -> Any:
    """A hashable value standing for value, with times relative to now."""
    convert = _CANON.get(type(value))
    if convert is None:
        if isinstance(value, (int, str, bytes, Configuration)) or value is None:
            return value            # IntEnums, bools, and the immutable values
        raise TypeError(f"no fingerprint for {type(value).__name__}")
    return convert(value, now)


def _canon_seq(value: Any, now: int) -> Any:
    return tuple([_canon(v, now) for v in value])


_CANON: dict[type, Callable[[Any, int], Any]] = {
    int: lambda v, now: v,
    Log: lambda v, now: (v.offset, v.snapshot_index, v.snapshot_term, tuple(v.entries)),
    Progress: lambda v, now: tuple([_rel(getattr(v, name), now) if name in _PROGRESS_TIMES
                                    else getattr(v, name) for name in Progress.__slots__]),
    PendingTransfer: lambda v, now: (v.target_id, _rel(v.start_ms, now), v.timeout_now_sent),
    Snapshot: lambda v, now: (v.index, v.term, v.configuration_index, v.configuration,
                              bytes(v.data)),
    dict: lambda v, now: tuple(sorted((k, _canon(x, now)) for k, x in v.items())),
    set: lambda v, now: tuple(sorted(v)),
    frozenset: lambda v, now: tuple(sorted(v)),
    list: _canon_seq,
    tuple: _canon_seq,
    deque: _canon_seq,
}


def _raft_key(raft: Raft) -> tuple[Any, ...]:
    now = raft.now
    return tuple([getattr(raft, name) if fn is None else fn(getattr(raft, name), now)
                  for name, fn in _KEY_PLAN])


def _special(name: str) -> Callable[[Any, int], Any] | None:
    """How _raft_key turns field name into a hashable value (None: as it is)."""
    if name in _TIMES:
        return _rel
    if name == "pending":
        return lambda v, now: tuple([index for index, _req in v])
    if name in ("log", "progress", "transfer", "votes", "_pending_changes"):
        return _canon
    if name == "_reads":
        return _reads_key
    if name == "_kept_timeout_now":      # (term, leader, index, term, received at ms)
        return lambda v, now: None if v is None else (*v[:4], _rel(v[4], now))
    return None


def _reads_key(v: ReadRounds, now: int) -> tuple[Any, ...]:
    """The read state by value (reads are opaque tokens: counted, not compared)."""
    return (v.round, v.in_flight, v.index, _rel(v.sent_ms, now), _rel(v.resent_ms, now),
            tuple(sorted(v.acks)), len(v.current), len(v.next),
            tuple([index for index, _reqs in v.confirmed]), v.lease_until_ms - now,
            len(v.orphaned), tuple(sorted(v.announced)), v.leader_reads, len(v.forward),
            tuple(sorted(v.remote)), v.remote_to, v.request_id)


_KEY_PLAN = tuple((name, _special(name)) for name in _FIELDS)


def _server_key(s: _Server) -> int:
    """The hash of everything that decides the server's future (cached until touched)."""
    if s.key is None:
        raft = s.raft
        assert raft is not None
        s.key = hash((_raft_key(raft), s.term, s.vote, s.log, s.offset, s.snapshot,
                      s.writes, s.taking, s.count, s.digest, s.applied, s.fail_hard_state,
                      None if s.deadline is None else s.deadline - s.clock))
    return s.key


def _net_add(net: Any, items: list[tuple[int, int, Any]], fifo: bool) -> Any:
    """net plus items: a multiset (a frozenset of (message, copies)), or (fifo) a
    tuple ordered by link and, within a link, by sending order (a stable sort
    keeps the latter).  Identical copies are counted, never merged: each can be
    delivered at its own moment."""
    if fifo:
        return tuple(sorted(net + tuple(items), key=lambda item: (item[0], item[1])))
    copies = dict(net)
    for item in items:
        copies[item] = copies.get(item, 0) + 1
    return frozenset(copies.items())


def _net_remove(net: Any, item: tuple[int, int, Any], fifo: bool) -> Any:
    """net less one copy of item."""
    if fifo:
        k = net.index(item)
        return net[:k] + net[k + 1:]
    copies = dict(net)
    if copies[item] == 1:
        del copies[item]
    else:
        copies[item] -= 1
    return frozenset(copies.items())


def _net_items(net: Any, fifo: bool) -> list[tuple[int, int, Any]]:
    """Every message in flight (each copy once)."""
    if fifo:
        return list(net)
    return [item for item, copies in net for _ in range(copies)]


def _deliverable(net: Any, fifo: bool) -> list[tuple[int, int, Any]]:
    """The messages an action may deliver: any (each distinct one once, in a
    stable order), or each link's first."""
    if not fifo:
        return sorted((item for item, _copies in net), key=repr)
    heads: list[tuple[int, int, Any]] = []
    for item in net:
        if not heads or heads[-1][:2] != item[:2]:
            heads.append(item)
    return heads


def _message_key(m: Message) -> Any:
    if isinstance(m, AppendEntries):
        return (type(m), m.term, m.prev_log_index, m.prev_log_term, m.leader_commit,
                tuple(m.entries), m.version)
    if isinstance(m, InstallSnapshot):
        return (type(m), m.term, m.last_index, m.last_term, m.conf_index, m.conf,
                bytes(m.data), m.version)
    return m  # frozen dataclasses of scalars: hashable as they are


def _message_of(key: Any) -> Message:
    if isinstance(key, tuple):
        kind = key[0]
        if kind is AppendEntries:
            return AppendEntries(key[1], key[2], key[3], key[4], list(key[5]), key[6])
        return InstallSnapshot(*key[1:])
    return key  # type: ignore[no-any-return]


# -- the model ----------------------------------------------------------------------

class Model:
    """Builds the initial world and applies actions to copies of worlds."""

    def __init__(self, bounds: Bounds, tracer: Tracer | None = None) -> None:
        self.bounds = bounds
        self.config = replace(_CONFIG, pre_vote=bounds.pre_vote)
        self.tracer = tracer
        self.steps = 0
        conf = Configuration()
        for i in range(1, bounds.servers + 1):
            conf = conf.add(i, str(i), Role.VOTER if i <= bounds.voters else Role.SPARE)
        self.boot = bootstrap(0, conf)

    def initial(self) -> _World:
        world = _World()
        world.net = () if self.bounds.fifo else frozenset()
        world.voters = _voters_in(self.boot[0].payload)
        world.committed = tuple(self.boot)
        world.commit_terms = (0,)
        for i in range(1, self.bounds.servers + self.bounds.joining + 1):
            s = _Server(i)
            if i <= self.bounds.servers:        # bootstrapped; the others start empty
                s.term, s.log = 1, tuple(self.boot)
            world.servers.append(s)
            self._start(world, s)
        self.check(world)
        for step in self.bounds.prefix:
            world = self.apply(world, self._parse_step(world, step))
            self.check(world)
        world.used, world.depth, world.path = (0,) * len(_USED), 0, ()
        return world

    def _parse_step(self, world: _World, step: str) -> tuple[Any, ...]:
        words = step.split()
        kind, args = words[0], [int(w) for w in words[1:]]
        if kind == "deliver":
            for item in _deliverable(world.net, self.bounds.fifo):
                if item[:2] == (args[0], args[1]):
                    return ("deliver",) + item
            raise ValueError(f"prefix step {step!r}: no message on that link")
        if kind in ("tick", "tick-late"):
            return ("tick", args[0], int(kind == "tick-late"))
        return (kind, *args)

    # -- copying: only the server an action touches is copied deeply ------------

    def _fork(self, world: _World, touched: int) -> tuple[_World, _Server]:
        new = _World()
        new.servers = list(world.servers)
        new.net, new.used = world.net, world.used  # immutable: shared
        new.leaders, new.committed, new.commit_terms = (world.leaders, world.committed,
                                                        world.commit_terms)
        new.voters, new.depth, new.path = world.voters, world.depth, world.path
        old = world.servers[touched - 1]
        s = _Server(old.id)
        for name in _Server.__slots__:
            setattr(s, name, getattr(old, name))   # immutable values: shared
        assert old.raft is not None
        s.raft = _clone_raft(old.raft)
        s.key = None
        new.servers[touched - 1] = s
        return new, s

    # -- feeding the core and doing what its Update says --------------------------

    def _feed(self, world: _World, s: _Server, event: Event) -> None:
        self._feed_all(world, s, (event,))

    def _feed_all(self, world: _World, s: _Server, events: Sequence[Event]) -> None:
        """Step s's core with events (one step_all if more than one) and carry out
        the one Update."""
        raft = s.raft
        assert raft is not None
        if self.tracer is not None:
            raft.tracer = self.tracer
        try:
            update = raft.step(events[0]) if len(events) == 1 else raft.step_all(events)
        except AssertionError as exc:
            raise Violation(f"server {s.id}: core assertion failed: {exc!r}") from exc
        raft.tracer = None
        self.steps += 1
        if self.steps % 64 == 1:
            check_clonable(raft)
        self._handle(world, s, update)

    def _handle(self, world: _World, s: _Server, u: Update) -> None:
        if u.hard_state is not None and s.fail_hard_state:
            # update.py duty 1: nothing of this Update is written or sent.
            s.fail_hard_state = False
            u.truncate_from, u.persist, u.messages = 0, [], []
            u.install_snapshot = u.hard_state = None
            self._handle(world, s, u)
            self._feed(world, s, HardStateFailed(s.clock, OSError("I/O error")))
            return
        if u.hard_state is not None:
            s.term, s.vote = u.hard_state
        if u.truncate_from or u.persist:
            s.writes += ((u.truncate_from, u.persist_index, tuple(u.persist), None),)
        if u.messages:
            world.net = _net_add(world.net, [(s.id, to, _message_key(m))
                                             for to, _a, m in u.messages], self.bounds.fifo)
        if u.apply:
            self._apply(s, u.apply_index, u.apply)
        if u.install_snapshot is not None:
            s.writes += ((0, 0, (), u.install_snapshot),)
        if u.take_snapshot is not None:
            t = u.take_snapshot
            if t.index != s.applied:
                # update.py duty 6: the machine is snapshotted after this
                # Update's entries are applied, so its state is the one at
                # s.applied; labelled lower, the entries in between would be
                # applied again after a restart from it (or on an install).
                raise Violation(f"snapshot consistency: server {s.id} snapshots at "
                                f"{t.index} a state machine that applied up to {s.applied}")
            s.taking = Snapshot(t.index, t.term, t.configuration_index, t.configuration,
                                _machine_bytes(s.count, s.digest))
        s.deadline = u.deadline_ms

    def _apply(self, s: _Server, first: int, entries: Sequence[Entry]) -> None:
        """Apply committed entries to s's machine: in order, each index once."""
        if first != s.applied + 1:
            raise Violation(f"server {s.id} applies {first} after {s.applied}: "
                            f"{'skips' if first > s.applied + 1 else 'repeats'} an index")
        for entry in entries:
            if entry.type == EntryType.COMMAND:
                s.count += 1
                s.digest = (s.digest * 31 + sum(bytes(entry.payload))) & 0xFFFFFFFF
        s.applied = first + len(entries) - 1

    def _start(self, world: _World, s: _Server) -> None:
        snapshot = s.snapshot
        entries, start = s.log, s.offset + 1
        if snapshot is not None and s.offset + len(s.log) < snapshot.index:
            entries, start = (), snapshot.index + 1
        s.raft = Raft(s.id, str(s.id), self.config, _Timeouts(s.id), term=s.term,
                      voted_for=s.vote, entries=list(entries), start_index=start,
                      snapshot=snapshot)
        if snapshot is None:
            # Spec §2.1: a log loaded from index 1 has its first entry (the
            # bootstrap configuration) committed, and so applied, at start.
            s.count, s.digest, s.applied = 0, 0, int(bool(s.log) and s.offset == 0)
        else:
            s.count = int.from_bytes(bytes(snapshot.data[:8]), "little")
            s.digest = int.from_bytes(bytes(snapshot.data[8:16]), "little")
            s.applied = snapshot.index
        self._feed(world, s, Start(s.clock))

    # -- actions ----------------------------------------------------------------------

    def actions(self, world: _World) -> Iterator[tuple[Any, ...]]:
        b = self.bounds
        used = world.used
        if b.stabilize and (world.net or any(s.writes for s in world.servers)):
            yield ("stabilize",)
        for item in _deliverable(world.net, b.fifo):
            yield ("deliver",) + item
            if used[_USED["duplicate"]] < b.duplicates and not b.fifo:
                yield ("duplicate",) + item
            if used[_USED["drop"]] < b.drops:
                yield ("drop",) + item
            if used[_USED["send_fail"]] < b.send_failures:
                yield ("send_fail",) + item
        for s in world.servers:
            raft = s.raft
            assert raft is not None
            for late in self._ticks(world, s):
                yield ("tick", s.id, late)
            if s.writes:
                yield ("persist", s.id)
                if used[_USED["fail"]] < b.failures and s.writes[0][2]:
                    yield ("fail", s.id)
            if s.taking is not None:
                yield ("snapshot", s.id)
            if used[_USED["restart"]] < b.restarts:
                yield ("restart", s.id)
            if (used[_USED["hard_state_fail"]] < b.hard_state_failures
                    and not s.fail_hard_state and raft.state != State.UNAVAILABLE):
                yield ("hard_state_fail", s.id)
            if self._can_take(world, s):
                yield ("take", s.id)
            if b.batch >= 2:
                yield from self._batches(world, s)
            if raft.state != State.LEADER or raft.transfer is not None:
                continue
            if used[_USED["propose"]] < b.proposals:
                yield ("propose", s.id)
            for kind, *args in self._requests(world, s):
                yield (kind, s.id, *args)

    def _inputs(self, world: _World, s: _Server) -> list[tuple[Any, ...]]:
        """What could reach s's loop together: each message deliverable to it, its
        oldest write's completion, its snapshot taken, a take and a propose, and
        with ``batch_ticks`` its timer (as their single actions allow them)."""
        b, used, raft = self.bounds, world.used, s.raft
        assert raft is not None
        found: list[tuple[Any, ...]] = [("deliver", src, mkey) for src, dst, mkey
                                        in _deliverable(world.net, b.fifo) if dst == s.id]
        # One completion per pending write, oldest first (a disk completes
        # several writes of a server while its loop is busy).
        found += [("persist",)] * min(len(s.writes), b.batch)
        if s.taking is not None:
            found.append(("snapshot",))
        if self._can_take(world, s):
            found.append(("take",))
        # Failures reach the loop like any other event: a write's failure
        # (with those queued behind it), a send that could not be handed over.
        if used[_USED["fail"]] < b.failures and s.writes and s.writes[0][2]:
            found.append(("fail",))
        if used[_USED["send_fail"]] < b.send_failures:
            found += [("send_fail", dst, mkey) for src, dst, mkey
                      in _deliverable(world.net, b.fifo) if src == s.id]
        if raft.state == State.LEADER and raft.transfer is None:
            # Client requests: what the single actions offer a leader.
            if used[_USED["propose"]] < b.proposals:
                found.append(("propose",))
            found += self._requests(world, s)
        if b.batch_ticks:
            found += [("tick", late) for late in self._ticks(world, s)]
        return found

    def _requests(self, world: _World, s: _Server) -> Iterator[tuple[Any, ...]]:
        """A leader's transfers and membership changes, within their budgets:
        (kind, *arguments) as the actions "transfer", "add", "assign" and
        "remove" take them after the server id."""
        b, used, raft = self.bounds, world.used, s.raft
        assert raft is not None
        if used[_USED["transfer"]] < b.transfers:
            for target in (0, *raft.configuration.voter_ids):
                if target != s.id:
                    yield ("transfer", target)
        if used[_USED["change"]] < b.changes:
            for joining in range(b.servers + 1, b.servers + b.joining + 1):
                if raft.configuration.get(joining) is None:
                    yield ("add", joining)
            for server in raft.configuration.servers:
                if server.role == Role.SPARE:
                    yield ("assign", server.id, int(Role.VOTER))
                    yield ("assign", server.id, int(Role.STANDBY))
                elif server.id != s.id:
                    yield ("remove", server.id)

    def _ticks(self, world: _World, s: _Server) -> tuple[int, ...]:
        """The ticks s may take: 0 (to its deadline), 1 (a leader's, late: to
        its election deadline)."""
        b, used, raft = self.bounds, world.used, s.raft
        assert raft is not None
        leading = raft.state == State.LEADER
        if s.deadline is None or not (used[_USED["leader_tick"]] < b.leader_ticks if leading
                                      else used[_USED["timeout"]] < b.timeouts):
            return ()
        if b.late_ticks and leading and self._late(raft) > max(s.deadline, s.clock):
            return (0, 1)
        return (0,)

    def _can_take(self, world: _World, s: _Server) -> bool:
        raft = s.raft
        assert raft is not None
        return (world.used[_USED["take"]] < self.bounds.snapshots
                and raft.state != State.UNAVAILABLE and s.taking is None
                and raft.last_applied > raft.log.snapshot_index)

    def _batches(self, world: _World, s: _Server) -> Iterator[tuple[Any, ...]]:
        """("batch", server, inputs): every ordered choice of 2..batch of s's
        inputs (the order is the order step_all sees them in; the completions
        of its writes are alike, each the oldest left, so orders that differ
        only among them are one)."""
        inputs = self._inputs(world, s)
        for size in range(2, min(self.bounds.batch, len(inputs)) + 1):
            for chosen in dict.fromkeys(itertools.permutations(inputs, size)):
                if self._affordable(world, chosen):
                    yield ("batch", s.id, chosen)

    def _affordable(self, world: _World, chosen: Sequence[tuple[Any, ...]]) -> bool:
        """Whether the budgets left pay for every input of chosen together (two
        failed sends, or two transfers, each offered alone within a budget
        of one, are not)."""
        b, used = self.bounds, world.used
        limits = {"send_fail": b.send_failures, "transfer": b.transfers, "change": b.changes}
        spent = Counter(_REQUESTS[kind][0] if kind in _REQUESTS else kind
                                    for kind, *_args in chosen)
        return all(used[_USED[name]] + spent[name] <= limit
                   for name, limit in limits.items() if spent[name])

    def _late(self, raft: Raft) -> int:
        deadline = raft.election_timer_start + raft.config.election_timeout_ms
        if raft.transfer is not None:
            deadline = min(deadline, raft.transfer.start_ms + raft.config.election_timeout_ms)
        return deadline

    def apply(self, world: _World, action: tuple[Any, ...]) -> _World:
        """A new world: world after action (world itself is not changed)."""
        kind = action[0]
        if kind == "send_fail":
            _kind, src, dst, mkey = action
            new, s = self._fork(world, src)
            new.net = _net_remove(new.net, (src, dst, mkey), self.bounds.fifo)
            new.used = _bump(new.used, kind)
            self._feed(new, s, SendFailed(s.clock, dst, _message_of(mkey)))
        elif kind in ("deliver", "duplicate", "drop"):
            _kind, src, dst, mkey = action
            new, s = self._fork(world, dst)
            item = (src, dst, mkey)
            if kind != "duplicate":
                new.net = _net_remove(new.net, item, self.bounds.fifo)
            if kind != "deliver":
                new.used = _bump(new.used, kind)
            if kind != "drop":
                self._feed(new, s, Receive(s.clock, src, str(src), _message_of(mkey)))
        elif kind == "stabilize":
            new = self._stabilize(world)
        elif kind == "batch":
            new, s = self._fork(world, action[1])
            self._do_batch(new, s, action[2])
        else:
            server_id = action[1]
            new, s = self._fork(world, server_id)
            getattr(self, "_do_" + kind)(new, s, action)
        new.depth = world.depth + 1
        new.path = world.path + (action,)
        return new

    def _stabilize(self, world: _World) -> _World:
        """Deliver every message and complete every write, until nothing is left
        (no time passes): what a quiet, fast cluster does between two faults."""
        new = world
        for s in world.servers:
            new = self._fork(new, s.id)[0]
        servers = new.servers
        for _round in range(100):
            busy = False
            for s in servers:
                while s.writes:
                    self._do_persist(new, s, ("persist", s.id))
                    busy = True
            for item in _deliverable(new.net, self.bounds.fifo):
                src, dst, mkey = item
                new.net = _net_remove(new.net, item, self.bounds.fifo)
                s = servers[dst - 1]
                self._feed(new, s, Receive(s.clock, src, str(src), _message_of(mkey)))
                busy = True
            if not busy:
                break
        for s in servers:
            s.key = None
        return new

    def _do_tick(self, world: _World, s: _Server, action: tuple[Any, ...]) -> None:
        self._feed(world, s, self._tick_fired(world, s, action[2]))

    def _tick_fired(self, world: _World, s: _Server, late: int) -> Event:
        """s's clock jumps to its deadline (late: its election deadline)."""
        raft = s.raft
        assert raft is not None and s.deadline is not None
        when = self._late(raft) if late else s.deadline
        world.used = _bump(world.used, "leader_tick" if raft.state == State.LEADER
                           else "timeout")
        s.clock = max(s.clock, when)
        return Tick(s.clock)

    def _do_fail(self, world: _World, s: _Server, action: tuple[Any, ...]) -> None:
        for event in self._writes_failed(world, s):
            self._feed(world, s, event)

    def _writes_failed(self, world: _World, s: _Server) -> list[Event]:
        """The oldest pending log write fails, and every write queued behind it
        (a writer fails its queue, libraft 0.18); an install among them still
        happens.  Nothing failed reaches the disk.  The events reporting it
        (the single action feeds them one step each)."""
        world.used = _bump(world.used, "fail")
        failed, s.writes = s.writes, ()
        events: list[Event] = []
        for _truncate, first, entries, install in failed:
            if install is not None:
                s.writes += ((0, 0, (), install),)
            elif entries:
                events.append(PersistFailed(s.clock, first, OSError("I/O error")))
        return events

    def _do_hard_state_fail(self, world: _World, s: _Server, action: tuple[Any, ...]) -> None:
        """The server's next term/vote write will fail (HardStateFailed)."""
        world.used = _bump(world.used, "hard_state_fail")
        s.fail_hard_state = True

    def _do_batch(self, world: _World, s: _Server, inputs: Sequence[tuple[Any, ...]]) -> None:
        """Carry out each input's shell side (the message leaves the network, the
        write reaches the disk, ...), then feed their events in one step_all:
        one Update, carried out as any other."""
        events: list[Event] = []
        for what in inputs:
            kind = what[0]
            if kind == "deliver":
                _kind, src, mkey = what
                world.net = _net_remove(world.net, (src, s.id, mkey), self.bounds.fifo)
                events.append(Receive(s.clock, src, str(src), _message_of(mkey)))
                continue
            if kind == "tick":      # events after it in the batch arrived later
                events.append(self._tick_fired(world, s, what[1]))
                continue
            if kind == "send_fail":
                _kind, dst, mkey = what
                world.net = _net_remove(world.net, (s.id, dst, mkey), self.bounds.fifo)
                world.used = _bump(world.used, kind)
                events.append(SendFailed(s.clock, dst, _message_of(mkey)))
                continue
            if kind in _REQUESTS:
                world.used = _bump(world.used, _REQUESTS[kind][0])
                events.append(_REQUESTS[kind][1](s.clock, *what[1:]))
                continue
            if kind in ("persist", "fail") and not s.writes:
                continue            # an earlier "fail" in this batch failed them all
            if kind == "fail":
                events += self._writes_failed(world, s)
                continue
            event = {"persist": self._write_done, "snapshot": self._snapshot_done,
                     "take": self._take_asked, "propose": self._propose_asked}[kind](world, s)
            if event is not None:
                events.append(event)
        if events:
            self._feed_all(world, s, events)

    def _do_persist(self, world: _World, s: _Server, action: tuple[Any, ...]) -> None:
        event = self._write_done(world, s)
        if event is not None:
            self._feed(world, s, event)

    def _write_done(self, world: _World, s: _Server) -> Event | None:
        """The oldest pending write reaches the disk: the event reporting it."""
        (truncate, first, entries, install), s.writes = s.writes[0], s.writes[1:]
        if install is not None:
            s.log, s.offset, s.snapshot = (), install.index, install
            s.count = int.from_bytes(bytes(install.data[:8]), "little")
            s.digest = int.from_bytes(bytes(install.data[8:16]), "little")
            s.applied = install.index
            return SnapshotInstalled(s.clock, install.index)
        log = s.log
        if truncate:
            log = log[:max(truncate - 1 - s.offset, 0)]
        if entries:
            if first != s.offset + len(log) + 1:
                # update.py duty 2: a write appends right after the log as
                # truncated; anything else leaves a hole or a stale tail.
                raise Violation(f"server {s.id} writes entries from {first} after its "
                                f"log ends at {s.offset + len(log)}")
            log += entries
        s.log = log
        if entries:
            return Persisted(s.clock, first + len(entries) - 1, entries[-1].term)
        return None

    def _do_snapshot(self, world: _World, s: _Server, action: tuple[Any, ...]) -> None:
        self._feed(world, s, self._snapshot_done(world, s))

    def _snapshot_done(self, world: _World, s: _Server) -> Event:
        """The snapshot being taken is durable: the event reporting it."""
        snapshot, s.taking = s.taking, None
        assert snapshot is not None
        if s.snapshot is None or snapshot.index > s.snapshot.index:
            s.snapshot = snapshot
            keep_from = min(snapshot.index - self.config.snapshot_trailing,
                            s.offset + len(s.log))
            if keep_from > s.offset:
                s.log = s.log[keep_from - s.offset:]
                s.offset = keep_from
        return SnapshotTaken(s.clock, snapshot.index, snapshot.data)

    def _do_restart(self, world: _World, s: _Server, action: tuple[Any, ...]) -> None:
        world.used = _bump(world.used, "restart")
        s.writes, s.taking, s.deadline, s.fail_hard_state = (), None, None, False
        self._start(world, s)

    def _do_take(self, world: _World, s: _Server, action: tuple[Any, ...]) -> None:
        self._feed(world, s, self._take_asked(world, s))

    def _take_asked(self, world: _World, s: _Server) -> Event:
        world.used = _bump(world.used, "take")
        return TakeSnapshot(s.clock)

    def _do_propose(self, world: _World, s: _Server, action: tuple[Any, ...]) -> None:
        self._feed(world, s, self._propose_asked(world, s))

    def _propose_asked(self, world: _World, s: _Server) -> Event:
        world.used = _bump(world.used, "propose")
        return Propose(s.clock, [b"cmd%05d" % world.used[0]])

    def _do_request(self, world: _World, s: _Server, action: tuple[Any, ...]) -> None:
        """A client request at leader s: ("transfer", s, target), ("add", s, id),
        ("assign", s, id, role) or ("remove", s, id)."""
        budget, make = _REQUESTS[action[0]]
        world.used = _bump(world.used, budget)
        self._feed(world, s, make(s.clock, *action[2:]))

    _do_transfer = _do_add = _do_assign = _do_remove = _do_request

    # -- safety ------------------------------------------------------------------------

    def check(self, world: _World) -> None:
        """Raise Violation if a safety property fails in world (and update its history)."""
        servers = world.servers
        self._check_leaders(world)
        self._check_log_matching(world)
        self._check_committed(world)
        committed = world.committed
        for s in servers:
            raft = s.raft
            assert raft is not None
            if raft.state == State.LEADER:
                log = raft.log
                for index in range(log.offset + 1, len(committed) + 1):
                    if (world.commit_terms[index - 1] < raft.current_term
                            and log.get(index) != committed[index - 1]):
                        raise Violation(f"leader completeness: leader {s.id} of term "
                                        f"{raft.current_term} lacks committed entry {index}")
                self._check_matches(world, s, raft)
        self._check_durable(world)

    def _check_leaders(self, world: _World) -> None:
        leaders = dict(world.leaders)
        for s in world.servers:
            raft = s.raft
            assert raft is not None
            if raft.state == State.LEADER:
                have = leaders.setdefault(raft.current_term, s.id)
                if have != s.id:
                    raise Violation(f"election safety: {have} and {s.id} lead term "
                                    f"{raft.current_term}")
        if len(leaders) != len(world.leaders):
            world.leaders = tuple(sorted(leaders.items()))

    def _check_log_matching(self, world: _World) -> None:
        seen: dict[tuple[int, int], tuple[bytes, int]] = {}

        def visit(first: int, entries: Sequence[Entry], prev_term: int | None,
                  where: str) -> None:
            for k, e in enumerate(entries):
                key = (first + k, e.term)
                have = seen.get(key)
                value = (bytes(e.payload), -1 if prev_term is None else prev_term)
                if have is None:
                    seen[key] = value
                elif have[0] != value[0] or (have[1] != value[1] and -1 not in (have[1],
                                                                                   value[1])):
                    raise Violation(f"log matching: {where} entry {first + k} term {e.term} "
                                    f"differs from another log's")
                prev_term = e.term

        for s in world.servers:
            raft = s.raft
            assert raft is not None
            log = raft.log
            visit(log.offset + 1, log.entries, log.term_of(log.offset), f"server {s.id}")
            visit(s.offset + 1, s.log, None, f"server {s.id} (disk)")
        for src, _dst, mkey in _net_items(world.net, self.bounds.fifo):
            if isinstance(mkey, tuple) and mkey[0] is AppendEntries:
                visit(mkey[2] + 1, mkey[5], mkey[3], f"AppendEntries from {src}")

    def _check_committed(self, world: _World) -> None:
        committed = list(world.committed)
        terms = list(world.commit_terms)
        # Leaders first: the term an entry is first committed in is its
        # leader's (a follower that learns of it may already be in a later one).
        for s in sorted(world.servers, key=lambda s: s.raft is None
                        or s.raft.state != State.LEADER):
            raft = s.raft
            assert raft is not None
            log = raft.log
            for index in range(log.offset + 1, raft.commit_index + 1):
                entry = log.get(index)
                assert entry is not None
                if index <= len(committed):
                    if committed[index - 1] != entry:
                        raise Violation(f"state machine safety: server {s.id} commits "
                                        f"{entry[:2]} at {index}, another "
                                        f"{committed[index - 1][:2]}")
                elif index == len(committed) + 1:
                    committed.append(entry)
                    terms.append(raft.current_term)
                    if entry.type == EntryType.CHANGE:
                        world.voters = _voters_in(entry.payload)
        if len(committed) != len(world.committed):
            world.committed, world.commit_terms = tuple(committed), tuple(terms)

    def _check_durable(self, world: _World) -> None:
        """Every committed entry is durable on enough servers that every quorum of
        every electorate that could choose a leader now or after a crash meets
        them: for an electorate of n voters, on at least n - (n//2 + 1) + 1 of
        its voters (a majority when n is odd, half when n is even; dissertation
        §4.1: single-server changes keep old and new quorums overlapping, and a
        leader counts with the newest configuration in its log)."""
        committed = world.committed
        if len(committed) < 2:
            return
        holders_of: list[set[int]] = [set() for _ in committed]
        for s in world.servers:
            snap = s.snapshot.index if s.snapshot is not None else 0
            for index in range(2, len(committed) + 1):
                k = index - s.offset - 1
                if index <= snap or (0 <= k < len(s.log) and s.log[k] == committed[index - 1]):
                    holders_of[index - 1].add(s.id)
        for voters in self._electorates(world):
            need = len(voters) - (len(voters) // 2 + 1) + 1
            for index in range(2, len(committed) + 1):
                have = len(holders_of[index - 1] & voters)
                if have < need:
                    raise Violation(f"durability: committed entry {index} is durable on "
                                    f"{have} of the voters {sorted(voters)}")

    def _electorates(self, world: _World) -> set[frozenset[int]]:
        """The voter sets a leader could be elected by: the latest committed
        configuration, and, for each of its voters, the configuration in effect,
        the one it rolls back to, and the one its durable log would load.  A
        server removed earlier may still hold an older configuration, but it
        cannot win with it: the next voter removed holds the entry that removed
        it and refuses it the vote (each change removes one voter, §4.1)."""
        found = {world.voters}
        for s in world.servers:
            if s.id not in world.voters:
                continue
            raft = s.raft
            assert raft is not None
            found.add(frozenset(raft.configuration.voter_ids))
            found.add(frozenset(raft.configuration_committed.voter_ids))
            for entry in reversed(s.log):
                if entry.type == EntryType.CHANGE:
                    found.add(_voters_in(entry.payload))
                    break
            else:
                if s.snapshot is not None:
                    found.add(frozenset(s.snapshot.configuration.voter_ids))
        found.discard(frozenset())
        return found

    def _check_matches(self, world: _World, leader: _Server, raft: Raft) -> None:
        for server_id, p in raft.progress.items():
            if server_id == leader.id or not p.match_index:
                continue
            other = world.servers[server_id - 1]
            if other.raft is None or other.raft.current_term != raft.current_term:
                continue
            index, term = p.match_index, raft.log.term_of(p.match_index)
            snap = other.snapshot.index if other.snapshot is not None else 0
            k = index - other.offset - 1
            if term is None or index <= snap:
                continue
            if not (0 <= k < len(other.log) and other.log[k].term == term):
                raise Violation(f"leader {leader.id} counts follower {server_id} at "
                                f"{index} (term {term}) but it does not hold it durably")


def _clone_raft(raft: Raft) -> Raft:
    """A copy of raft that shares nothing mutable with it (much faster than pickle
    or deepcopy: values, entries, configurations and snapshots are immutable and
    shared; ``check_clonable`` verifies that every other field is)."""
    new = Raft.__new__(Raft)
    for name in _SHARED_SLOTS:
        setattr(new, name, getattr(raft, name))
    old_log = raft.log
    log = Log.__new__(Log)
    log.entries, log._sizes = old_log.entries[:], old_log._sizes[:]
    log._base, log.offset = old_log._base, old_log.offset
    log.snapshot_index, log.snapshot_term = old_log.snapshot_index, old_log.snapshot_term
    new.log = log
    progress: dict[int, Progress] = {}
    for server_id, p in raft.progress.items():
        q = Progress.__new__(Progress)
        for attr in _PROGRESS_SLOTS:
            setattr(q, attr, getattr(p, attr))
        progress[server_id] = q
    new.progress = progress
    new._targets = [(i, address, progress[i]) for i, address, _p in raft._targets]
    transfer = raft.transfer
    if transfer is not None:
        new.transfer = PendingTransfer(transfer.target_id, transfer.start_ms, transfer.req)
        new.transfer.timeout_now_sent = transfer.timeout_now_sent
    else:
        new.transfer = None
    new.votes = set(raft.votes)
    new.pending = deque(raft.pending)
    new._pending_changes = deque(raft._pending_changes)
    new._reads = _clone_reads(raft._reads)
    new._out = Update()
    return new


def _clone_reads(reads: ReadRounds) -> ReadRounds:
    new = ReadRounds(reads.round, list(reads.orphaned), reads.request_id)
    new.in_flight, new.index = reads.in_flight, reads.index
    new.sent_ms, new.resent_ms = reads.sent_ms, reads.resent_ms
    new.acks, new.current, new.next = set(reads.acks), list(reads.current), list(reads.next)
    new.confirmed = deque((index, list(reqs)) for index, reqs in reads.confirmed)
    new.lease_until_ms = reads.lease_until_ms
    new.announced, new.leader_reads = set(reads.announced), reads.leader_reads
    new.forward = list(reads.forward)
    new.remote = {k: (list(reqs), sent) for k, (reqs, sent) in reads.remote.items()}
    new.remote_to = reads.remote_to
    return new


_MUTABLE_SLOTS = frozenset({"log", "progress", "_targets", "transfer", "votes", "pending",
                            "_pending_changes", "_out", "_reads"})
_SHARED_SLOTS = tuple(n for n in RaftState.__slots__ if n not in _MUTABLE_SLOTS)
_PROGRESS_SLOTS = Progress.__slots__
_IMMUTABLE = (int, str, bool, tuple, type(None), Config, Configuration, Snapshot,
              random.Random)


def check_clonable(raft: Raft) -> None:
    """Every field _clone_raft shares must hold an immutable value (a new field of a
    mutable type would be shared between worlds and break the exploration)."""
    for name in _SHARED_SLOTS:
        value = getattr(raft, name)
        if not isinstance(value, _IMMUTABLE):
            raise TypeError(f"Raft.{name} holds a {type(value).__name__}: teach "
                            f"_clone_raft to copy it")


def _bump(used: tuple[int, ...], what: str) -> tuple[int, ...]:
    k = _USED[what]
    return used[:k] + (used[k] + 1,) + used[k + 1:]


# -- exploration -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Counterexample:
    """The shortest path found from the initial state to a violation."""

    depth: int
    path: tuple[tuple[Any, ...], ...]
    error: str


@dataclass(slots=True)
class Report:
    bounds: Bounds
    states: int = 0
    transitions: int = 0
    depth: int = 0                   # deepest level fully explored
    per_depth: list[int] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = False           # every state within the bounds was explored
    counterexample: Counterexample | None = None

    def summary(self) -> str:
        found = (f"VIOLATION at depth {self.counterexample.depth}: "
                 f"{self.counterexample.error}" if self.counterexample else "no violation")
        limit = "complete" if self.complete else "cut short"
        return (f"{self.states:,} states, {self.transitions:,} transitions, depth "
                f"{self.depth} ({limit}), {self.seconds:.1f} s: {found}")


def explore(bounds: Bounds, progress: Callable[[Report], None] | None = None,
            clock: Callable[[], float] | None = None) -> Report:
    """Breadth-first search of every state within bounds; stops at the first violation.

    ``clock`` (seconds, e.g. time.monotonic) measures the run and enforces
    ``max_seconds``; this module reads no clock of its own (it stays
    deterministic).  States are remembered by their 64-bit hash, as explicit
    model checkers with hash compaction do: two states may collide with odds
    of about n²/2⁶⁵ for n states, negligible at the millions explored here."""
    now = clock or (lambda: 0.0)
    model = Model(bounds)
    report = Report(bounds)
    started = now()
    root = model.initial()
    seen = {hash(root.key())}
    frontier = [root]
    report.states = 1
    report.per_depth.append(1)
    for depth in range(bounds.depth):
        nxt: list[_World] = []
        for world in frontier:
            for action in model.actions(world):
                report.transitions += 1
                try:
                    new = model.apply(world, action)
                    model.check(new)
                except Violation as exc:
                    report.counterexample = Counterexample(depth + 1,
                                                           world.path + (action,), str(exc))
                    report.seconds = now() - started
                    return report
                key = hash(new.key())
                if key in seen:
                    continue
                seen.add(key)
                report.states += 1
                if (len(_net_items(new.net, bounds.fifo)) <= bounds.max_in_flight
                        and _within_terms(new, bounds)):
                    nxt.append(new)
            if _out_of_budget(bounds, report, now() - started):
                report.seconds = now() - started
                return report
        report.depth = depth + 1
        report.per_depth.append(len(nxt))
        report.seconds = now() - started
        if progress is not None:
            progress(report)
        frontier = nxt
        if not frontier:
            break
    report.complete = True
    report.seconds = now() - started
    return report


def _within_terms(world: _World, bounds: Bounds) -> bool:
    return all(s.raft is not None and s.raft.current_term <= bounds.max_term
               for s in world.servers)


def _out_of_budget(bounds: Bounds, report: Report, elapsed: float) -> bool:
    return bool((bounds.max_states and report.states >= bounds.max_states) or
                (bounds.max_seconds and elapsed >= bounds.max_seconds))


def replay(bounds: Bounds, path: Sequence[tuple[Any, ...]], tracer: Tracer) -> str:
    """Run path again with the core's trace lines on; returns the error, if any."""
    model = Model(bounds, tracer)
    world = model.initial()
    for action in path:
        tracer(0, 0, "action " + describe(action))
        try:
            world = model.apply(world, action)
            model.check(world)
        except Violation as exc:
            return str(exc)
    return ""


def describe(action: tuple[Any, ...]) -> str:
    kind = action[0]
    if kind in ("deliver", "duplicate", "drop"):
        return f"{kind} {action[1]}->{action[2]} {_message_of(action[3])}"
    if kind == "tick":
        return f"tick {action[1]}" + (" (late: to its election deadline)" if action[2] else "")
    if kind == "batch":
        parts = [f"deliver {what[1]}->{action[1]} {_message_of(what[2])}"
                 if what[0] == "deliver" else
                 f"send_fail {action[1]}->{what[1]} {_message_of(what[2])}"
                 if what[0] == "send_fail" else " ".join(map(str, what))
                 for what in action[2]]
        return f"batch at {action[1]} (one step_all): " + "; ".join(parts)
    return " ".join(str(a) for a in action)

