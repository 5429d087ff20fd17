"""Safety checkers for the simulated cluster, run after every step.

May import: the standard library and ``raftpy.core``.  Each check is
incremental (constant work per step or per entry) so that thousands of
seeded runs fit in CI.  Properties (dissertation §3.6.3, Figure 3.2):

* Election safety: at most one leader per term.
* Log matching: two entries with the same index and term have the same
  payload and the same predecessor term (which, by induction, makes the
  logs identical up to there).
* Leader completeness: a new leader's log holds every entry committed so far.
* State machine safety: every server applies the same entry at each index,
  in order, and no server ever deletes a committed entry it stored.
* Leader's view: a match_index a leader holds for a follower of the same
  term names an entry the follower has durably, with the leader's term.
* Acknowledged entries: what a client was told is committed is in the
  committed log (and, checked at the end of a run, applied everywhere).
* Configuration safety: election safety above holds across configurations
  (terms are global); a leader never appends a CHANGE entry while another
  one in its log is uncommitted; two consecutive committed configurations
  differ in at most one voter (dissertation §4.1), so their majorities meet.
* Snapshot consistency: every snapshot taken at an index is the same
  (machines that applied the same committed prefix agree, and a machine's
  applied prefix is checked entry by entry above), and a state machine
  restored from a snapshot equals the one the snapshot was taken from.
  ``chaos`` also replays the committed prefix at the end of each run and
  compares every server's state machine with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftpy.core.configuration import decode_configuration
from raftpy.core.log import Log
from raftpy.core.types import Entry, EntryType

__all__ = ["Violation", "SafetyChecker"]


class Violation(AssertionError):
    """A Raft safety property does not hold."""


class SafetyChecker:
    """Accumulates what the cluster has committed and checks every event against it."""

    __slots__ = ("leaders", "committed", "seen", "acked", "applied", "voters", "snapshots",
                 "restores", "configurations")

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}          # term -> leader id
        self.committed: list[Entry] = []           # committed[i-1] is entry i
        self.seen: dict[tuple[int, int], tuple[object, int]] = {}
        self.acked: dict[int, Entry] = {}          # index -> entry told to a client
        self.applied: dict[int, int] = {}          # server id -> last applied index
        self.voters: frozenset[int] = frozenset()  # of the last committed configuration
        self.snapshots: dict[int, bytes] = {}      # index -> the snapshot data taken there
        self.restores = 0
        self.configurations = 0                    # CHANGE entries committed (not bootstrap)

    def on_bootstrap(self, entry: Entry) -> None:
        """Entry 1, the bootstrap configuration, is committed from the start."""
        self.committed.append(entry)
        self.voters = frozenset(decode_configuration(entry.payload).voter_ids)

    def on_recover(self, voters: frozenset[int]) -> None:
        """An operator forced a configuration (raft_recover): it may change any voters."""
        self.voters = voters

    def on_change(self, leader_id: int, log: Log, commit_index: int) -> None:
        """A leader appended a CHANGE entry: no other may be uncommitted in its log."""
        changes = [i for i in range(max(commit_index, log.offset) + 1, log.last_index + 1)
                   if log.entries[i - log.offset - 1].type == EntryType.CHANGE]
        if len(changes) > 1:
            raise Violation(f"leader {leader_id} has uncommitted changes at {changes}")

    def on_snapshot(self, server_id: int, index: int, data: bytes | memoryview) -> None:
        """server_id took a snapshot of its state machine at index."""
        data = bytes(data)
        have = self.snapshots.setdefault(index, data)
        if have != data:
            raise Violation(f"snapshot consistency: server {server_id}'s snapshot at "
                            f"{index} differs from another server's")

    def on_restore(self, server_id: int, index: int, data: bytes | memoryview,
                   restored: bytes) -> None:
        """server_id restored its state machine from a snapshot at index."""
        self.restores += 1
        data = bytes(data)
        if self.snapshots.get(index, data) != data or restored != data:
            raise Violation(f"snapshot consistency: server {server_id} restored at {index} "
                            f"a state no machine had there")

    def on_leader(self, server_id: int, term: int, log: Log) -> None:
        leader = self.leaders.setdefault(term, server_id)
        if leader != server_id:
            raise Violation(f"election safety: {leader} and {server_id} lead term {term}")
        for index, entry in enumerate(self.committed, 1):
            if log.get(index) != entry and index > log.offset:
                raise Violation(f"leader completeness: leader {server_id} of term {term} "
                                f"lacks committed entry {index}")

    def on_write(self, server_id: int, first: int, entries: Sequence[Entry],
                 prev_term: int) -> None:
        """Entries first.. are being written by server_id after an entry of prev_term."""
        # A stale leader may still write at indexes committed elsewhere; what
        # must never happen is that it keeps them (on_truncate) or applies them.
        seen = self.seen
        for k, entry in enumerate(entries):
            index = first + k
            key = (index, entry.term)
            have = seen.get(key)
            if have is None:
                seen[key] = (entry.payload, prev_term)
            elif have[1] != prev_term or have[0] != entry.payload:
                raise Violation(f"log matching: server {server_id} entry {index} "
                                f"term {entry.term} differs from another server's")
            prev_term = entry.term

    def on_truncate(self, server_id: int, index: int, durable: Sequence[Entry],
                    offset: int = 0) -> None:
        """server_id deletes its entries from index on; none of them may be committed."""
        committed = self.committed
        for i in range(max(index, offset + 1), min(offset + len(durable), len(committed)) + 1):
            if durable[i - 1 - offset] == committed[i - 1]:
                raise Violation(f"server {server_id} truncates committed entry {i}")

    def on_apply(self, server_id: int, first: int, entries: Sequence[Entry]) -> None:
        last = self.applied.get(server_id, 0)
        if first != last + 1:
            raise Violation(f"server {server_id} applies {first} after {last}")
        committed = self.committed
        for k, entry in enumerate(entries):
            index = first + k
            if index <= len(committed):
                if committed[index - 1] != entry:
                    raise Violation(f"state machine safety: server {server_id} applies "
                                    f"{entry[:2]} at {index}, others {committed[index - 1][:2]}")
            else:
                committed.append(entry)
                if entry.type == EntryType.CHANGE:
                    self._on_commit_change(index, entry)
        self.applied[server_id] = first + len(entries) - 1

    def _on_commit_change(self, index: int, entry: Entry) -> None:
        voters = frozenset(decode_configuration(entry.payload).voter_ids)
        if len(voters ^ self.voters) > 1:
            raise Violation(f"configuration at {index} changes voters {sorted(self.voters)} "
                            f"to {sorted(voters)} at once")
        self.voters = voters
        self.configurations += 1

    def on_restart(self, server_id: int, last_applied: int) -> None:
        """A restarted server replays from its own state; its apply pointer restarts."""
        self.applied[server_id] = last_applied

    def on_match(self, leader_id: int, follower_id: int, index: int, term: int | None,
                 durable: Sequence[Entry], offset: int = 0) -> None:
        """leader_id believes follower_id stored entry index (of term) durably
        (entries up to offset are in its snapshot: committed, so matching)."""
        if index <= offset or term is None:
            return  # in the follower's snapshot, or compacted at the leader: committed
        k = index - 1 - offset
        if k >= len(durable) or durable[k].term != term:
            have = durable[k].term if k < len(durable) else None
            raise Violation(f"leader {leader_id} counts follower {follower_id} at {index} "
                            f"(term {term}) but it has {have}")

    def on_ack(self, index: int, entry: Entry) -> None:
        if index > len(self.committed) or self.committed[index - 1] != entry:
            raise Violation(f"acknowledged entry {index} is not the committed one")
        self.acked[index] = entry
