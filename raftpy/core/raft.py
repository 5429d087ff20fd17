"""Raft: the sans-I/O server.  ``step(event) -> Update`` is the whole interface.

May import: the standard library, ``raftpy.errors`` and ``raftpy.core``.
The shell drives it like this (see update.py for the duties, in order)::

    raft = Raft(1, "10.0.0.1:9001", Config(), random.Random(),
                term=term, voted_for=vote, entries=loaded_entries)
    update = raft.step(Start(now_ms))
    loop:
        update = raft.step_all(events_that_arrived)   # one Update per batch
        persist update.hard_state; truncate/append update.persist;
        send update.messages; apply update.apply; resolve requests;
        schedule Tick at update.deadline_ms; report Persisted(index, term)

Rules kept: handlers never raise for a peer's message (a stale or odd one is
dropped and traced); client requests that cannot be served come back in
``Update.failed`` with libraft's error class; after a fatal inconsistency the
server is UNAVAILABLE for good (spec §2.16).  The leader decides its sends
once per ``step_all`` (``trigger_all``), which is what makes batches cheap.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Any

from raftpy.core.config import Config
from raftpy.core.configuration import Configuration, Role, decode_configuration
from raftpy.core.convert import BARRIER_PAYLOAD, ConvertMixin
from raftpy.core.election import ElectionMixin
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
from raftpy.core.log import Log
from raftpy.core.membership import MembershipMixin
from raftpy.core.messages import (
    FEATURES,
    AppendEntries,
    AppendEntriesResult,
    InstallSnapshot,
    ReadHeartbeat,
    ReadHeartbeatResult,
    ReadIndexRequest,
    ReadIndexResult,
    RequestVote,
    RequestVoteResult,
    TimeoutNow,
)
from raftpy.core.read_index import ReadIndexMixin
from raftpy.core.replication import ReplicationMixin
from raftpy.core.snapshot import SnapshotMixin
from raftpy.core.snapshot_types import Snapshot
from raftpy.core.state import PendingTransfer, ReadRounds
from raftpy.core.trace import Tracer
from raftpy.core.types import Entry, EntryType, State
from raftpy.core.update import Update
from raftpy.errors import BadIdError, BadRoleError, NotFoundError, NotLeaderError

__all__ = ["Raft", "bootstrap_entries"]

# The highest term a message may carry.  libraft adopts any 64-bit term; one
# frame with term 2**64-1 (from anyone: the wire has no authentication) then
# leaves no room for the next election's term + 1, which cannot be stored
# or sent, and every server that saw it becomes UNAVAILABLE for good (the term
# is durable).  A deliberate deviation: such a message is dropped and traced.
MAX_TERM = 2**63 - 1


def bootstrap_entries(configuration: Configuration) -> list[Entry]:
    """The log of a freshly bootstrapped server: one CHANGE entry at index 1, term 1."""
    return [Entry(1, EntryType.CHANGE, configuration.encode())]


class Raft(ConvertMixin, ElectionMixin, ReplicationMixin, SnapshotMixin, MembershipMixin,
           ReadIndexMixin):
    """One Raft server's algorithm, driven by events; see the module docstring."""

    __slots__ = ()

    def __init__(self, server_id: int, address: str, config: Config | None = None,
                 rng: random.Random | None = None, *, term: int = 0, voted_for: int = 0,
                 entries: Sequence[Entry] = (), start_index: int = 1,
                 snapshot: Snapshot | None = None, tracer: Tracer | None = None) -> None:
        assert server_id > 0
        self.id = server_id
        self.address = address
        self.config = config or Config()
        self.rng = rng if rng is not None else random.Random(server_id)
        self.tracer = tracer
        self.now = 0
        self.current_term = term
        self.voted_for = voted_for
        self.snapshot = snapshot
        self._taking = self._installing = None
        self._install_term = 0
        self._deferred_install = None
        self.promotee_id = self.round_number = self.round_index = self.round_start = 0
        self._promotion_req = None
        self.state = State.UNAVAILABLE
        if snapshot is None:
            self.log = Log(entries, start_index)
            # Spec §2.1 step 2: "the first entry is identical on all servers".
            self.commit_index = 1 if self.log.last_index and start_index == 1 else 0
        else:
            # Spec §2.1: the snapshot restored, the log continues after it;
            # loaded entries that end before it are stale and dropped.
            assert start_index <= snapshot.index + 1 or not entries
            if start_index + len(entries) - 1 < snapshot.index:
                entries, start_index = (), snapshot.index + 1
            self.log = Log(entries, start_index, snapshot.index, snapshot.term)
            self.commit_index = snapshot.index
        self.last_applied = self.commit_index
        self.last_stored = self.log.last_index  # what we were given was loaded from disk
        self._load_configuration()
        self.election_timer_start = 0
        self.randomized_election_timeout = self.config.election_timeout_ms
        self.current_leader_id = 0
        self.current_leader_address = ""
        self._verified_index = self._leader_commit = 0
        self._kept_timeout_now = None
        self.votes = set()
        self.in_pre_vote = self.disrupt_leader = False
        self.progress = {}
        self._targets = []
        self.pending = deque()
        self.voter_contacts = -1
        self.reign_first_index = 0
        self.transfer = None
        self._reads = ReadRounds()
        self._out = Update()
    def _load_configuration(self) -> None:
        """Configuration from the loaded log (spec §2.1 step 3)."""
        snapshot = self.snapshot
        base = snapshot.configuration_index if snapshot is not None else 0
        changes = [self.log.offset + 1 + k for k, e in enumerate(self.log.entries)
                   if e.type == EntryType.CHANGE and self.log.offset + 1 + k > base]
        self._pending_changes = deque()
        self.configuration_uncommitted_index = 0
        self.configuration_index = base
        committed = snapshot.configuration if snapshot is not None else Configuration()
        if changes and changes[-1] == 1:
            committed = self._decode_at(1)
            self.configuration_index = 1
        elif changes:
            if len(changes) > 1:
                committed = self._decode_at(changes[-2])
                self.configuration_index = changes[-2]
            self.configuration_uncommitted_index = changes[-1]
        self.configuration_committed = committed
        latest = self._decode_at(changes[-1]) if changes else committed
        self._set_configuration(latest)

    def _decode_at(self, index: int) -> Configuration:
        entry = self.log.get(index)
        assert entry is not None
        return decode_configuration(entry.payload)

    # -- driving -------------------------------------------------------------

    def step(self, event: Event) -> Update:
        """Process one event and return what the shell must do."""
        self.now = event.time_ms
        _HANDLERS[type(event)](self, event)
        return self._flush()

    def step_all(self, events: Iterable[Event]) -> Update:
        """Process a batch of events (in order) and return ONE accumulated Update."""
        handlers = _HANDLERS
        for event in events:
            self.now = event.time_ms
            handlers[type(event)](self, event)
        return self._flush()

    def _flush(self) -> Update:
        # The invariants of state.py, checked once per batch.
        assert self.last_applied <= self.commit_index <= self.log.last_index
        assert self.last_stored <= self.log.last_index
        reads = self._reads
        if reads.next or reads.confirmed or reads.orphaned or reads.forward or reads.remote:
            self.flush_reads()  # before trigger_all: a round's barrier goes out with it
        if self.state == State.LEADER:
            self.trigger_all()
        out = self._out
        if out.take_snapshot is not None and out.take_snapshot.index != self.last_applied:
            self.retarget_snapshot()
        self._out = Update()
        out.state = self.state
        out.leader_id = self.leader_id
        out.commit_index = self.commit_index
        out.deadline_ms = self._deadline()
        return out

    def _deadline(self) -> int | None:
        state = self.state
        if state == State.UNAVAILABLE:
            return None
        if state == State.LEADER:
            heartbeat = self.config.heartbeat_timeout_ms
            deadline = self.election_timer_start + self.config.election_timeout_ms
            for _id, _address, p in self._targets:
                if p.last_send + heartbeat < deadline:
                    deadline = p.last_send + heartbeat
        else:
            deadline = self.election_timer_start + self.randomized_election_timeout
        if self.transfer is not None:
            deadline = min(deadline, self.transfer.start_ms + self.config.election_timeout_ms)
        remote = self._reads.remote
        if remote:  # the oldest forwarded read gives up then (read_index.py)
            oldest_ms = next(iter(remote.values()))[1]
            deadline = min(deadline, oldest_ms + self.config.election_timeout_ms)
        return max(deadline, self.now)

    # -- introspection ---------------------------------------------------------

    @property
    def leader_id(self) -> int:
        """The leader as raft_leader reports it: none while a transfer is pending."""
        if self.state == State.LEADER:
            return 0 if self.transfer is not None else self.id
        return self.current_leader_id if self.state == State.FOLLOWER else 0

    @property
    def role(self) -> Role | None:
        return self.configuration.role_of(self.id)

    def __repr__(self) -> str:
        return (f"Raft(id={self.id} {self.state.name} term={self.current_term} "
                f"last={self.log.last_index} stored={self.last_stored} "
                f"commit={self.commit_index} applied={self.last_applied})")

    # -- events ----------------------------------------------------------------

    def _on_start(self, event: Start) -> None:
        assert self.state == State.UNAVAILABLE
        self._trace(f"start term={self.current_term} voted_for={self.voted_for} "
                    f"last={self.log.last_index}/{self.log.last_term}")
        self.to_follower()
        if self._voters == (self.id,):
            self.to_candidate(disrupt_leader=False)

    def _on_close(self, event: Close) -> None:
        self.to_unavailable("closed")

    def _on_receive(self, event: Receive) -> None:
        if self.state == State.UNAVAILABLE:
            return
        message = event.message
        if self.tracer is not None:
            self._trace(f"recv {event.from_id} {message}")
        if message.term > MAX_TERM:
            self._trace(f"drop: term {message.term} is above {MAX_TERM}")
            return
        _RECEIVERS[type(message)](self, event.from_id, event.from_address, message)
        if (self.transfer is not None and self.state == State.FOLLOWER
                and self.current_leader_id):
            self._complete_transfer()  # a leader is known: the target, or another

    def _on_take_snapshot(self, event: TakeSnapshot) -> None:
        if not self.maybe_take_snapshot(on_demand=True):
            self._trace("no snapshot: one in progress, unavailable, or nothing new applied")

    def _on_snapshot_taken(self, event: SnapshotTaken) -> None:
        self.on_snapshot_taken(event.index, event.data)

    def _on_snapshot_installed(self, event: SnapshotInstalled) -> None:
        if self.state != State.UNAVAILABLE:
            self.on_snapshot_installed(event.index, event.error)

    def _on_persisted(self, event: Persisted) -> None:
        if self.state != State.UNAVAILABLE:
            self.on_persisted(event.index, event.term)

    def _on_persist_failed(self, event: PersistFailed) -> None:
        """A log write failed (spec §2.5 leader side, §2.12 step 9 follower side)."""
        index = event.index
        if self.state == State.UNAVAILABLE or index > self.log.last_index:
            return
        if self._installing is not None:
            # A write issued before the install (update.py item 6): the
            # snapshot replaces that log, so its failure costs nothing.
            self._trace(f"ignore failed write from {index}: installing a snapshot")
            return
        self._trace(f"write from {index} failed: {event.error}")
        if index <= self.commit_index:
            self.to_unavailable("a committed entry could not be written")
            return
        self._truncate(index)
        if self.state == State.LEADER:
            failed = self._out.failed
            while self.pending and self.pending[-1][0] >= index:
                failed.append((self.pending.pop()[1], event.error))
            self.to_follower()
        elif self.state == State.FOLLOWER and self.current_leader_id:
            self._send(self.current_leader_id, self.current_leader_address,
                       AppendEntriesResult(self.current_term, index, self.last_stored, FEATURES))

    def _on_hard_state_failed(self, event: HardStateFailed) -> None:
        """Term or vote could not be persisted: fatal, as in libraft (spec §2.16).
        The shell sent nothing that depended on it (update.py)."""
        self.to_unavailable(f"could not persist term/vote: {event.error}")

    def _on_send_failed(self, event: SendFailed) -> None:
        if self.state == State.LEADER:
            self.on_send_failed(event.to_id, event.message)

    def _on_tick(self, event: Tick) -> None:
        state = self.state
        if state == State.UNAVAILABLE:
            return
        expired = self.now - self.election_timer_start
        if state == State.LEADER:
            if expired >= self.config.election_timeout_ms:
                self.check_quorum()
            if self.promotee_id and self.state == State.LEADER:
                self.promotion_watchdog()
            if self.state == State.LEADER:
                self.read_tick()
        elif self._reads.remote:
            self.read_tick()  # give up forwarded reads unanswered for too long
        if state != State.LEADER and expired >= self.randomized_election_timeout:
            if state == State.CANDIDATE:
                self.election_start()
            elif not self._is_voter:
                # Non-voters never campaign (spec §2.2); redraw so that the
                # deadline moves on instead of staying in the past.
                self.reset_election_timer()
            elif self.last_stored < self.log.last_index:
                self.reset_election_timer()  # an append is in flight (0.18)
            else:
                self._trace("election timeout")
                self.to_candidate(disrupt_leader=False)
        transfer = self.transfer
        if (transfer is not None
                and self.now - transfer.start_ms >= self.config.election_timeout_ms):
            self._trace("transfer timed out")
            self._complete_transfer()

    def bump_term(self, term: int) -> None:
        """A message from a newer term (dissertation §3.3, spec §2.14)."""
        self._trace(f"new term {term}")
        self._set_hard_state(term, 0)
        if self.state != State.FOLLOWER:
            self.to_follower()
        elif self.current_leader_id:
            self.current_leader_id = 0
            self.current_leader_address = ""
            self._out.state_changed = True

    def check_quorum(self) -> None:
        """Step down unless a majority was heard from within T (spec §2.8, dissertation §6.2)."""
        contacts = 1
        for server_id, p in self.progress.items():
            if server_id != self.id:
                if p.recent_recv and server_id in self._voters:
                    contacts += 1
                p.recent_recv = False
        self.voter_contacts = contacts
        if contacts < self._quorum:
            self._trace(f"step down: heard from {contacts} of {len(self._voters)} voters")
            self.to_follower()
        else:
            self.election_timer_start = self.now

    # -- client requests -------------------------------------------------------

    def _refuse_if_not_leader(self, req: Any) -> bool:
        if self.state == State.LEADER and self.transfer is None:
            return False
        leader = self.current_leader_id if self.state == State.FOLLOWER else 0
        address = self.current_leader_address if leader else None
        self._out.failed.append((req, NotLeaderError(leader_id=leader,
                                                     leader_address=address)))
        return True

    def _on_propose(self, event: Propose) -> None:
        if self._refuse_if_not_leader(event.req):
            return
        payloads = event.payloads
        assert len(payloads) > 0
        entries = list(map(Entry, repeat(self.current_term, len(payloads)),
                           repeat(EntryType.COMMAND, len(payloads)), payloads))
        first = self.append_local(entries)
        self._accept(event.req, first, first + len(entries) - 1)

    def _on_barrier(self, event: Barrier) -> None:
        if self._refuse_if_not_leader(event.req):
            return
        first = self.append_local([Entry(self.current_term, EntryType.BARRIER,
                                         BARRIER_PAYLOAD)])
        self._accept(event.req, first, first)

    def _on_add(self, event: Add) -> None:
        if not self._refuse_if_not_leader(event.req):
            self.change_add(event.server_id, event.address, event.req)

    def _on_assign(self, event: Assign) -> None:
        try:
            role = Role(event.role)
        except ValueError:
            self._out.failed.append((event.req, BadRoleError()))
            return
        if not self._refuse_if_not_leader(event.req):
            self.change_assign(event.server_id, role, event.req)

    def _on_remove(self, event: Remove) -> None:
        if not self._refuse_if_not_leader(event.req):
            self.change_remove(event.server_id, event.req)

    def _on_read(self, event: Read) -> None:
        if self.state == State.FOLLOWER and self.maybe_forward_read(event.req):
            return
        if not self._refuse_if_not_leader(event.req):
            self.register_read(event.req)

    def _accept(self, req: Any, first: int, last: int) -> None:
        """Track a request until its last entry is applied (libraft: the first; quirk 5)."""
        self._out.accepted.append((req, first))
        self.pending.append((last, req))

    def _on_transfer(self, event: Transfer) -> None:
        if self._refuse_if_not_leader(event.req):
            return
        target = event.target_id or self._pick_transfer_target()
        if not target:
            self._out.failed.append((event.req, NotFoundError(
                "there's no other voting server")))
            return
        if target == self.id or target not in self._voters:
            self._out.failed.append((event.req, BadIdError()))
            return
        self._trace(f"transfer leadership to {target}")
        self.transfer = PendingTransfer(target, self.now, event.req)
        self.orphan_reads()  # a read must not outlive the leadership it relies on
        self._out.state_changed = True  # leader_id reads 0 while transferring
        if self.progress[target].match_index == self.log.last_index:
            self.send_timeout_now(target, self._address_of(target))

    def _pick_transfer_target(self) -> int:
        """First voter that is up to date, else the last voter found (spec §1.7),
        skipping voters a send failed to since we last heard from them (their
        next_index says nothing: PIPELINE advances it on every send), unless
        every other voter is such a one."""
        found = unreachable = 0
        for server_id in self._voters:
            if server_id == self.id:
                continue
            p = self.progress[server_id]
            if p.unreachable:
                unreachable = server_id
                continue
            found = server_id
            if p.next_index == self.log.last_index + 1:
                return server_id
        return found or unreachable

    def _complete_transfer(self) -> None:
        """The transfer ended (the target leads, or it timed out): report the leader."""
        state = self.state
        self._end_transfer(self.id if state == State.LEADER else
                           self.current_leader_id if state == State.FOLLOWER else 0)


# Dispatch tables (house style 8), shared by every Raft: event type -> handler,
# message type -> recv_<message>.
_HANDLERS: dict[type, Callable[[Raft, Any], None]] = {
    Receive: Raft._on_receive, Persisted: Raft._on_persisted, Tick: Raft._on_tick,
    Propose: Raft._on_propose, Barrier: Raft._on_barrier,
    Transfer: Raft._on_transfer, Start: Raft._on_start, Close: Raft._on_close,
    PersistFailed: Raft._on_persist_failed, HardStateFailed: Raft._on_hard_state_failed,
    SendFailed: Raft._on_send_failed,
    TakeSnapshot: Raft._on_take_snapshot, SnapshotTaken: Raft._on_snapshot_taken,
    SnapshotInstalled: Raft._on_snapshot_installed,
    Add: Raft._on_add, Assign: Raft._on_assign, Remove: Raft._on_remove,
    Read: Raft._on_read,
}
_RECEIVERS: dict[type, Callable[[Raft, int, str, Any], None]] = {
    AppendEntries: Raft.recv_append_entries,
    AppendEntriesResult: Raft.recv_append_entries_result,
    RequestVote: Raft.recv_request_vote,
    RequestVoteResult: Raft.recv_request_vote_result,
    TimeoutNow: Raft.recv_timeout_now,
    InstallSnapshot: Raft.recv_install_snapshot,
    ReadHeartbeat: Raft.recv_read_heartbeat,
    ReadHeartbeatResult: Raft.recv_read_heartbeat_result,
    ReadIndexRequest: Raft.recv_read_index_request,
    ReadIndexResult: Raft.recv_read_index_result,
}
