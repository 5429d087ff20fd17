"""RaftState: the fields of a Raft server and the small helpers every part uses.

May import: the standard library and ``raftpy.core`` value modules.  The
behaviour lives in mixins (convert.py, election.py, replication.py) that
subclass RaftState with empty ``__slots__``; ``raft.py`` joins them.  Field
names are the dissertation's and libraft's.  Rules kept here:

* ``last_stored <= log.last_index``; ``commit_index <= log.last_index``;
  ``last_applied <= commit_index``; on a follower ``commit_index <=
  last_stored`` (it acknowledges and commits only durable entries).
* Every change of ``current_term``/``voted_for`` goes through
  ``_set_hard_state`` so that it lands in the Update (persist before send).
* ``_verified_index`` is the last index a follower has checked against the
  current term's leader (prev_log_index + n of an accepted AppendEntries);
  a follower commits and acknowledges no further than that, because its log
  beyond it may hold stale entries of an older term.
* Output accumulates in ``_out`` until ``Raft._flush`` hands it over.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from raftpy.core.config import Config
from raftpy.core.configuration import Configuration, decode_configuration
from raftpy.core.log import Log
from raftpy.core.messages import Message
from raftpy.core.progress import Progress
from raftpy.core.snapshot_types import Snapshot
from raftpy.core.trace import Tracer
from raftpy.core.types import Entry, EntryType, State
from raftpy.core.update import Update

__all__ = ["RaftState", "PendingTransfer", "ReadRounds"]


class PendingTransfer:
    """A leadership transfer in progress (spec §2.9)."""

    __slots__ = ("target_id", "start_ms", "req", "timeout_now_sent")

    def __init__(self, target_id: int, start_ms: int, req: Any) -> None:
        self.target_id = target_id
        self.start_ms = start_ms
        self.req = req
        self.timeout_now_sent = False


class ReadRounds:
    """A server's reads in progress (read_index.py keeps the rules).

    Reads are the shell's ``req`` tokens (on a leader also RemoteRead, a
    follower's request).  Leader: ``next``: arrived since the round in
    flight was sent (they wait for the next one); ``current``: the round in
    flight, all arrived before it was sent; ``announced``: followers told
    that we serve ReadIndexRequest.  Any server: ``confirmed``: (read index,
    reads) that may run once ``last_applied`` reaches the index, in
    increasing index order; ``orphaned``: to fail at the end of the batch.
    Follower: ``leader_reads``: (term, leader) that announced the feature;
    ``forward``: reads to ask the leader for at the end of the batch;
    ``remote``: request id -> (reads, time sent), all sent to ``remote_to``
    (term, leader).  ``round`` and ``request_id`` only grow, across terms.
    """

    __slots__ = ("round", "in_flight", "index", "sent_ms", "resent_ms", "acks", "current",
                 "next", "confirmed", "lease_until_ms", "orphaned", "announced",
                 "leader_reads", "forward", "remote", "remote_to", "request_id")

    def __init__(self, read_round: int = 0, orphaned: list[Any] | None = None,
                 request_id: int = 0) -> None:
        self.round = read_round
        self.in_flight = False
        self.index = 0                    # read index of the round in flight
        self.sent_ms = 0                  # when the round in flight was first sent
        self.resent_ms = 0
        self.acks: set[int] = set()       # voters that echoed the round in flight
        self.current: list[Any] = []
        self.next: list[Any] = []
        self.confirmed: deque[tuple[int, list[Any]]] = deque()
        self.lease_until_ms = 0           # LEASE mode: reads need no round before this
        self.orphaned: list[Any] = orphaned if orphaned is not None else []
        self.announced: set[int] = set()
        self.leader_reads = (0, 0)
        self.forward: list[Any] = []
        self.remote: dict[int, tuple[list[Any], int]] = {}
        self.remote_to = (0, 0)
        self.request_id = request_id


class RaftState:
    """All mutable state of one server; see the module docstring for the rules."""

    __slots__ = (
        "id", "address", "config", "rng", "tracer", "now",
        "current_term", "voted_for", "log", "commit_index", "last_applied",
        "last_stored", "state",
        # configuration (dissertation §4.1): the newest one is in effect
        "configuration", "configuration_index", "configuration_uncommitted_index",
        "configuration_committed", "_pending_changes",
        "_voters", "_quorum", "_is_voter",
        # timers
        "election_timer_start", "randomized_election_timeout",
        # follower
        "current_leader_id", "current_leader_address", "_verified_index",
        "_leader_commit",
        # a TimeoutNow received while an append was in flight (election.py):
        # (term, leader id, last index, last term, received at ms)
        "_kept_timeout_now",
        # candidate
        "votes", "in_pre_vote", "disrupt_leader",
        # leader
        "progress", "_targets", "pending",
        # voters heard from at the last check-quorum, counting itself; -1
        # unless leader (raft_voter_contacts)
        "voter_contacts",
        # the index of this reign's first entry (its barrier), see
        # ReplicationMixin.send_append_entries
        "reign_first_index",
        # snapshots (spec §2.11, §2.13): the latest one, one being taken, one
        # being installed (a follower; then last_stored is 0) and the term then,
        # and one received while taking our own: (term, snapshot), installed
        # once ours is taken if the term is still the same
        "snapshot", "_taking", "_installing", "_install_term", "_deferred_install",
        # promotion catch-up (spec §2.10)
        "promotee_id", "round_number", "round_index", "round_start", "_promotion_req",
        # any state
        "transfer", "_out",
        # linearizable reads (read_index.py)
        "_reads",
    )

    id: int
    address: str
    config: Config
    rng: random.Random
    tracer: Tracer | None
    now: int
    current_term: int
    voted_for: int
    log: Log
    commit_index: int
    last_applied: int
    last_stored: int
    state: State
    configuration: Configuration
    configuration_index: int
    configuration_uncommitted_index: int
    configuration_committed: Configuration
    _pending_changes: deque[int]
    _voters: tuple[int, ...]
    _quorum: int
    _is_voter: bool
    election_timer_start: int
    randomized_election_timeout: int
    current_leader_id: int
    current_leader_address: str
    _verified_index: int
    _leader_commit: int
    _kept_timeout_now: tuple[int, int, int, int, int] | None
    votes: set[int]
    in_pre_vote: bool
    disrupt_leader: bool
    progress: dict[int, Progress]
    _targets: list[tuple[int, str, Progress]]
    pending: deque[tuple[int, Any]]
    voter_contacts: int
    reign_first_index: int
    snapshot: Snapshot | None
    _taking: Snapshot | None
    _installing: Snapshot | None
    _deferred_install: tuple[int, Snapshot] | None
    _install_term: int
    promotee_id: int
    round_number: int
    round_index: int
    round_start: int
    _promotion_req: Any
    transfer: PendingTransfer | None
    _out: Update
    _reads: ReadRounds

    def _trace(self, text: str) -> None:
        if self.tracer is not None:
            self.tracer(self.id, self.now, text)

    def _send(self, to_id: int, to_address: str, message: Message) -> None:
        self._out.messages.append((to_id, to_address, message))
        if self.tracer is not None:
            self.tracer(self.id, self.now, f"send {to_id} {message}")

    def _address_of(self, server_id: int) -> str:
        server = self.configuration.get(server_id)
        return server.address if server is not None else ""

    def _end_transfer(self, leader_id: int) -> None:
        """The pending transfer is over: its request completes with leader_id
        (the leader then, 0 if unknown)."""
        transfer = self.transfer
        assert transfer is not None
        self.transfer = None
        self._out.state_changed = True  # leader_id reads differently now
        self._out.completed.append((transfer.req, leader_id))

    def _set_hard_state(self, term: int, voted_for: int) -> None:
        if term != self.current_term:
            # What a leader vouched for holds for its term only.
            self._verified_index = self._leader_commit = 0
        self.current_term = term
        self.voted_for = voted_for
        self._out.hard_state = (term, voted_for)

    def _set_configuration(self, conf: Configuration) -> None:
        """Make conf the configuration in effect and refresh the cached voter facts."""
        self.configuration = conf
        self._voters = conf.voter_ids
        self._quorum = len(self._voters) // 2 + 1
        self._is_voter = self.id in self._voters

    def _persist(self, first_index: int, entries: Sequence[Entry]) -> None:
        """Queue entries (already in the in-memory log) for the shell to write."""
        out = self._out
        if out.persist:
            assert out.persist_index + len(out.persist) == first_index
            out.persist.extend(entries)
        else:
            out.persist_index = first_index
            out.persist = list(entries)

    def _truncate(self, index: int) -> None:
        """Remove entries from index on, in memory and (via the Update) on disk."""
        self._trace(f"truncate from {index}")
        self.log.truncate(index)
        self.last_stored = min(self.last_stored, index - 1)
        out = self._out
        if out.persist and index > out.persist_index:
            del out.persist[index - out.persist_index:]
        else:
            out.persist = []
            out.truncate_from = min(out.truncate_from or index, index)
        while self._pending_changes and self._pending_changes[-1] >= index:
            self._pending_changes.pop()
        if self.configuration_uncommitted_index >= index:
            # Dissertation §4.1: a server always uses the latest configuration in
            # its log, so dropping that entry brings back the one before it: the
            # committed one, or a later CHANGE entry still in the log (a
            # follower may hold one it does not know to be committed yet).
            self.configuration_uncommitted_index = 0
            log = self.log
            for i in range(index - 1, max(self.configuration_index, log.offset), -1):
                entry = log.get(i)
                if entry is not None and entry.type == EntryType.CHANGE:
                    self._trace(f"roll back configuration to index {i}")
                    conf = decode_configuration(entry.payload)
                    if i <= self.commit_index:
                        self.configuration_index = i
                        self.configuration_committed = conf
                    else:
                        self.configuration_uncommitted_index = i
                    self._set_configuration(conf)
                    return
            self._trace(f"roll back configuration to index {self.configuration_index}")
            self._set_configuration(self.configuration_committed)
