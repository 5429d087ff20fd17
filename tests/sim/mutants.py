"""Known-bad variants of core rules (mutants), to show what the checkers catch.

A checker is only as good as the bugs it has caught: each mutant here puts a
real bug back into the core (one textual change to one method) and the model
checker and the chaos runs must find it.  ``MUTANTS`` maps a name to its
edits; ``apply_mutant`` installs one through pytest's monkeypatch (undone
after the test).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from raftpy.core import raft as raft_module
from raftpy.core.election import ElectionMixin
from raftpy.core.read_index import ReadIndexMixin
from raftpy.core.replication import ReplicationMixin
from raftpy.core.state import RaftState
from raftpy.testing.mutation import mutated


@dataclass(frozen=True)
class Edit:
    cls: type
    method: str
    old: str
    new: str


MUTANTS: dict[str, tuple[Edit, ...]] = {
    # Issue 8, A1: libraft's rule, a vote for our transfer's target even after
    # voting for another candidate in that term.
    "transferee-vote": (Edit(
        ElectionMixin, "_vote_refusal",
        "if not m.pre_vote and self.voted_for not in (0, m.candidate_id):",
        "if (not m.pre_vote and self.voted_for not in (0, m.candidate_id)\n"
        "                and not (self.transfer is not None\n"
        "                         and self.transfer.target_id == m.candidate_id)):"),),
    # A follower acknowledges entries before they are durable.
    "ack-before-durable": (
        Edit(ReplicationMixin, "_acknowledged",
             "return min(self.last_stored, self._verified_index)",
             "return self._verified_index"),
        Edit(ReplicationMixin, "recv_append_entries",
             "if self.last_stored >= verified:", "if True:")),
    # Votes ignore how up to date the candidate's log is (dissertation 3.6.1).
    "vote-any-log": (Edit(
        ElectionMixin, "_vote_refusal",
        "# Dissertation §3.6.1: grant only to a log at least as up-to-date as ours.",
        "return ''"),),
    # The leader counts its own entries toward the quorum before they are durable.
    "leader-counts-unwritten": (Edit(
        ReplicationMixin, "maybe_commit",
        "matches = sorted([progress[v].match_index for v in self._voters], reverse=True)",
        "matches = sorted([progress[v].match_index if v != self.id else self.log.last_index\n"
        "                          for v in self._voters], reverse=True)"),),
    # libraft's refusal of a stale AppendEntries: rejected = prev_log_index, 0
    # (success) for one from index 1 (found by the swarm soak, issue 8).
    "stale-reject-reads-success": (Edit(
        ReplicationMixin, "accept_leader",
        "self.current_term, rejected or 1, self.log.last_index, FEATURES))",
        "self.current_term, rejected, self.log.last_index, FEATURES))"),),
    # A leader commits what it alone has stored: no quorum at all.
    "commit-alone": (Edit(
        ReplicationMixin, "maybe_commit",
        "index = matches[self._quorum - 1]", "index = matches[0]"),),
    # The leader counts every server it replicates to toward a commit, not only
    # the voters: a standby (a demoted voter, or a spare being promoted) makes
    # the quorum with it, though no election ever asks it (dissertation §4.2.1).
    "commit-counts-standbys": (Edit(
        ReplicationMixin, "maybe_commit",
        "matches = sorted([progress[v].match_index for v in self._voters], reverse=True)",
        "matches = sorted([p.match_index for p in progress.values()], reverse=True)"),),
    # Entries of earlier terms committed by counting replicas (dissertation 3.6.2).
    "commit-old-terms": (Edit(
        ReplicationMixin, "maybe_commit",
        "if index > self.commit_index and self.log.term_of(index) == self.current_term:",
        "if index > self.commit_index:"),),
    # A snapshot asked for by an early event of a step_all keeps that event's
    # index, though the shell snapshots after applying the whole Update (the
    # state is labelled too low: entries applied twice after a restart).
    "snapshot-before-batch-applies": (Edit(
        raft_module.Raft, "_flush",
        "if out.take_snapshot is not None and out.take_snapshot.index != self.last_applied:",
        "if False:"),),
    # A truncation at or below the first entry an earlier event of the same
    # step_all queued for writing keeps that write: the shell truncates, then
    # appends entries that no longer follow the log (a failed write reported
    # in the batch that also appended after it).
    "truncate-keeps-batched-write": (Edit(
        RaftState, "_truncate", "out.persist = []", "pass"),),
    # A read runs without confirming the leadership (no heartbeat round).
    "read-skips-round": (Edit(
        ReadIndexMixin, "register_read",
        "reads.next.append(req)", "self._confirm([req], self._read_index())"),),
    # Any AppendEntriesResult of the term counts as an ack of the read round in
    # flight, though it carries no echo: one sent before the read arrived
    # passes for fresh (read_index.py's docstring).
    "read-counts-any-result": (Edit(
        ReplicationMixin, "recv_append_entries_result",
        "p.features = m.features",
        "p.features = m.features\n"
        "    if self._reads.in_flight:\n"
        "        self._reads.acks.add(from_id)\n"
        "        self._maybe_confirm_round()"),),
}


def _mutated(edit: Edit) -> object:
    return mutated(edit.cls, edit.method, edit.old, edit.new)


class _Patcher:
    """monkeypatch's setattr/setitem for a process that keeps the mutant for good."""

    def setattr(self, target: object, name: str, value: object) -> None:
        setattr(target, name, value)

    def setitem(self, mapping: dict, key: object, value: object) -> None:  # type: ignore[type-arg]
        mapping[key] = value


def apply_mutant_for_good(name: str) -> None:
    """Install mutant name in this process (tests/cluster/mutant_server.py)."""
    apply_mutant(_Patcher(), name)  # type: ignore[arg-type]


def apply_mutant(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Install mutant name: patch each method, and the dispatch tables that hold it."""
    for edit in MUTANTS[name]:
        original = getattr(edit.cls, edit.method)
        replacement = _mutated(edit)
        monkeypatch.setattr(edit.cls, edit.method, replacement)
        for table in (raft_module._HANDLERS, raft_module._RECEIVERS):
            for key, value in table.items():
                if value is original:
                    monkeypatch.setitem(table, key, replacement)
