"""Safety checkers for the simulated cluster, run after every step.

May import: the standard library and ``raftpy.core``.  Each check is
incremental (constant work per step or per entry) so that thousands of
seeded runs fit in CI.  Properties (dissertation §3.6.3, Figure 3.2):

* Election safety: at most one leader per term, and a leader of more than
  one voter won with the durable votes of a quorum of its configuration
  (``on_vote``/``on_leader``; its own vote counts like any other).
* Commit durability: an index a leader commits is durable on a quorum of
  its voters (``on_commit``; the cluster counts the holders).
* Log matching: two entries with the same index and term have the same
  payload and the same predecessor term (which, by induction, makes the
  logs identical up to there).
* Leader completeness: a new leader's log holds every entry committed so far.
* State machine safety: every server applies the same entry at each index,
  in order, and no server ever deletes a committed entry it stored.  An
  apply that would skip an index (on the server or past what the cluster
  has committed) is a violation, never silently misaligned.
* Leader's view: a match_index a leader holds for a follower of the same
  term names an entry the follower has durably, with the leader's term.
* Acknowledged entries: what a client was told is committed is in the
  committed log (and, checked at the end of a run, applied everywhere).
* Linearizable reads: a read returns a state that holds every write
  acknowledged to a client before the read was asked (``on_read``: its
  server's applied index reaches the highest acknowledged index then).
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

The committed history starts at entry 1 (``on_bootstrap``) or after a
hand-made snapshot every server starts from (``on_start_snapshot``; then
``base`` is its index and ``base_data`` its state).  A disaster recovery
(``on_disaster_recovery``: lost servers never return, one survivor's data
copied to the rest) starts a new history from the survivor's log.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftpy.core.configuration import decode_configuration
from raftpy.core.log import Log
from raftpy.core.snapshot_types import Snapshot
from raftpy.core.types import Entry, EntryType

__all__ = ["Violation", "SafetyChecker"]


class Violation(AssertionError):
    """A Raft safety property does not hold."""


class SafetyChecker:
    """Accumulates what the cluster has committed and checks every event against it."""

    __slots__ = ("leaders", "committed", "seen", "acked", "applied", "voters", "snapshots",
                 "restores", "configurations", "base", "base_data", "votes", "recoveries",
                 "forced_until", "acked_max", "reads")

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}          # term -> leader id
        self.base = 0                              # committed[i-base-1] is entry i
        self.base_data = b""                       # the state at base (a starting snapshot)
        self.committed: list[Entry] = []
        self.votes: dict[tuple[int, int], set[int]] = {}  # (term, candidate) -> voters
        self.seen: dict[tuple[int, int], tuple[object, int]] = {}
        self.acked: dict[int, Entry] = {}          # index -> entry told to a client
        self.applied: dict[int, int] = {}          # server id -> last applied index
        self.voters: frozenset[int] = frozenset()  # of the last committed configuration
        self.snapshots: dict[int, bytes] = {}      # index -> the snapshot data taken there
        self.restores = 0
        self.configurations = 0                    # CHANGE entries committed (not bootstrap)
        self.recoveries = 0                        # disaster recoveries (new histories)
        # CHANGE entries up to here were forced by an operator (raft_recover):
        # they may change any number of voters
        self.forced_until = 0
        self.acked_max = 0                         # highest index told to a client
        self.reads = 0                             # reads checked

    @property
    def last_committed(self) -> int:
        """The highest index known committed."""
        return self.base + len(self.committed)

    def committed_entry(self, index: int) -> Entry | None:
        """The committed entry at index (None: not known, in the base snapshot or beyond)."""
        k = index - self.base - 1
        return self.committed[k] if 0 <= k < len(self.committed) else None

    def on_bootstrap(self, entry: Entry) -> None:
        """Entry 1, the bootstrap configuration, is committed from the start."""
        self.committed.append(entry)
        self.voters = frozenset(decode_configuration(entry.payload).voter_ids)

    def on_start_snapshot(self, snapshot: Snapshot) -> None:
        """Every server starts from this snapshot: entries up to its index are
        committed (their content is the snapshot's state, not known one by one)."""
        assert not self.committed and not self.base
        self.base = snapshot.index
        self.base_data = bytes(snapshot.data)
        self.snapshots[snapshot.index] = self.base_data
        self.voters = frozenset(snapshot.configuration.voter_ids)

    def on_recover(self, voters: frozenset[int]) -> None:
        """An operator forced a configuration (raft_recover): it may change any voters."""
        self.voters = voters

    def on_disaster_recovery(self, log: Sequence[Entry], offset: int,
                             voters: frozenset[int], offset_term: int | None = 0) -> None:
        """A majority was lost for good; one survivor's log (entries offset+1..,
        its snapshot below) was recovered and copied to the others.  The
        history goes on from it: the committed prefix it holds stays committed
        (what only lost servers had is gone, as the operator accepted), terms
        and votes of the old history bind nobody left, and the survivor's
        entries are what servers hold now (offset_term: the term of the entry
        at offset, the survivor's snapshot's)."""
        keep = max(offset, self.base)
        while True:
            entry = self.committed_entry(keep + 1)
            k = keep - offset
            if entry is None or k >= len(log) or log[k] != entry:
                break
            keep += 1
        del self.committed[keep - self.base:]
        self.acked = {i: e for i, e in self.acked.items() if i <= keep}
        self.acked_max = min(self.acked_max, keep)
        self.snapshots = {i: d for i, d in self.snapshots.items() if i <= keep}
        self.leaders.clear()
        self.votes.clear()
        self.seen.clear()
        prev_term = offset_term  # the term at offset (None: not known, not seeded)
        for k, entry in enumerate(log):
            if prev_term is not None:
                self.seen[(offset + 1 + k, entry.term)] = (entry.payload, prev_term)
            prev_term = entry.term
        self.voters = voters
        self.forced_until = offset + len(log)  # up to the recovery entry
        self.recoveries += 1

    def on_vote(self, server_id: int, term: int, candidate: int) -> None:
        """server_id durably voted for candidate in term."""
        self.votes.setdefault((term, candidate), set()).add(server_id)

    def on_commit(self, leader_id: int, index: int, holders: int,
                  voters: Sequence[int]) -> None:
        """leader_id committed index; holders of its voters have it durably."""
        if holders < len(voters) // 2 + 1:
            raise Violation(f"commit durability: leader {leader_id} commits {index}, durable "
                            f"on {holders} of its {len(voters)} voters")

    def on_change(self, leader_id: int, log: Log, commit_index: int) -> None:
        """A leader appended a CHANGE entry: no other may be uncommitted in its log."""
        changes = [i for i in range(max(commit_index, log.offset) + 1, log.last_index + 1)
                   if log.entries[i - log.offset - 1].type == EntryType.CHANGE]
        if len(changes) > 1:
            raise Violation(f"leader {leader_id} has uncommitted changes at {changes}")

    def on_snapshot(self, server_id: int, index: int, data: bytes | memoryview) -> None:
        """server_id took a snapshot of its state machine at index: the machine
        must have applied exactly the entries up to index (update.py item 6)."""
        applied = self.applied.get(server_id)
        if applied is not None and applied != index:
            raise Violation(f"snapshot consistency: server {server_id} snapshots at {index} "
                            f"a state machine that applied up to {applied}")
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

    def on_leader(self, server_id: int, term: int, log: Log,
                  voters: Sequence[int] = ()) -> None:
        """server_id became leader of term with log; voters: of its configuration
        (when given and more than itself, it must hold a quorum of their votes)."""
        leader = self.leaders.setdefault(term, server_id)
        if leader != server_id:
            raise Violation(f"election safety: {leader} and {server_id} lead term {term}")
        if len(voters) > 1 or (voters and voters[0] != server_id):
            granted = self.votes.get((term, server_id), set()).intersection(voters)
            if len(granted) < len(voters) // 2 + 1:
                raise Violation(f"election without a quorum: {server_id} leads term {term} "
                                f"with the votes of {sorted(granted)} of {sorted(voters)}")
        for index, entry in enumerate(self.committed, self.base + 1):
            if index > log.offset and log.get(index) != entry:
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
        for i in range(max(index, offset + 1, self.base + 1),
                       min(offset + len(durable), self.last_committed) + 1):
            if durable[i - 1 - offset] == self.committed_entry(i):
                raise Violation(f"server {server_id} truncates committed entry {i}")

    def on_apply(self, server_id: int, first: int, entries: Sequence[Entry]) -> None:
        last = self.applied.get(server_id, self.base)
        if first != last + 1:
            raise Violation(f"server {server_id} applies {first} after {last}: "
                            f"{'skips' if first > last + 1 else 'repeats'} an index")
        committed = self.committed
        top = self.last_committed
        if first > top + 1:
            raise Violation(f"server {server_id} applies {first} but the cluster's committed "
                            f"prefix ends at {top}: entries {top + 1}..{first - 1} skipped")
        if first <= self.base:
            raise Violation(f"server {server_id} applies {first}, inside the starting "
                            f"snapshot at {self.base}")
        for k, entry in enumerate(entries):
            index = first + k
            if index <= top:
                have = committed[index - self.base - 1]
                if have != entry:
                    raise Violation(f"state machine safety: server {server_id} applies "
                                    f"{entry[:2]} at {index}, others {have[:2]}")
            else:
                committed.append(entry)
                if entry.type == EntryType.CHANGE:
                    self._on_commit_change(index, entry)
        self.applied[server_id] = first + len(entries) - 1

    def _on_commit_change(self, index: int, entry: Entry) -> None:
        voters = frozenset(decode_configuration(entry.payload).voter_ids)
        if len(voters ^ self.voters) > 1 and index > self.forced_until:
            raise Violation(f"configuration at {index} changes voters {sorted(self.voters)} "
                            f"to {sorted(voters)} at once")
        self.voters = voters
        self.configurations += 1

    def on_restart(self, server_id: int, last_applied: int) -> None:
        """A restarted server replays from its own state; its apply pointer restarts."""
        if last_applied > self.last_committed:
            raise Violation(f"server {server_id} starts with {last_applied} applied, beyond "
                            f"the committed prefix ending at {self.last_committed}")
        self.applied[server_id] = last_applied

    def on_match(self, leader_id: int, follower_id: int, index: int, term: int | None,
                 durable: Sequence[Entry], offset: int = 0, covered: int = 0) -> None:
        """leader_id believes follower_id stored entry index (of term) durably
        (durable[0] is entry offset+1; entries up to covered are in its
        snapshot: committed, so matching)."""
        if index <= max(offset, covered) or term is None:
            return  # in the follower's snapshot, or compacted at the leader: committed
        k = index - 1 - offset
        if k >= len(durable) or durable[k].term != term:
            have = durable[k].term if k < len(durable) else None
            raise Violation(f"leader {leader_id} counts follower {follower_id} at {index} "
                            f"(term {term}) but it has {have}")

    def on_ack(self, index: int, entry: Entry) -> None:
        if self.committed_entry(index) != entry:
            raise Violation(f"acknowledged entry {index} is not the committed one")
        self.acked[index] = entry
        if index > self.acked_max:
            self.acked_max = index

    def on_read(self, server_id: int, must_see: int, applied: int) -> None:
        """A read ran on server_id's state machine at ``applied``; it was asked
        after the write at ``must_see`` was acknowledged, so linearizability
        needs that write in the state it read (the applied prefixes are the
        committed log, checked by on_apply)."""
        self.reads += 1
        if applied < must_see:
            raise Violation(f"stale read on server {server_id}: it saw the state at "
                            f"{applied}, but the write at {must_see} was acknowledged "
                            f"before the read was asked")
