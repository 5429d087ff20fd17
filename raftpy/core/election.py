"""Elections: RequestVote, its result, pre-vote, leader stickiness, TimeoutNow.

May import: the standard library and ``raftpy.core`` modules below ``raft.py``.
Rules are spec §2.3 and §2.9, in libraft's order; the dissertation sections
are §3.4 (elections), §9.6 (pre-vote), §4.2.3 (disruptive servers: leader
stickiness) and §3.10 (leadership transfer).  Pre-vote asks with term+1 and
persists nothing; replies to a pre-vote echo the request's term (quirk 7),
except a refusal for a stale term, which carries ours (see recv_request_vote).

Deviation from libraft (spec §2.3 step 6): a server that is not a voter in
its own configuration still votes, as the dissertation wants (§4.1: servers
answer RPCs without consulting their configuration).  The candidate's
configuration decides whose votes count; a server promoted to voter that
missed the CHANGE entries would otherwise refuse the only candidates that
can win, and the cluster would never elect a leader again (found by the
randomized simulation: a promotion committed without the promotee, then the
demotion of another voter left uncommitted).  Votes stay exclusive per term.

Deviation from libraft (0.15 and 0.18 electionVote): a server grants at most
one vote per term, even to the target of its own pending transfer.  libraft
also votes for the transferee after voting for someone else in that term, and
a leader that steps down keeps its transfer pending, so a delayed disruptive
RequestVote can win a term that another candidate already won (issue 8, A1:
leader 1 transfers to 2, 2's RequestVote is delayed, 1 steps down by
check-quorum and votes for 3, 3 wins term 3, then 2's RequestVote arrives and
wins term 3 too; tests/interaction/transfer_vote_once.txt).  Dissertation
§3.4: "each server will vote for at most one candidate in a given term".  The
transferee still wins with the other voters' votes, and the old leader's
vote when it has not voted in that term yet, which is the usual case (the
TimeoutNow's RequestVote is the first message of the new term it sees).

Deviation from libraft 0.18 (spec §2.9), for 0.15 leaders: a TimeoutNow that
arrives while an append is in flight, the in-memory log matching it, is kept
and acted on when the append is durable, not ignored.  0.18 ignores it, which
costs nothing under a 0.18 (or raftpy) leader: it sends TimeoutNow only once
the target's match_index is up to date.  A 0.15 leader sends it as soon as
next_index is, which in pipeline mode is right after the entries, before the
target wrote them.  Ignoring it (TimeoutNow is sent once) failed most
transfers from a 0.15 leader to raftpy under load, each after T, the next
attempt racing the same way (tests/interop/test_mixed_cluster.py, seen: 33
requests for one transfer).  Campaigning at once instead, as 0.15 does, would
advertise a shorter log (raftpy, like 0.18, advertises its last durable entry)
and lose the vote of a voter holding the entries.  A kept TimeoutNow lapses
when we leave FOLLOWER, the term, the leader or the log changes, or T passed.
"""

from __future__ import annotations

from raftpy.core.messages import RequestVote, RequestVoteResult, TimeoutNow
from raftpy.core.state import RaftState
from raftpy.core.types import State

__all__ = ["ElectionMixin"]


class ElectionMixin(RaftState):
    __slots__ = ()

    # -- candidate side ---------------------------------------------------

    def election_start(self) -> None:
        """One election round (libraft electionStart)."""
        if not self.in_pre_vote:
            self._set_hard_state(self.current_term + 1, self.id)
        self.reset_election_timer()  # type: ignore[attr-defined]
        self.votes = {self.id}
        term = self.current_term + 1 if self.in_pre_vote else self.current_term
        kind = "pre-vote" if self.in_pre_vote else "election"
        self._trace(f"start {kind} term={term}")
        last_index = self.last_stored  # 0.18 advertises the last *persisted* entry
        last_term = self.log.term_of(last_index) or 0
        message = RequestVote(term, self.id, last_index, last_term,
                              self.disrupt_leader, self.in_pre_vote)
        for server_id in self._voters:
            if server_id != self.id:
                self._send(server_id, self._address_of(server_id), message)

    def recv_request_vote_result(self, from_id: int, from_address: str,
                                 m: RequestVoteResult) -> None:
        if self.state != State.CANDIDATE or from_id not in self._voters:
            return
        if not self.in_pre_vote and m.term > self.current_term:
            self.bump_term(m.term)  # type: ignore[attr-defined]
            return
        if m.term < self.current_term:
            return
        if m.version > 1 and m.pre_vote != self.in_pre_vote:
            return  # a reply to an earlier phase
        if self.in_pre_vote and m.term > self.current_term + 1:
            self.bump_term(m.term)  # type: ignore[attr-defined]
            return
        if not m.vote_granted:
            return
        self.votes.add(from_id)
        if len(self.votes) < self._quorum:
            return
        if self.in_pre_vote:
            self.in_pre_vote = False
            self.election_start()
        else:
            self.to_leader()  # type: ignore[attr-defined]

    # -- voter side --------------------------------------------------------

    def recv_request_vote(self, from_id: int, from_address: str, m: RequestVote) -> None:
        granted = False
        if not m.disrupt_leader and (self.state == State.LEADER or (
                self.state == State.FOLLOWER and self.current_leader_id)):
            # Leader stickiness (dissertation §4.2.3), even at a higher term (quirk 6).
            reason = "local server has a leader"
        else:
            if not m.pre_vote and m.term > self.current_term:
                self.bump_term(m.term)  # type: ignore[attr-defined]
            reason = self._vote_refusal(m)
            granted = not reason
        if granted and not m.pre_vote:
            self._set_hard_state(self.current_term, m.candidate_id)
            self.election_timer_start = self.now
        if self.tracer is not None:
            kind = "pre-vote" if m.pre_vote else "vote"
            self._trace(f"grant {kind} to {from_id}" if granted
                        else f"reject {kind} for {from_id}: {reason}")
        term = m.term if m.pre_vote else self.current_term
        if m.pre_vote and reason == "stale term":
            # Deviation from quirk 7, on purpose: echoing the request's term here
            # lets a candidate whose log is the most up to date but whose term
            # is behind never learn the term, and pre-vote deadlocks (canonical/
            # raft #279, etcd #8243).  Our term makes it step up: libraft's own
            # candidates handle a reply term above term+1 exactly so (spec §2.3).
            term = self.current_term
        self._send(from_id, from_address, RequestVoteResult(term, granted, m.pre_vote))

    def _vote_refusal(self, m: RequestVote) -> str:
        """Why the vote is refused, or '' to grant it (spec §2.3 steps 4-6)."""
        if self._installing is not None:
            return "installing snapshot"
        if m.term < self.current_term:
            return "stale term"
        if not m.pre_vote and self.voted_for not in (0, m.candidate_id):
            # At most one vote per term, whatever a pending transfer (see the
            # module docstring: libraft's transferee exception elects two leaders).
            return f"already voted for {self.voted_for}"
        # Dissertation §3.6.1: grant only to a log at least as up-to-date as ours.
        last_index = self.log.last_index
        if last_index == 0:
            return ""
        last_term = self.log.last_term
        if m.last_log_term != last_term:
            return "" if m.last_log_term > last_term else "log is more up-to-date"
        return "" if last_index <= m.last_log_index else "log is longer"

    # -- leadership transfer, target side ----------------------------------

    def recv_timeout_now(self, from_id: int, from_address: str, m: TimeoutNow) -> None:
        if (not self._is_voter or self.state != State.FOLLOWER
                or self.current_leader_id != from_id or m.term < self.current_term):
            return
        if m.term > self.current_term:
            self.bump_term(m.term)  # type: ignore[attr-defined]
        if self.log.last_index != m.last_log_index or self.log.last_term != m.last_log_term:
            self._trace("ignore TimeoutNow: log differs")
            return
        if self.last_stored < self.log.last_index:
            # A libraft 0.15 leader's TimeoutNow follows entries not yet durable
            # here (see the module docstring): campaign once they are.
            self._trace("keep TimeoutNow until the append in flight is durable")
            self._kept_timeout_now = (self.current_term, from_id, m.last_log_index,
                                      m.last_log_term, self.now)
            return
        self.to_candidate(disrupt_leader=True)  # type: ignore[attr-defined]

    def maybe_kept_timeout_now(self) -> None:
        """Act on a kept TimeoutNow once the log it names is durable, if we still
        follow its sender in its term and it arrived less than T ago (its
        leader's transfer times out after T: later it would only disrupt)."""
        kept = self._kept_timeout_now
        if kept is None or self.last_stored < self.log.last_index:
            return
        self._kept_timeout_now = None
        term, leader_id, last_index, last_term, received_ms = kept
        if (self.state != State.FOLLOWER or not self._is_voter or term != self.current_term
                or self.current_leader_id != leader_id or self.log.last_index != last_index
                or self.log.last_term != last_term
                or self.now - received_ms >= self.config.election_timeout_ms):
            self._trace("drop kept TimeoutNow: leader, term or log changed, or too late")
            return
        self.to_candidate(disrupt_leader=True)  # type: ignore[attr-defined]
