"""State transitions: to_follower, to_candidate, to_leader, to_unavailable (libraft convert.c).

May import: the standard library, ``raftpy.errors`` and ``raftpy.core``
modules below ``raft.py``.  Each transition first clears what the old state
owned (a leader's progress and pending requests fail with
LeadershipLostError, spec §2.16), then sets up the new one, and records the
change in the Update.  Timer rules are spec §2.2.
"""

from __future__ import annotations

from raftpy.core.configuration import Role
from raftpy.core.progress import Progress
from raftpy.core.state import RaftState
from raftpy.core.types import Entry, EntryType, State
from raftpy.errors import LeadershipLostError, RaftError

__all__ = ["ConvertMixin", "BARRIER_PAYLOAD"]

# libraft's barrier payload is 8 uninitialised bytes (quirk 2); we write zeros.
BARRIER_PAYLOAD = bytes(8)


class ConvertMixin(RaftState):
    __slots__ = ()

    def reset_election_timer(self) -> None:
        """Redraw the randomized election timeout in [T, 2T) (dissertation §3.4)."""
        timeout = self.config.election_timeout_ms
        self.randomized_election_timeout = self.rng.randrange(timeout, 2 * timeout)
        self.election_timer_start = self.now

    def _set_state(self, state: State) -> None:
        self.state = state
        self._out.state_changed = True

    def _fail_pending(self, error: RaftError) -> None:
        failed = self._out.failed
        for _index, req in self.pending:
            failed.append((req, error))
        self.pending.clear()

    def _clear_state(self) -> None:
        if self.state == State.LEADER:
            self._fail_pending(LeadershipLostError())
            self.orphan_reads()  # type: ignore[attr-defined]
            self.abort_promotion(LeadershipLostError())  # type: ignore[attr-defined]
            self.progress = {}
            self._targets = []
            # raft_voter_contacts reports -1 unless leader (libraft raft.c): the
            # count of an old reign says nothing about the cluster now.
            self.voter_contacts = -1
        self.votes = set()
        self.current_leader_id = 0
        self.current_leader_address = ""
        self._kept_timeout_now = None

    def to_follower(self) -> None:
        self._clear_state()
        self._set_state(State.FOLLOWER)
        self.reset_election_timer()
        self._trace(f"became follower term={self.current_term}")

    def to_candidate(self, disrupt_leader: bool) -> None:
        if self.transfer is not None:
            # A leader that stepped down keeps its transfer only to report who
            # leads next, as a follower; it never carries into a campaign.
            self._end_transfer(0)
        self._clear_state()
        self._set_state(State.CANDIDATE)
        self.disrupt_leader = disrupt_leader
        self.in_pre_vote = False if disrupt_leader else self.config.pre_vote
        self._trace(f"became candidate term={self.current_term}")
        if len(self._voters) == 1:
            # The only voter wins without a vote (spec §2.1 step 5).  libraft
            # also skips the term bump; we do so only for a freshly
            # bootstrapped log.  Otherwise another server may have led this
            # term under an earlier configuration (a leader that demoted or
            # removed itself), and two leaders of one term break log matching.
            if self.log.last_index > 1:
                self._set_hard_state(self.current_term + 1, self.id)
            self.to_leader()
            return
        self.election_start()  # type: ignore[attr-defined]

    def to_leader(self) -> None:
        if self.transfer is not None:
            self._end_transfer(self.id)  # the one-voter path: no campaign first
        self._clear_state()
        self._set_state(State.LEADER)
        self.current_leader_id = self.id
        self.current_leader_address = self.address
        self.election_timer_start = self.now
        self.voter_contacts = 1
        self.promotee_id = 0
        self.reign_first_index = self.log.last_index + 1
        self._build_progress()
        self._trace(f"became leader term={self.current_term}")
        if len(self._voters) == 1:
            if self.last_stored > self.commit_index:
                self.commit_index = self.last_stored
                self.apply_committed()  # type: ignore[attr-defined]
        elif self._voters:
            # Commit entries of earlier terms through one of ours (dissertation
            # §3.6.2, spec §2.4): the no-op barrier, libraft 0.17+.
            barrier = Entry(self.current_term, EntryType.BARRIER, BARRIER_PAYLOAD)
            self.append_local([barrier])  # type: ignore[attr-defined]

    def _build_progress(self) -> None:
        """One Progress per server, keeping existing records (a configuration change)."""
        next_index = self.log.last_index + 1
        old = self.progress
        progress: dict[int, Progress] = {}
        targets = []
        for server in self.configuration.servers:
            p = old.get(server.id) or Progress(next_index)
            progress[server.id] = p
            if server.id == self.id:
                p.match_index = self.last_stored
            elif server.role != Role.SPARE or server.id == self.promotee_id:
                targets.append((server.id, server.address, p))
        self.progress = progress
        self._targets = targets

    def to_unavailable(self, reason: str) -> None:
        """Fatal error or close: never leave this state (spec §2.16)."""
        if self.state == State.UNAVAILABLE:
            return
        self._trace(f"became unavailable: {reason}")
        # Nothing more is written: what this step queued so far (a proposal
        # earlier in the same step_all than the failed write of a committed
        # entry, say) would follow a write that failed, leaving a hole.
        self._out.persist = []
        self._out.truncate_from = 0
        self._clear_state()
        if self.transfer is not None:
            self._end_transfer(0)
        self._set_state(State.UNAVAILABLE)
