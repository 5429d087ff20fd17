"""Snapshots: taking them and compacting the log, sending and installing them.

May import: the standard library and ``raftpy.core`` modules below ``raft.py``.
Rules (spec §2.11, §2.5 "send snapshot", §2.13; dissertation §5.1-5.3):

* After every apply pass (leader or follower) a snapshot is asked for once
  ``last_applied - snapshot_index >= snapshot_threshold``, or at once on a
  ``TakeSnapshot`` event if ``last_applied > snapshot_index`` (raftpy's
  addition; libraft has no such call), always at the last entry the Update
  applies (a request made earlier in a ``step_all`` batch moves there:
  ``retarget_snapshot``); one at a time, and never while one is
  being installed (a refused ``TakeSnapshot`` is traced and dropped).  The
  core keeps serving meanwhile; when the shell reports it taken, the log
  keeps ``snapshot_trailing`` entries before the snapshot (and never drops an
  entry the leader has not stored).
* The snapshot carries the last *committed* configuration (libraft 0.18).
* A leader whose follower needs a compacted entry sends the latest snapshot
  in one InstallSnapshot, only if it heard from that follower since the last
  check-quorum, and waits in SNAPSHOT mode; it gives up after
  ``install_snapshot_timeout_ms`` (or a rejection naming the snapshot) and
  probes again.
* A follower installing a snapshot (``_installing``; ``last_stored`` is 0)
  does not campaign, refuses votes, drops AppendEntries carrying entries,
  commits nothing and ignores completions of writes issued before it.
* A snapshot at or below the commit index is never installed: a deposed
  leader may have applied entries its own disk does not hold yet (spec
  §2.6), and the install would take its state machine back.  It reports
  what is durable and waits for its writes.
"""

from __future__ import annotations

from dataclasses import replace

from raftpy.core.configuration import decode_configuration
from raftpy.core.messages import FEATURES, AppendEntriesResult, InstallSnapshot
from raftpy.core.progress import Progress, ProgressMode
from raftpy.core.snapshot_types import Snapshot
from raftpy.core.state import RaftState
from raftpy.core.types import EntryType, State

__all__ = ["SnapshotMixin"]


class SnapshotMixin(RaftState):
    __slots__ = ()

    # -- taking ----------------------------------------------------------------

    def maybe_take_snapshot(self, on_demand: bool = False) -> bool:
        """Ask the shell for a snapshot at last_applied if the threshold is reached
        (or, ``on_demand``, if anything was applied since the last snapshot)."""
        index = self.last_applied
        if (self._taking is not None or self._installing is not None
                or self.state == State.UNAVAILABLE or index <= self.log.snapshot_index
                or (not on_demand
                    and index - self.log.snapshot_index < self.config.snapshot_threshold)):
            return False
        term = self.log.term_of(index)
        assert term is not None
        self._commit_configurations_up_to(index)
        request = Snapshot(index, term, self.configuration_index, self.configuration_committed)
        self._taking = request
        self._out.take_snapshot = request
        self._trace(f"take snapshot at {index}/{term}")
        return True

    def retarget_snapshot(self) -> None:
        """Move this Update's snapshot request to last_applied.

        The shell snapshots its state machine after applying all of the
        Update's entries (update.py item 6), so a request made before later
        events of the same ``step_all`` applied more entries would label that
        state with too low an index: replayed after a restart, or sent to a
        follower, those entries would be applied twice."""
        request = self._out.take_snapshot
        assert request is not None and request is self._taking
        self._taking = self._out.take_snapshot = None
        if not self.maybe_take_snapshot(on_demand=True):
            self._trace(f"snapshot at {request.index} dropped: "
                        f"no longer possible at {self.last_applied}")

    def _commit_configurations_up_to(self, index: int) -> None:
        """Make the committed configuration the last CHANGE entry up to index.

        A follower may hold a newer, uncommitted CHANGE entry beyond an applied
        one; the snapshot must carry the applied one (spec §2.11)."""
        if not self.configuration_uncommitted_index or \
                self.configuration_uncommitted_index <= index:
            return
        log = self.log
        for i in range(index, max(self.configuration_index, log.offset), -1):
            entry = log.get(i)
            if entry is not None and entry.type == EntryType.CHANGE:
                self.configuration_index = i
                self.configuration_committed = decode_configuration(entry.payload)
                return

    def on_snapshot_taken(self, index: int, data: bytes | memoryview | None) -> None:
        taking = self._taking
        if taking is None or taking.index != index:
            return
        self._taking = None
        self._compact_after(taking, data)
        self._start_deferred_install()

    def _compact_after(self, taking: Snapshot, data: bytes | memoryview | None) -> None:
        index = taking.index
        if data is None:
            self._trace(f"snapshot at {index} not taken")
            return
        log = self.log
        if index <= log.snapshot_index:
            return
        self.snapshot = replace(taking, data=data)
        log.snapshot_index, log.snapshot_term = index, taking.term
        # Keep the trailing entries, and every entry not yet durable here (a
        # leader may apply entries it has not stored itself, spec §2.6).
        up_to = min(index - self.config.snapshot_trailing, self.last_stored)
        log.compact(up_to)
        self._trace(f"snapshot taken at {index}/{taking.term}, log from {log.offset + 1}")

    # -- leader: sending ---------------------------------------------------------

    def send_install_snapshot(self, server_id: int, address: str, p: Progress) -> None:
        snapshot = self.snapshot
        assert snapshot is not None
        p.mode = ProgressMode.SNAPSHOT
        p.snapshot_index = snapshot.index
        p.snapshot_last_send = p.last_send = self.now
        self._send(server_id, address, InstallSnapshot(
            self.current_term, snapshot.index, snapshot.term, snapshot.configuration_index,
            snapshot.configuration, snapshot.data))

    # -- follower: installing ------------------------------------------------------

    def recv_install_snapshot(self, from_id: int, from_address: str,
                              m: InstallSnapshot) -> None:
        if not self.accept_leader(from_id, from_address, m.term,  # type: ignore[attr-defined]
                                  m.last_index, "InstallSnapshot"):
            return
        if self._installing is not None:
            self._trace("ignore InstallSnapshot: installing one already")
            return
        if self._covers(m.last_index, m.last_term):
            self._ack_install(m.last_index)
            return
        if m.last_index <= self.commit_index:
            self._wait_for_own_writes(m.last_index)
            return
        snapshot = Snapshot(m.last_index, m.last_term, m.conf_index, m.conf, m.data)
        if self._taking is not None:
            # Deviation from libraft, which drops it (its leader sends it again
            # after install_snapshot_timeout_ms, 30 s; ours would every
            # election timeout): install it as soon as our own snapshot is
            # taken, if the term has not changed.  Meanwhile we act as an
            # installing follower: entries are dropped, heartbeats answered.
            self._trace(f"defer InstallSnapshot {m.last_index}: taking a snapshot")
            self._deferred_install = (self.current_term, snapshot)
            return
        self._start_install(snapshot)

    def _covers(self, index: int, term: int) -> bool:
        """We have it all: the snapshot's entries are committed and ours match."""
        log = self.log
        return log.snapshot_index >= index or (
            self.last_stored >= index and log.term_of(index) == term)

    def _ack_install(self, index: int) -> None:
        self._verified_index = max(self._verified_index, index)
        self._leader_commit = max(self._leader_commit, index)
        self.follower_commit()  # type: ignore[attr-defined]
        self._send(self.current_leader_id, self.current_leader_address,
                   AppendEntriesResult(self.current_term, 0, index, FEATURES))

    def _wait_for_own_writes(self, index: int) -> None:
        """A snapshot at or below our commit index that our durable log does not
        reach: a deposed leader applies entries before its own disk has them
        (spec §2.6).  Installing it would take the state machine back before
        entries already applied.  Our entries up to index are committed, so
        they are the leader's (leader completeness): they count as verified,
        and the reply reports only what is durable; the leader learns the rest
        from our acknowledgements as our writes complete."""
        self._trace(f"no install of {index}: committed here, writes in flight")
        self._verified_index = max(self._verified_index, index)
        self._send(self.current_leader_id, self.current_leader_address,
                   AppendEntriesResult(self.current_term, 0, self._acknowledged(),  # type: ignore[attr-defined]
                                       FEATURES))

    def installing(self) -> bool:
        """Installing a snapshot, or holding one to install in this term."""
        deferred = self._deferred_install
        return self._installing is not None or (
            deferred is not None and deferred[0] == self.current_term)

    def _start_deferred_install(self) -> None:
        deferred, self._deferred_install = self._deferred_install, None
        if (deferred is None or deferred[0] != self.current_term
                or self.state != State.FOLLOWER or not self.current_leader_id):
            return
        snapshot = deferred[1]
        if self._covers(snapshot.index, snapshot.term):
            self._ack_install(snapshot.index)
        elif snapshot.index <= self.commit_index:
            self._wait_for_own_writes(snapshot.index)
        else:
            self._start_install(snapshot)

    def _start_install(self, snapshot: Snapshot) -> None:
        self._trace(f"install snapshot {snapshot.index}/{snapshot.term}")
        self._installing = snapshot
        self._install_term = self.current_term
        self.log.restart(snapshot.index, snapshot.term)
        self.last_stored = 0
        self._pending_changes.clear()
        if self.configuration_uncommitted_index:
            self.configuration_uncommitted_index = 0
            self._set_configuration(self.configuration_committed)
        out = self._out
        out.persist = []          # the snapshot replaces the whole log
        out.truncate_from = 0
        out.install_snapshot = snapshot

    def on_snapshot_installed(self, index: int, error: Exception | None) -> None:
        snapshot = self._installing
        if snapshot is None or snapshot.index != index:
            return
        self._installing = None
        if error is not None:
            # The log is gone from memory and the disk state is the shell's to
            # sort out at the next start: stop here (spec §2.16).
            self.to_unavailable(f"snapshot install failed: {error}")  # type: ignore[attr-defined]
            return
        self.snapshot = snapshot
        self.configuration_committed = snapshot.configuration
        self.configuration_index = snapshot.configuration_index
        self.configuration_uncommitted_index = 0
        self._set_configuration(snapshot.configuration)
        self.commit_index = self.last_applied = self.last_stored = index
        self._trace(f"snapshot {index}/{snapshot.term} installed")
        if self.current_term != self._install_term or self.state != State.FOLLOWER:
            return
        self._verified_index = max(self._verified_index, index)
        if self.current_leader_id:
            self._send(self.current_leader_id, self.current_leader_address,
                       AppendEntriesResult(self.current_term, 0, index, FEATURES))
