"""Log replication: AppendEntries both ways, persistence completions, commit, apply.

May import: the standard library, ``raftpy.errors`` and ``raftpy.core``
modules below ``raft.py``.  Rules (spec §2.5-2.7, §2.12; dissertation §3.5,
§3.6, §10.2.1):

* The leader writes its log in parallel with replication and counts itself
  toward the commit quorum only through ``last_stored`` (its match_index).
* A follower acknowledges only durable entries: its AppendEntriesResult
  carries ``last_stored`` (capped at the verified index, see
  ``_acknowledged``) and goes out when ``Persisted`` says so.
* A follower commits at most up to the last index it has *verified* against
  the current leader (prev_log_index + n of an accepted AppendEntries,
  dissertation Figure 3.1 "index of last new entry"); raftpy's flow control
  makes heartbeats that trail the leader's log possible, so leader_commit
  alone is not a safe bound.
* Only entries of the current term are committed by counting (§3.6.2).
* Sends are decided once per step in ``trigger_all``: many events, one
  AppendEntries per follower.  Flow control bounds the entries and bytes in
  flight to each follower (Config.append_entries_max/append_bytes_max).
"""

from __future__ import annotations

from collections.abc import Sequence

from raftpy.core.configuration import decode_configuration
from raftpy.core.messages import (
    FEATURE_CHECKED_ACKS,
    FEATURES,
    AppendEntries,
    AppendEntriesResult,
    InstallSnapshot,
    Message,
    TimeoutNow,
)
from raftpy.core.progress import Progress, ProgressMode
from raftpy.core.state import RaftState
from raftpy.core.types import Entry, EntryType, State
from raftpy.errors import MalformedError

__all__ = ["ReplicationMixin"]

_PROBE = ProgressMode.PROBE
_PIPELINE = ProgressMode.PIPELINE
_SNAPSHOT = ProgressMode.SNAPSHOT
_NEVER = -(1 << 62)


class ReplicationMixin(RaftState):
    __slots__ = ()

    # -- leader: appending and sending --------------------------------------

    def append_local(self, entries: Sequence[Entry]) -> int:
        """Append entries of the current term to the leader's log; returns the first index."""
        first = self.log.last_index + 1
        self.log.append(entries)
        self._persist(first, entries)
        return first

    def trigger_all(self) -> None:
        """Send to every follower that is due (libraft replicationTrigger and
        progressShouldReplicate)."""
        now = self.now
        config = self.config
        heartbeat = config.heartbeat_timeout_ms
        # A window can hold more than one message (send_append_entries): then
        # send on while it is open, not one message per step.
        several = config.message_payload_max_bytes < config.append_bytes_max
        last_index = self.log.last_index
        for server_id, address, p in self._targets:
            if now - p.last_send >= heartbeat or (
                    p.mode == _PIPELINE and p.next_index <= last_index
                    and self._window_open(p)):
                self.send_append_entries(server_id, address, p)
                while (several and p.mode == _PIPELINE and p.next_index <= last_index
                       and self._window_open(p)):
                    self.send_append_entries(server_id, address, p)

    def _window_open(self, p: Progress) -> bool:
        in_flight = p.next_index - 1 - p.match_index
        config = self.config
        return (in_flight < config.append_entries_max and
                self.log.bytes_between(p.match_index + 1, p.next_index - 1)
                < config.append_bytes_max)

    def send_append_entries(self, server_id: int, address: str, p: Progress) -> None:
        log = self.log
        if (p.mode == _SNAPSHOT and self.now - p.snapshot_last_send
                >= self.config.install_snapshot_timeout_ms):
            self._trace(f"install snapshot to {server_id} timed out")
            p.to_probe(p.next_index)
        prev = p.next_index - 1
        prev_term = log.term_of(prev)
        if prev_term is None or (prev == 0 and log.offset) or p.mode == _SNAPSHOT:
            if p.mode != _SNAPSHOT and p.recent_recv and self.snapshot is not None:
                # The entry is behind our snapshot (spec §2.5 "send snapshot").
                self.send_install_snapshot(server_id, address, p)  # type: ignore[attr-defined]
                return
            # A heartbeat from our last entry keeps the follower's timer reset.
            prev, prev_term = log.last_index, log.last_term
            last = prev
        else:
            config = self.config
            max_entries, max_bytes = config.append_entries_max, config.append_bytes_max
            if p.mode == _PIPELINE:
                max_entries -= prev - p.match_index
                max_bytes -= log.bytes_between(p.match_index + 1, prev)
            # One message carries no more than a raftpy peer takes: it closes the
            # connection on a larger payload, and the same range would be sent
            # again forever.  (One entry always goes; apply refuses a longer one.)
            max_bytes = min(max_bytes, config.message_payload_max_bytes)
            last = (log.send_limit(prev + 1, max_entries, max_bytes)
                    if max_entries > 0 and max_bytes > 0 else prev)
            if not p.features & FEATURE_CHECKED_ACKS and last < self.reign_first_index:
                last = self._reach_reign(prev, last)
        entries = log.slice(prev + 1, last) if last > prev else ()
        self._send(server_id, address, AppendEntries(
            self.current_term, prev, prev_term, self.commit_index, entries))
        p.last_send = self.now
        if p.mode == _PIPELINE:
            p.next_index = last + 1  # optimistic (spec §2.5)

    def _reach_reign(self, prev: int, last: int) -> int:
        """Where an AppendEntries to a follower without FEATURE_CHECKED_ACKS ends.

        Deviation from flow control, for libraft followers (issue 10): such a
        follower's success reports last_stored, and entries of older terms it
        holds past the range we sent would count as ours.  A message that
        reaches this reign's first entry cannot leave such a tail: the follower
        either truncates at a conflict inside the range, or already holds our
        entry of this term there, after which all it holds is ours.  A libraft
        leader sends its whole tail and so always reaches it; this sends no
        more than that, and only while prev lies before the reign's start."""
        reach = min(self.reign_first_index, self.log.last_index)
        if last < reach:
            self._trace(f"send through {reach}, not {last}: follower may report "
                        "unchecked entries")
            return reach
        return last

    # -- leader: results -----------------------------------------------------

    def recv_append_entries_result(self, from_id: int, from_address: str,
                                   m: AppendEntriesResult) -> None:
        if m.term > self.current_term:
            self.bump_term(m.term)  # type: ignore[attr-defined]
            return
        if self.state != State.LEADER or m.term < self.current_term:
            return
        p = self.progress.get(from_id)
        if p is None or from_id == self.id:
            return
        p.recent_recv = True
        p.unreachable = False
        p.features = m.features
        if m.rejected:
            if self._maybe_decrement(p, m.rejected, m.last_log_index):
                p.last_send = _NEVER  # retry at once, from the new next_index
            return
        last = min(m.last_log_index, self.log.last_index)
        installed = p.mode == _SNAPSHOT and last >= p.snapshot_index
        if installed:
            # Installed, or it had the entries already: probe from what it has
            # (even if that is no news: staying in SNAPSHOT mode would stall).
            p.to_probe(max(last, p.match_index) + 1)
        if last <= p.match_index:
            # Deviation from libraft (which returns here with next_index as it
            # is): a stale rejection in PROBE mode (sent before the follower had
            # those entries, delivered late) can have moved next_index to or
            # below match_index; the follower's successes are then no news and
            # the leader would probe the same range for ever.  Found by chaos
            # runs with small messages (test_a_stale_rejection_in_probe_mode...).
            if p.next_index <= last:
                p.next_index = last + 1
            return
        p.match_index = last
        if p.next_index <= last:
            p.next_index = last + 1
        if p.mode == _PROBE and not installed:
            p.mode = _PIPELINE
        if from_id == self.promotee_id:
            self.promotion_progress(p)  # type: ignore[attr-defined]
        self.maybe_commit()
        transfer = self.transfer
        if (transfer is not None and transfer.target_id == from_id
                and not transfer.timeout_now_sent and self.state == State.LEADER
                and p.match_index == self.log.last_index):
            self.send_timeout_now(from_id, from_address)

    def on_send_failed(self, to_id: int, m: Message) -> None:
        """An AppendEntries or InstallSnapshot of ours did not reach to_id (libraft
        sendAppendEntriesCb, sendInstallSnapshotCb): probe from what it has.

        Without this a silent follower in PIPELINE mode keeps a next_index past
        everything sent, and one sent a snapshot waits out
        install_snapshot_timeout_ms.  Deviation from libraft: a failure in
        SNAPSHOT mode always probes from match_index + 1 (libraft's
        progressToProbe assumes the snapshot arrived and probes from its index);
        the snapshot goes out again once the follower is heard from
        (recent_recv), and one it did install is acknowledged at the first probe.
        Stale reports (an older term) are ignored; last_send is kept, so a dead
        link is tried once per heartbeat, not in a loop."""
        if m.term != self.current_term or not isinstance(m, (AppendEntries, InstallSnapshot)):
            return
        p = self.progress.get(to_id)
        if p is None or to_id == self.id:
            return
        p.unreachable = True
        if p.mode != _PROBE or p.next_index != p.match_index + 1:
            self._trace(f"send to {to_id} failed: probe from {p.match_index + 1}")
            p.to_probe(p.match_index + 1)

    def _maybe_decrement(self, p: Progress, rejected: int, last_log_index: int) -> bool:
        """libraft progressMaybeDecrement: False if the rejection is stale."""
        if p.mode == _PIPELINE:
            if rejected <= p.match_index:
                return False
            p.to_probe(p.match_index + 1)
            self._trace(f"pipeline rejected at {rejected}: probe from {p.next_index}")
            return True
        if p.mode == _PROBE:
            if rejected != p.next_index - 1:
                return False
            p.next_index = max(1, min(rejected, last_log_index + 1))
            return True
        if rejected == p.snapshot_index:  # the install failed (spec §2.13 step 5)
            p.to_probe(p.next_index)
            return True
        if (p.snapshot_index < rejected
                and self.now - p.snapshot_last_send >= self.config.election_timeout_ms):
            # Deviation from libraft, which waits install_snapshot_timeout_ms
            # (30 s by default) here.  The follower refused a heartbeat sent
            # after the snapshot (its prev, our last index, lies past the
            # snapshot): a raftpy follower that is installing (or will once
            # its own snapshot is taken) answers heartbeats with a success for
            # index 0 instead, so the snapshot was lost, or installed and the
            # reply lost.  Probe from where its log ends, as PROBE mode does
            # with a refusal; the snapshot goes out again if still needed.  At
            # most once per election timeout: a libraft follower refuses
            # heartbeats while it installs (saying 0), and gets a copy a second
            # at worst; a refusal of a heartbeat sent before the snapshot costs
            # a round trip or a copy too, never safety.
            self._trace(f"snapshot {p.snapshot_index} not acknowledged, follower at "
                        f"{last_log_index}: probe")
            p.to_probe(max(p.match_index + 1, min(rejected, last_log_index + 1)))
            return True
        return False

    def send_timeout_now(self, server_id: int, address: str) -> None:
        assert self.transfer is not None
        self.transfer.timeout_now_sent = True
        self._send(server_id, address, TimeoutNow(
            self.current_term, self.log.last_index, self.log.last_term))

    def maybe_commit(self) -> None:
        """Commit the highest index a quorum of voters has stored (dissertation §3.6.2)."""
        progress = self.progress
        matches = sorted([progress[v].match_index for v in self._voters], reverse=True)
        if not matches:
            return
        index = matches[self._quorum - 1]
        if index > self.commit_index and self.log.term_of(index) == self.current_term:
            self.commit_index = index
            if self.tracer is not None:
                self._trace(f"commit {index}")
            self.apply_committed()

    # -- follower ------------------------------------------------------------

    def accept_leader(self, from_id: int, from_address: str, term: int, rejected: int,
                      what: str) -> bool:
        """Term rules for a message only a leader sends (AppendEntries, InstallSnapshot):
        a stale one is rejected (rejected is the index to report), a current or
        newer one makes us its follower and restarts the election timer.  Returns
        whether to go on handling the message (dissertation §3.3, spec 2.14)."""
        if term < self.current_term:
            self._trace(f"reject {what}: stale term")
            # Deviation from libraft (spec §2.12 step 2): rejected is the
            # message's prev_log_index, and for an AppendEntries from index 1
            # that is 0, which means success.  A leader re-elected in our term
            # would take our unverified last index as its match_index and count
            # entries we do not have toward a commit (issue 8 swarm soak, seed
            # 17207).  1 is a refusal no leader acts on wrongly: a stale one, or
            # a probe from index 1.
            self._send(from_id, from_address, AppendEntriesResult(
                self.current_term, rejected or 1, self.log.last_index, FEATURES))
            return False
        if term > self.current_term:
            self.bump_term(term)  # type: ignore[attr-defined]
        if self.state == State.CANDIDATE:
            self.to_follower()  # type: ignore[attr-defined]
        elif self.state != State.FOLLOWER:
            self._trace(f"drop {what} from {from_id}: state {self.state.name}")
            return False
        if self.current_leader_id != from_id:
            self.current_leader_id = from_id
            self.current_leader_address = from_address
            self._out.state_changed = True
        self.election_timer_start = self.now
        return True

    def recv_append_entries(self, from_id: int, from_address: str, m: AppendEntries) -> None:
        if not self.accept_leader(from_id, from_address, m.term, m.prev_log_index,
                                  "AppendEntries"):
            return
        if self.installing():  # type: ignore[attr-defined]
            if m.entries:
                self._trace("drop AppendEntries: installing snapshot")
            else:
                # Alive, nothing to report: a success for index 0, which moves
                # no leader's match_index (a refusal would read as a lost
                # snapshot, see _maybe_decrement).
                self._send(from_id, from_address,
                           AppendEntriesResult(self.current_term, 0, 0, FEATURES))
            return
        prev = m.prev_log_index
        entries = m.entries
        offset = self.log.offset
        if prev <= offset:
            # Compacted here, so committed, so the same on every leader since
            # (leader completeness, dissertation §3.6.3): skip what we have.
            skip = min(offset - prev, len(entries))
            prev += skip
            entries = entries[skip:]
        elif prev > 0:
            term = self.log.term_of(prev)
            if term != m.prev_log_term:
                if term is not None and prev <= self.commit_index:
                    self.to_unavailable(  # type: ignore[attr-defined]
                        f"committed entry {prev} differs from the leader's")
                    return
                self._trace(f"reject AppendEntries: no entry {prev}/{m.prev_log_term}")
                self._send(from_id, from_address, AppendEntriesResult(
                    self.current_term, prev, self.last_stored, FEATURES))
                return
        if entries and not self._append_new(prev + 1, entries):
            return
        verified = prev + len(entries)
        if verified > self._verified_index:
            self._verified_index = verified
        if m.leader_commit > self._leader_commit:
            self._leader_commit = m.leader_commit
        self.follower_commit()
        if self.last_stored >= verified:
            self._send(from_id, from_address, AppendEntriesResult(
                self.current_term, 0, self._acknowledged(), FEATURES))
        # otherwise the reply goes out when the write completes (on_persisted)

    def _acknowledged(self) -> int:
        """The index a success reply reports: durable AND checked against this leader.

        libraft reports last_stored, which its leaders clamp to their own last
        index; that is only safe because a libraft leader always sends its whole
        log tail.  With flow control an AppendEntries may stop short of a stale
        entry we hold, so we never report past what this leader's messages
        covered (an equal or smaller value: safe for every leader)."""
        return min(self.last_stored, self._verified_index)

    def _append_new(self, index: int, entries: Sequence[Entry]) -> bool:
        """Skip entries we have, truncate at the first conflict, append the rest."""
        log = self.log
        last = log.last_index
        k = 0
        conflict = 0
        if index <= last:
            n = len(entries)
            while k < n and index + k <= last:
                if log.term_of(index + k) != entries[k].term:
                    break
                k += 1
            if k < n and index + k <= last:
                conflict = index + k
                if conflict <= self.commit_index:
                    self.to_unavailable(  # type: ignore[attr-defined]
                        f"conflict at committed index {conflict}")
                    return False
            entries = entries[k:]
        first = index + k
        changes = [i for i, entry in enumerate(entries) if entry.type == EntryType.CHANGE]
        for i in changes:
            # Checked before anything is truncated or stored: a CHANGE entry
            # that does not decode would raise out of on_persisted (stopping
            # the server) and fail every later load of this log.
            try:
                decode_configuration(entries[i].payload)
            except MalformedError as exc:
                self._trace(f"drop AppendEntries: entry {first + i}: {exc}")
                return False
        if conflict:
            self._truncate(conflict)
        if entries:
            log.append(entries)
            self._persist(first, entries)
            self._pending_changes.extend(first + i for i in changes)
            if self.tracer is not None:
                self._trace(f"append {first}..{first + len(entries) - 1}")
        return True

    def follower_commit(self) -> None:
        index = min(self._leader_commit, self._verified_index, self.last_stored)
        if index > self.commit_index:
            self.commit_index = index
            if self.tracer is not None:
                self._trace(f"commit {index}")
            self.apply_committed()

    # -- both: persistence and apply -------------------------------------------

    def on_persisted(self, index: int, term: int) -> None:
        log = self.log
        if (index <= self.last_stored or index > log.last_index or log.term_of(index) != term
                or self._installing is not None):
            return  # stale: the entry was replaced after the write was issued
        self.last_stored = index
        if self.tracer is not None:
            self._trace(f"persisted {index}")
        changes = self._pending_changes
        while changes and changes[0] <= index:
            self._adopt_configuration(changes.popleft())
        if self.state == State.LEADER:
            own = self.progress.get(self.id)
            if own is not None:
                own.match_index = index
            self.maybe_commit()
        elif self.state == State.FOLLOWER and self.current_leader_id:
            self.follower_commit()
            self._send(self.current_leader_id, self.current_leader_address,
                       AppendEntriesResult(self.current_term, 0, self._acknowledged(), FEATURES))
            if self._kept_timeout_now is not None:
                self.maybe_kept_timeout_now()  # type: ignore[attr-defined]

    def _adopt_configuration(self, index: int) -> None:
        """A persisted CHANGE entry takes effect, uncommitted (spec §2.10)."""
        entry = self.log.get(index)
        if entry is None or index <= self.configuration_index:
            return
        self.configuration_uncommitted_index = index
        self._set_configuration(decode_configuration(entry.payload))
        self._trace(f"configuration at {index} in effect (uncommitted)")

    def apply_committed(self) -> None:
        """Hand committed entries to the shell in order and resolve requests (spec §2.7)."""
        first = self.last_applied + 1
        last = self.commit_index
        if last < first:
            return
        entries = self.log.slice(first, last)
        out = self._out
        if out.apply:
            out.apply.extend(entries)
        else:
            out.apply_index = first
            out.apply = entries
        self.last_applied = last
        uncommitted = self.configuration_uncommitted_index
        step_down = False
        if uncommitted and uncommitted <= last:
            self.configuration_index = uncommitted
            self.configuration_uncommitted_index = 0
            self.configuration_committed = self.configuration
            self._trace(f"configuration at {uncommitted} committed")
            # A leader removed or demoted leads until the change commits (§2.10).
            step_down = self.state == State.LEADER and not self._is_voter
        pending = self.pending
        if pending and pending[0][0] <= last:
            completed = out.completed
            while pending and pending[0][0] <= last:
                index, req = pending.popleft()
                completed.append((req, index))
        if step_down:
            self._trace("step down: not a voter in the committed configuration")
            self.to_follower()  # type: ignore[attr-defined]
        if last - self.log.snapshot_index >= self.config.snapshot_threshold:
            self.maybe_take_snapshot()  # type: ignore[attr-defined]
