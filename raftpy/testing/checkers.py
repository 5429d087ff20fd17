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
"""

from __future__ import annotations

from collections.abc import Sequence

from raftpy.core.log import Log
from raftpy.core.types import Entry

__all__ = ["Violation", "SafetyChecker"]


class Violation(AssertionError):
    """A Raft safety property does not hold."""


class SafetyChecker:
    """Accumulates what the cluster has committed and checks every event against it."""

    __slots__ = ("leaders", "committed", "seen", "acked", "applied")

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}          # term -> leader id
        self.committed: list[Entry] = []           # committed[i-1] is entry i
        self.seen: dict[tuple[int, int], tuple[object, int]] = {}
        self.acked: dict[int, Entry] = {}          # index -> entry told to a client
        self.applied: dict[int, int] = {}          # server id -> last applied index

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

    def on_truncate(self, server_id: int, index: int, durable: Sequence[Entry]) -> None:
        """server_id deletes its entries from index on; none of them may be committed."""
        committed = self.committed
        for i in range(index, min(len(durable), len(committed)) + 1):
            if durable[i - 1] == committed[i - 1]:
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
        self.applied[server_id] = first + len(entries) - 1

    def on_restart(self, server_id: int, last_applied: int) -> None:
        """A restarted server replays from its own state; its apply pointer restarts."""
        self.applied[server_id] = last_applied

    def on_match(self, leader_id: int, follower_id: int, index: int, term: int | None,
                 durable: Sequence[Entry]) -> None:
        """leader_id believes follower_id stored entry index (of term) durably."""
        if index > len(durable) or durable[index - 1].term != term:
            have = durable[index - 1].term if index <= len(durable) else None
            raise Violation(f"leader {leader_id} counts follower {follower_id} at {index} "
                            f"(term {term}) but it has {have}")

    def on_ack(self, index: int, entry: Entry) -> None:
        if index > len(self.committed) or self.committed[index - 1] != entry:
            raise Violation(f"acknowledged entry {index} is not the committed one")
        self.acked[index] = entry
