"""Linearizable reads without a log write: ReadIndex and leases (dissertation §6.4).

May import: the standard library, ``raftpy.errors`` and ``raftpy.core``
modules below ``raft.py``.  A ``Read`` event registers a read on the leader;
``Update.reads`` hands it back once it may run.  Rules kept:

* **Read index.**  A read may run once ``last_applied`` reaches its read
  index: the commit index when its round starts, and at least the index of
  the leader's first entry of its term (the no-op barrier of ``to_leader``).
  Committing that entry commits every entry of earlier terms, so this is
  §6.4 step 1 ("wait until an entry of its own term is committed") without
  a separate wait.  Any committed index at or past the commit index at
  registration is a valid read index: it only adds writes that committed
  while the read was in progress.
* **One round for many reads, only replies sent after registration count.**
  Reads that arrive while no round is in flight start one at the end of
  the batch (``flush_reads``): a ReadHeartbeat carrying a fresh round
  number goes to every voter that announces FEATURE_READ_HEARTBEAT.  Reads
  that arrive while a round is in flight wait for the next round.  A
  ReadHeartbeatResult counts only if it echoes the round in flight; a
  follower sends that echo only after receiving the round's ReadHeartbeat,
  which was sent after every read of the round was registered.  So each ack
  proves that its sender still followed us in our term at a time after the
  reads arrived.  With a quorum of them, no other leader of a later term
  can have committed anything before the reads arrived (its quorum would
  contain a voter that had left our term by then).  Why not count ordinary
  AppendEntriesResults: they carry no echo of their request, and one sent
  before the read arrived (queued, delayed, duplicated by the network) can
  arrive after the round started.  A leader deposed in that window would
  take it for current and serve a read that misses a write the new leader
  acknowledged before the read arrived: a stale read.
* **libraft peers are never sent a raftpy message.**  Only voters whose
  latest AppendEntriesResult of this term carried the feature bit get a
  ReadHeartbeat.  If those and the leader are not a quorum (a mixed
  cluster, or right after an election before any follower replied), the
  round's reads wait on a BARRIER entry instead (libraft's only read
  path): committing an entry appended after the reads arrived confirms the
  leadership just as well, at the cost of one log write for the round.  A
  follower's request in such a round is answered only once the barrier is
  applied here: before, its index proves nothing (a deposed leader's
  barrier index may lie below what a newer leader has committed).
* **Leases** (``Config.read_mode = LEASE``, §6.4.1).  A confirmed round
  also grants a lease until ``sent + election_timeout_ms -
  read_lease_margin_ms`` (leader's clock, ``sent`` = when the round's
  ReadHeartbeats first went out); a read arriving under a valid lease runs
  at the current read index with no round.  Why it holds: each acking
  follower received the round after ``sent`` and restarted its election
  timer then; with leader stickiness (election.py) it grants no vote, and
  starts no election, until its timer has counted ``election_timeout_ms``.
  A new leader needs one of those votes (quorums intersect), so none exists
  before the lease ends if the follower's clock counts at most
  ``read_lease_margin_ms`` more than the leader's over that interval (the
  clock-drift assumption).  Also assumed: a voter does not restart within
  the lease (a restarted server has no leader, so it votes at once), and no
  leadership transfer is under way (TimeoutNow skips stickiness; a transfer
  fails the pending reads and refuses new ones).
* **Follower reads** (``Config.follower_reads``, off by default; set it on
  every server).  A leader announces that it serves read indexes by
  sending each follower whose AppendEntriesResult carried the feature bit
  one ReadHeartbeat of round 0 per leadership (round 0 is never a round in
  flight, so its echo confirms nothing).  A follower that received a
  ReadHeartbeat from its leader in the current term forwards its reads of
  a batch as one ReadIndexRequest; any other follower (a libraft leader,
  or none known) refuses with NotLeaderError naming the leader.  The leader
  treats the request as a read of its own (a round after it arrived, the
  read index of that round) and answers ReadIndexResult with the index, or
  0 if it cannot (not leader, transferring, deposed first); the follower
  runs the reads once its own ``last_applied`` reaches the index.  Why that
  is linearizable: the index is at least the commit index the leader had,
  with its leadership confirmed, after the request arrived, so it covers
  every write acknowledged before the reads; the follower's applied
  entries are the committed log.  A follower fails its forwarded reads when
  its term or leader changes, or after election_timeout_ms unanswered.
* **Leadership ends, reads fail.**  Stepping down, a transfer, or becoming
  unavailable moves every pending read to ``orphaned``; ``flush_reads``
  fails them with NotLeaderError naming the leader if the same batch
  learned it.  The round's state and the lease are dropped with them.
"""

from __future__ import annotations

from typing import Any

from raftpy.core.config import ReadMode
from raftpy.core.messages import (
    FEATURE_READ_HEARTBEAT,
    ReadHeartbeat,
    ReadHeartbeatResult,
    ReadIndexRequest,
    ReadIndexResult,
)
from raftpy.core.state import RaftState, ReadRounds
from raftpy.core.types import Entry, EntryType, State
from raftpy.errors import NotLeaderError

__all__ = ["ReadIndexMixin", "RemoteRead"]

_BARRIER_PAYLOAD = bytes(8)  # as convert.BARRIER_PAYLOAD (libraft's 8 bytes)


class RemoteRead:
    """A follower's ReadIndexRequest, queued on the leader like a read of its own."""

    __slots__ = ("from_id", "from_address", "request_id")

    def __init__(self, from_id: int, from_address: str, request_id: int) -> None:
        self.from_id = from_id
        self.from_address = from_address
        self.request_id = request_id


class ReadIndexMixin(RaftState):
    __slots__ = ()

    # -- leader: registering -----------------------------------------------

    def register_read(self, req: Any) -> None:
        """A Read arrived at the leader (the caller checked it leads, no transfer)."""
        reads = self._reads
        # The lease dies with the leadership: orphan_reads replaces ReadRounds.
        if self.config.read_mode == ReadMode.LEASE and self.now < reads.lease_until_ms:
            self._confirm([req], self._read_index())
            return
        reads.next.append(req)

    def _read_index(self) -> int:
        """The commit index, raised to our term's first entry (see the docstring)."""
        return max(self.commit_index, self._term_first_index())

    def _term_first_index(self) -> int:
        """Index of the first entry of current_term in the log (terms never
        decrease along a log: a binary search); the last index if there is none."""
        log = self.log
        term = self.current_term
        low, high = log.offset + 1, log.last_index
        if high < low or log.term_of(high) != term:
            return log.last_index
        while low < high:
            mid = (low + high) // 2
            if log.term_of(mid) == term:
                high = mid
            else:
                low = mid + 1
        return low

    # -- leader: rounds ----------------------------------------------------

    def _start_read_round(self) -> None:
        reads = self._reads
        reads.round += 1
        reads.in_flight = True
        reads.current, reads.next = reads.next, []
        reads.index = self._read_index()
        reads.sent_ms = reads.resent_ms = self.now
        reads.acks = set()
        capable = [s for s in self._voters if s != self.id
                   and self.progress[s].features & FEATURE_READ_HEARTBEAT]
        if len(capable) + (self.id in self._voters) < self._quorum:
            self._read_by_barrier()
            return
        if self.tracer is not None:
            self._trace(f"read round {reads.round}: {len(reads.current)} reads at "
                        f"{reads.index}")
        message = ReadHeartbeat(self.current_term, reads.round)
        for server_id in capable:
            self._send(server_id, self._address_of(server_id), message)
        self._maybe_confirm_round()

    def _read_by_barrier(self) -> None:
        """Too few voters speak ReadHeartbeat: confirm by committing a BARRIER."""
        reads = self._reads
        index = self.append_local([Entry(  # type: ignore[attr-defined]
            self.current_term, EntryType.BARRIER, _BARRIER_PAYLOAD)])
        self._trace(f"read round {reads.round}: {len(reads.current)} reads wait on "
                    f"barrier {index}")
        reads.in_flight = False
        # Remote reads too wait for the barrier to be applied here: until it is
        # committed its index confirms nothing (a deposed leader's barrier may
        # lie below what a new leader committed).
        self._queue_confirmed(reads.current, index)
        reads.current = []

    def read_tick(self) -> None:
        """On a tick: a leader announces follower reads and repeats the round in
        flight; a follower gives up forwarded reads unanswered for too long."""
        if self.state == State.LEADER:
            if self.config.follower_reads:
                self._announce_reads()
            self._resend_read_round()
        elif self._reads.remote:
            self._expire_forwarded()

    def _announce_reads(self) -> None:
        reads = self._reads
        for server_id, address, p in self._targets:
            if p.features & FEATURE_READ_HEARTBEAT and server_id not in reads.announced:
                reads.announced.add(server_id)
                self._send(server_id, address, ReadHeartbeat(self.current_term, 0))

    def _resend_read_round(self) -> None:
        """Repeat the round in flight to voters that have not answered, once per
        heartbeat timeout (the round number stays: an echo of it is still sent
        after the reads arrived)."""
        reads = self._reads
        if not reads.in_flight or self.now - reads.resent_ms < self.config.heartbeat_timeout_ms:
            return
        reads.resent_ms = self.now
        message = ReadHeartbeat(self.current_term, reads.round)
        for server_id in self._voters:
            if (server_id != self.id and server_id not in reads.acks
                    and self.progress[server_id].features & FEATURE_READ_HEARTBEAT):
                self._send(server_id, self._address_of(server_id), message)

    def recv_read_heartbeat_result(self, from_id: int, from_address: str,
                                   m: ReadHeartbeatResult) -> None:
        if m.term > self.current_term:
            self.bump_term(m.term)  # type: ignore[attr-defined]
            return
        if self.state != State.LEADER or m.term != self.current_term:
            return
        p = self.progress.get(from_id)
        if p is None or from_id == self.id:
            return
        p.recent_recv = True  # a follower of ours: contact, for check-quorum
        reads = self._reads
        if reads.in_flight and m.read_round == reads.round:
            reads.acks.add(from_id)
            self._maybe_confirm_round()

    def _maybe_confirm_round(self) -> None:
        reads = self._reads
        voters = self._voters
        count = sum(1 for s in reads.acks if s in voters) + (self.id in voters)
        if count < self._quorum:
            return
        if self.tracer is not None:
            self._trace(f"read round {reads.round} confirmed by {count}")
        reads.in_flight = False
        reads.lease_until_ms = (reads.sent_ms + self.config.election_timeout_ms
                                - self.config.read_lease_margin_ms)
        current = reads.current
        reads.current = []
        self._confirm(current, reads.index)

    def _confirm(self, reqs: list[Any], index: int) -> None:
        """Leadership confirmed for reqs: they run once index is applied (a
        follower's request is answered with the index at once)."""
        local = []
        for req in reqs:
            if type(req) is RemoteRead:
                self._send(req.from_id, req.from_address,
                           ReadIndexResult(self.current_term, req.request_id, index))
            else:
                local.append(req)
        if local:
            self._queue_confirmed(local, index)

    def _queue_confirmed(self, reqs: list[Any], index: int) -> None:
        confirmed = self._reads.confirmed
        if confirmed and confirmed[-1][0] >= index:
            # Keep the queue ordered by index: a later read may share an
            # earlier group's (larger) index, never run before it.
            confirmed[-1][1].extend(reqs)
        else:
            confirmed.append((index, reqs))

    # -- follower ------------------------------------------------------------

    def recv_read_heartbeat(self, from_id: int, from_address: str, m: ReadHeartbeat) -> None:
        """Echo the round if we follow the sender in its term (only a leader sends
        it); a stale one gets our term, as a stale AppendEntries does."""
        if not self.accept_leader(  # type: ignore[attr-defined]
                from_id, from_address, m.term, 0, "ReadHeartbeat"):
            return
        self._reads.leader_reads = (self.current_term, from_id)
        self._send(from_id, from_address, ReadHeartbeatResult(self.current_term,
                                                              m.read_round))

    # -- follower reads --------------------------------------------------------

    def maybe_forward_read(self, req: Any) -> bool:
        """A Read on a follower: queue it for the leader if the leader announced
        follower reads in this term; False (the caller refuses it) otherwise."""
        reads = self._reads
        leader = self.current_leader_id
        if (not self.config.follower_reads or not leader
                or reads.leader_reads != (self.current_term, leader)):
            return False
        reads.forward.append(req)
        return True

    def recv_read_index_request(self, from_id: int, from_address: str,
                                m: ReadIndexRequest) -> None:
        if m.term > self.current_term:
            self.bump_term(m.term)  # type: ignore[attr-defined]
        if (m.term == self.current_term and self.state == State.LEADER
                and self.transfer is None):
            self.register_read(RemoteRead(from_id, from_address, m.request_id))
        else:  # refused: the follower learns our term, or that we do not lead
            self._send(from_id, from_address,
                       ReadIndexResult(self.current_term, m.request_id, 0))

    def recv_read_index_result(self, from_id: int, from_address: str,
                               m: ReadIndexResult) -> None:
        if m.term > self.current_term:
            self.bump_term(m.term)  # type: ignore[attr-defined]
            return
        reads = self._reads
        if (m.term, from_id) != reads.remote_to or m.request_id not in reads.remote:
            return  # stale: another term or leader, or already given up
        reqs, _sent_ms = reads.remote.pop(m.request_id)
        if m.read_index:
            self._confirm(reqs, m.read_index)
        else:
            self._fail_reads(reqs)

    def _send_forwarded(self) -> None:
        reads = self._reads
        term, leader = self.current_term, self.current_leader_id
        if reads.remote_to != (term, leader):
            self._fail_forwarded()
        reads.request_id += 1
        reads.remote[reads.request_id] = (reads.forward, self.now)
        reads.remote_to = (term, leader)
        reads.forward = []
        self._send(leader, self.current_leader_address, ReadIndexRequest(term, reads.request_id))

    def _expire_forwarded(self) -> None:
        remote = self._reads.remote
        for request_id, (reqs, sent_ms) in list(remote.items()):
            if self.now - sent_ms >= self.config.election_timeout_ms:
                self._trace(f"read index request {request_id} unanswered: give up")
                del remote[request_id]
                self._fail_reads(reqs)

    def _fail_forwarded(self) -> None:
        reads = self._reads
        for reqs, _sent_ms in reads.remote.values():
            self._fail_reads(reqs)
        reads.remote = {}

    def _fail_reads(self, reqs: list[Any]) -> None:
        leader = self.current_leader_id if self.state == State.FOLLOWER else 0
        address = self.current_leader_address if leader else None
        failed = self._out.failed
        for req in reqs:
            if type(req) is RemoteRead:
                self._send(req.from_id, req.from_address,
                           ReadIndexResult(self.current_term, req.request_id, 0))
            else:
                failed.append((req, NotLeaderError(leader_id=leader, leader_address=address)))

    # -- every batch, and leaving leadership -----------------------------------

    def flush_reads(self) -> None:
        """End of a batch: fail the orphaned reads, start a round for new ones,
        forward a follower's, hand over the reads that may run."""
        reads = self._reads
        if reads.orphaned:
            orphaned, reads.orphaned = reads.orphaned, []
            self._fail_reads(orphaned)
        state = self.state
        if reads.remote and (state != State.FOLLOWER or reads.remote_to != (
                self.current_term, self.current_leader_id)):
            self._fail_forwarded()  # asked another leader, or another term
        if reads.forward:
            # Checked again here: the leader that announced follower reads when
            # the reads arrived may have been replaced later in the batch, by
            # one (maybe libraft) that never did.
            leader = self.current_leader_id
            if (state == State.FOLLOWER and leader
                    and reads.leader_reads == (self.current_term, leader)):
                self._send_forwarded()
            else:
                forward, reads.forward = reads.forward, []
                self._fail_reads(forward)
        if state == State.LEADER and reads.next and not reads.in_flight:
            self._start_read_round()
        confirmed = reads.confirmed
        if state == State.UNAVAILABLE:
            while confirmed:
                self._fail_reads(confirmed.popleft()[1])
        applied = self.last_applied
        while confirmed and confirmed[0][0] <= applied:
            index, reqs = confirmed.popleft()
            self._release(index, reqs)

    def _release(self, index: int, reqs: list[Any]) -> None:
        """reqs may run: hand them to the shell; answer a follower's request (one
        that waited on a barrier) with the index."""
        out = self._out.reads
        for req in reqs:
            if type(req) is RemoteRead:
                self._send(req.from_id, req.from_address,
                           ReadIndexResult(self.current_term, req.request_id, index))
            else:
                out.append(req)

    def orphan_reads(self) -> None:
        """Leadership ends (or a transfer starts): every pending read will fail."""
        reads = self._reads
        orphaned = reads.orphaned
        for _index, reqs in reads.confirmed:
            orphaned.extend(reqs)
        orphaned.extend(reads.current)
        orphaned.extend(reads.next)
        self._reads = ReadRounds(reads.round, orphaned, reads.request_id)
