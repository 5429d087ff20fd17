"""The contracts of update.py for an Update accumulated over several events.

The Server steps everything that arrived in one loop iteration with one
``Raft.step_all`` and carries out ONE Update in update.py's order (persist,
send, apply, resolve, reads, snapshots).  Each test feeds a batch whose
events interact and checks that the Update it yields can be carried out in
that order without breaking a rule a single event keeps."""

from __future__ import annotations

from raftpy.core.configuration import Configuration, Role
from raftpy.core.events import (
    Persisted,
    PersistFailed,
    Propose,
    Read,
    Receive,
    Remove,
    SnapshotTaken,
    TakeSnapshot,
)
from raftpy.core.messages import (
    FEATURES,
    AppendEntries,
    AppendEntriesResult,
    InstallSnapshot,
    ReadHeartbeat,
    ReadHeartbeatResult,
    RequestVote,
    RequestVoteResult,
)
from raftpy.core.raft import Raft
from raftpy.core.snapshot_types import Snapshot
from raftpy.core.types import Entry, EntryType, State
from raftpy.errors import LeadershipLostError, NotLeaderError
from tests.core.test_raft import cmd, conf, leader, recv, sent, server, timeout


def got(raft: Raft, from_id: int, message: object, now: int = 0) -> Receive:
    return Receive(now, from_id, str(from_id), message)  # type: ignore[arg-type]


def change(term: int, configuration: Configuration) -> Entry:
    return Entry(term, EntryType.CHANGE, configuration.encode())


# -- requests: accepted, completed, failed -------------------------------------------


def test_a_proposal_then_a_step_down_in_one_batch_is_accepted_then_failed() -> None:
    """A request accepted and lost in the same batch: accepted (so the shell knows
    its index) and failed, never completed; its entry is still written (an
    uncommitted entry a new leader may keep or replace)."""
    raft = leader()
    update = raft.step_all([Propose(0, [b"p" * 8], "p"),
                            got(raft, 2, AppendEntriesResult(3, 2, 2, FEATURES))])
    assert raft.state == State.FOLLOWER and update.state_changed
    assert update.hard_state == (3, 0)
    assert update.accepted == [("p", 3)] and update.completed == []
    assert [(req, type(error)) for req, error in update.failed] == [
        ("p", LeadershipLostError)]
    assert (update.persist_index, len(update.persist)) == (3, 1)


def test_a_proposal_accepted_and_committed_in_one_batch_completes_once() -> None:
    raft = leader()
    update = raft.step_all([Propose(0, [b"p" * 8] * 2, "p"), Persisted(0, 4, 2),
                            got(raft, 2, AppendEntriesResult(2, 0, 3, FEATURES)),
                            got(raft, 2, AppendEntriesResult(2, 0, 4, FEATURES))])
    assert update.accepted == [("p", 3)]
    assert update.completed == [("p", 4)] and update.failed == []
    assert (update.apply_index, len(update.apply)) == (3, 2)


def test_a_failed_write_in_a_batch_fails_a_proposal_made_earlier_in_it() -> None:
    """A write of the previous Update fails while a proposal of this batch waits:
    both lie past the failed index, so both requests fail and nothing of the
    batch's own entries is written."""
    raft = leader()
    raft.step(Propose(0, [b"a" * 8], "a"))                       # entry 3, in flight
    error = OSError("disk full")
    update = raft.step_all([Propose(0, [b"b" * 8], "b"), PersistFailed(0, 3, error)])
    assert update.accepted == [("b", 4)]
    assert sorted(req for req, _error in update.failed) == ["a", "b"]
    assert update.persist == [] and update.truncate_from == 3
    assert raft.state == State.FOLLOWER and raft.log.last_index == 2


# -- persisting: hard state, truncation, installs ------------------------------------


def test_a_vote_then_a_newer_term_in_one_batch_persists_the_newer_term() -> None:
    """hard_state holds only the batch's last (term, vote); the grant sent for the
    earlier term is still covered: once the newer term is durable the server
    can never vote in the earlier one again."""
    raft = server(2)
    update = raft.step_all([got(raft, 3, RequestVote(3, 3, 1, 1)),
                            got(raft, 1, AppendEntries(4, 1, 1, 1))])
    assert sent(update, RequestVoteResult) == [(3, RequestVoteResult(3, True))]
    assert update.hard_state == (4, 0)
    update = recv(raft, 3, RequestVote(3, 3, 1, 1))
    assert sent(update, RequestVoteResult)[0][1].vote_granted is False


def test_truncations_and_appends_in_one_batch_give_one_consistent_write() -> None:
    """A follower appends, is truncated below what it appended in the batch, then
    appends again: the Update truncates from the lowest index and writes one
    contiguous run from there."""
    raft = server(2, extra=[cmd(1), cmd(1)])              # entries 2, 3 on disk
    update = raft.step_all([
        got(raft, 1, AppendEntries(2, 3, 1, 1, [cmd(2), cmd(2)])),        # 4, 5
        got(raft, 3, AppendEntries(3, 1, 1, 1, [cmd(3)] * 3)),            # 2..4: conflict at 2
    ])
    assert update.truncate_from == 2
    assert update.persist_index == 2 and [e.term for e in update.persist] == [3, 3, 3]
    assert raft.log.last_index == 4 and raft.last_stored == 1


def test_a_failed_write_reported_while_installing_is_ignored() -> None:
    """update.py item 6: the shell reports the completion of every write issued
    before an install before SnapshotInstalled, and the core ignores them.  A
    PersistFailed of such a write (reported in the install's batch, or after it)
    must neither truncate the snapshot's log nor reject to the leader."""
    raft = server(2, term=2)
    raft.step(got(raft, 1, AppendEntries(2, 1, 1, 1, [cmd(2)] * 3)))   # 2..4 in flight
    update = raft.step_all([
        got(raft, 1, InstallSnapshot(2, 10, 2, 1, conf(3), b"snap")),
        PersistFailed(0, 2, OSError("disk full")),
    ])
    assert update.install_snapshot is not None and update.install_snapshot.index == 10
    assert update.truncate_from == 0 and update.persist == []
    assert sent(update, AppendEntriesResult) == []
    assert raft._installing is not None and raft.log.last_index == 10


def test_apply_before_an_install_in_one_batch_is_below_the_snapshot() -> None:
    """A follower commits (apply) and then starts an install in the same batch: the
    shell applies first, then restores from the snapshot, so the apply must
    lie wholly below the snapshot, and no write of the batch survives it."""
    raft = server(2, term=2, extra=[cmd(1), cmd(1)])
    update = raft.step_all([
        got(raft, 1, AppendEntries(2, 3, 1, 3)),                           # commit 2..3
        got(raft, 1, AppendEntries(2, 3, 1, 3, [cmd(2)])),                 # append 4
        got(raft, 1, InstallSnapshot(2, 10, 2, 1, conf(3), b"snap")),
    ])
    assert update.install_snapshot is not None and update.install_snapshot.index == 10
    assert (update.apply_index, len(update.apply)) == (2, 2)
    assert update.persist == [] and update.truncate_from == 0
    assert update.take_snapshot is None


# -- snapshots asked for in a batch (review of retarget_snapshot) ---------------------


def test_a_retargeted_snapshot_carries_the_configuration_at_its_new_index() -> None:
    """A follower asked for a snapshot before a CHANGE entry was applied later in the
    batch: the request moves to the last applied entry and must carry that
    configuration (committed by then), not the one at the first index."""
    new = Configuration.of(*[(i, str(i), Role.VOTER) for i in range(1, 5)])
    raft = server(2, term=2, snapshot_threshold=2, snapshot_trailing=0)
    entries = [cmd(2), cmd(2), change(2, new), cmd(2)]                    # 2..5, CHANGE at 4
    raft.step(got(raft, 1, AppendEntries(2, 1, 1, 1, entries)))
    raft.step(Persisted(0, 5, 2))
    assert raft.configuration == new and raft.configuration_uncommitted_index == 4
    update = raft.step_all([got(raft, 1, AppendEntries(2, 5, 2, 3)),       # applies 2..3
                            got(raft, 1, AppendEntries(2, 5, 2, 5))])      # applies 4..5
    assert update.take_snapshot == Snapshot(5, 2, 4, new)
    assert raft._taking is update.take_snapshot


def test_a_snapshot_asked_for_then_unavailable_in_one_batch_is_dropped() -> None:
    """retarget_snapshot cannot ask again on a server that became unavailable later
    in the batch: the request is dropped, and nothing is left being taken."""
    raft = leader(snapshot_threshold=3)
    raft.step(Propose(0, [b"a" * 8] * 2))
    raft.step(Persisted(0, 4, 2))
    update = raft.step_all([got(raft, 2, AppendEntriesResult(2, 0, 3, FEATURES)),  # asks at 3
                            got(raft, 2, AppendEntriesResult(2, 0, 4, FEATURES)),
                            PersistFailed(0, 1, OSError("gone"))])   # a committed entry
    assert raft.state == State.UNAVAILABLE and raft.last_applied == 4
    assert update.take_snapshot is None and raft._taking is None


def test_take_snapshot_then_an_install_in_one_batch_defers_the_install() -> None:
    """An on-demand request and a leader's InstallSnapshot in the same batch: one
    snapshot at a time, so the Update asks for ours and the install waits for
    SnapshotTaken (never both in one Update)."""
    raft = server(2, term=2, extra=[cmd(1), cmd(1)])
    raft.step(got(raft, 1, AppendEntries(2, 3, 1, 3)))
    update = raft.step_all([TakeSnapshot(0),
                            got(raft, 1, InstallSnapshot(2, 10, 2, 1, conf(3), b"snap"))])
    assert update.take_snapshot is not None and update.take_snapshot.index == 3
    assert update.install_snapshot is None and raft._deferred_install is not None


def test_an_install_started_in_a_batch_refuses_a_later_take_snapshot() -> None:
    """The other order: our snapshot is taken, the deferred install starts, then a
    TakeSnapshot in the same batch: never both requests in one Update."""
    raft = server(2, term=2, extra=[cmd(1), cmd(1)], snapshot_threshold=1)
    raft.step(got(raft, 1, AppendEntries(2, 3, 1, 3)))      # asks for a snapshot at 3
    raft.step(got(raft, 1, InstallSnapshot(2, 10, 2, 1, conf(3), b"snap")))   # deferred
    assert raft._taking is not None and raft._deferred_install is not None
    update = raft.step_all([SnapshotTaken(0, 3, b"own"), TakeSnapshot(0)])
    assert update.install_snapshot is not None and update.install_snapshot.index == 10
    assert update.take_snapshot is None and raft._taking is None


# -- counting voters when a batch changes them (review of the sim's _check_commit) ----


def test_a_voter_removed_earlier_in_a_batch_no_longer_counts_toward_a_commit() -> None:
    """The simulator accepts a commit counted under the voters from before a batch
    that changed them; the core must count the new voters for anything after
    the change: a removed server's acknowledgement later in the batch commits
    nothing."""
    raft = leader()
    raft.step(Propose(0, [b"a" * 8], "a"))                       # entry 3
    raft.step(Persisted(0, 3, 2))
    update = raft.step_all([Remove(0, 3, "rm"),                  # CHANGE at 4: voters 1, 2
                            got(raft, 3, AppendEntriesResult(2, 0, 3, FEATURES))])
    assert raft._voters == (1, 2)
    assert raft.commit_index == 2 and update.completed == []
    update = raft.step(got(raft, 2, AppendEntriesResult(2, 0, 3, FEATURES)))
    assert raft.commit_index == 3 and update.completed == [("a", 3)]


def test_a_commit_counted_before_a_removal_in_the_same_batch_stands() -> None:
    """The case the relaxed check exists for: a quorum of the old voters (1 and 3)
    committed entry 3, then 3 was removed in the same batch; at the end of it
    only 1 of the new voters (1, 2) holds the entry, and that is correct."""
    raft = leader()
    raft.step(Propose(0, [b"a" * 8], "a"))
    raft.step(Persisted(0, 3, 2))
    update = raft.step_all([got(raft, 3, AppendEntriesResult(2, 0, 3, FEATURES)),
                            Remove(0, 3, "rm")])
    assert raft.commit_index == 3 and raft._voters == (1, 2)
    assert update.completed == [("a", 3)] and update.accepted == [("rm", 4)]


# -- reads -----------------------------------------------------------------------------


def read_leader() -> Raft:
    """Server 1 leads term 2; its followers announced FEATURE_READ_HEARTBEAT, but
    its barrier (entry 2) is not committed yet: a read's index is 2."""
    raft = server(1)
    timeout(raft)
    recv(raft, 2, RequestVoteResult(2, True))
    recv(raft, 2, AppendEntriesResult(2, 1, 1, FEATURES))     # refuses the probe at 1
    recv(raft, 3, AppendEntriesResult(2, 1, 1, FEATURES))
    assert raft.state == State.LEADER and raft.commit_index == 1
    return raft


def test_a_read_confirmed_then_a_step_down_in_one_batch_fails_and_never_runs() -> None:
    raft = read_leader()
    update = raft.step(Read(0, "r"))
    round_ = [m for _to, m in sent(update, ReadHeartbeat)][0].read_round
    update = raft.step_all([got(raft, 2, ReadHeartbeatResult(2, round_)),
                            got(raft, 3, AppendEntriesResult(3, 2, 2, FEATURES))])
    assert raft.state == State.FOLLOWER
    assert update.reads == []
    assert [(req, type(error)) for req, error in update.failed] == [("r", NotLeaderError)]


def test_a_read_runs_after_the_apply_of_its_own_update() -> None:
    """A read confirmed in a batch that also commits its read index: released in
    the same Update, whose apply reaches that index (the shell runs reads
    after apply), never before the index is applied."""
    raft = read_leader()
    update = raft.step(Read(0, "r"))
    round_ = [m for _to, m in sent(update, ReadHeartbeat)][0].read_round
    assert raft._reads.index == 2
    update = raft.step(got(raft, 2, ReadHeartbeatResult(2, round_)))
    assert update.reads == []                        # confirmed, but 2 is not applied
    update = raft.step_all([Persisted(0, 2, 2),
                            got(raft, 2, AppendEntriesResult(2, 0, 2, FEATURES))])
    assert update.reads == ["r"]
    assert (update.apply_index, len(update.apply)) == (2, 1)


def test_a_read_forwarded_in_a_batch_goes_only_to_a_leader_that_announced_reads() -> None:
    """read_index.py: a follower forwards reads only to a leader that announced
    follower reads in the current term (a libraft leader is never sent a
    ReadIndexRequest).  The check is made when the Read arrives, the request
    is sent at the end of the batch: if a new leader of a newer term took over
    in between, the reads must fail (naming it), not go to it."""
    raft = server(2, term=2, follower_reads=True)
    recv(raft, 1, ReadHeartbeat(2, 0))                    # leader 1 announces, term 2
    assert raft._reads.leader_reads == (2, 1)
    update = raft.step_all([Read(0, "r"),
                            got(raft, 3, AppendEntries(3, 1, 1, 1))])   # leader 3, term 3
    assert raft.current_leader_id == 3 and raft.current_term == 3
    assert [to for to, _address, m in update.messages
            if type(m).__name__ == "ReadIndexRequest"] == []
    assert [(req, type(error)) for req, error in update.failed] == [("r", NotLeaderError)]
    error = update.failed[0][1]
    assert isinstance(error, NotLeaderError) and error.leader_id == 3
