"""Linearizable reads in the core (raftpy/core/read_index.py), rule by rule."""

from __future__ import annotations

import random

import pytest

from raftpy.core.config import Config, ReadMode
from raftpy.core.events import Persisted, Propose, Read, Start, Tick, Transfer
from raftpy.core.messages import (
    FEATURE_READ_HEARTBEAT,
    FEATURES,
    AppendEntries,
    AppendEntriesResult,
    ReadHeartbeat,
    ReadHeartbeatResult,
    ReadIndexRequest,
    ReadIndexResult,
    RequestVoteResult,
)
from raftpy.core.raft import Raft, bootstrap_entries
from raftpy.core.types import Entry, EntryType, State
from raftpy.core.update import Update
from raftpy.errors import NotLeaderError
from tests.core.test_raft import conf, recv, sent, server, timeout

T = 1000


def elected(n: int = 3, **config: object) -> Raft:
    """Server 1 elected in term 2; its barrier (index 2) durable here, not yet elsewhere."""
    raft = server(1, n, **config)
    timeout(raft)
    for i in range(2, n // 2 + 2):
        recv(raft, i, RequestVoteResult(2, True), raft.now)
    assert raft.state == State.LEADER
    raft.step(Persisted(raft.now, 2, 2))
    return raft


def leader(n: int = 3, capable: tuple[int, ...] | None = None, **config: object) -> Raft:
    """Server 1 leading term 2 with index 2 committed; `capable` followers (all
    by default) announced the read feature, the others are libraft peers."""
    raft = elected(n, **config)
    for i in range(2, n + 1):
        features = FEATURES if capable is None or i in capable else 0
        recv(raft, i, AppendEntriesResult(2, 0, 2, features), raft.now)
    assert raft.commit_index == raft.last_applied == 2
    return raft


def read(raft: Raft, req: object, now: int | None = None) -> Update:
    return raft.step(Read(raft.now if now is None else now, req))


def rounds(update: Update) -> list[tuple[int, int]]:
    """The read rounds sent (round 0 is the announcement of follower reads)."""
    return [(to, m.read_round) for to, m in sent(update, ReadHeartbeat) if m.read_round]


def echo(raft: Raft, from_id: int, read_round: int, term: int = 2) -> Update:
    return recv(raft, from_id, ReadHeartbeatResult(term, read_round), raft.now)


def test_read_runs_after_a_quorum_echoes_its_round_and_writes_nothing() -> None:
    raft = leader()
    update = read(raft, "r")
    assert rounds(update) == [(2, 1), (3, 1)]
    assert update.reads == [] and update.persist == []
    update = echo(raft, 2, 1)
    assert update.reads == ["r"] and update.persist == [] and raft.log.last_index == 2


def test_many_reads_share_one_round() -> None:
    raft = leader()
    update = raft.step_all([Read(raft.now, k) for k in range(5)])
    assert rounds(update) == [(2, 1), (3, 1)]
    assert echo(raft, 3, 1).reads == [0, 1, 2, 3, 4]


def test_a_read_arriving_during_a_round_waits_for_the_next_one() -> None:
    raft = leader()
    read(raft, "a")
    update = read(raft, "b")
    assert rounds(update) == []            # round 1 is in flight: b is not part of it
    update = echo(raft, 2, 1)
    assert update.reads == ["a"]           # round 1's echo confirms only a
    assert rounds(update) == [(2, 2), (3, 2)]
    assert echo(raft, 3, 1).reads == []    # a late echo of round 1 is not one of round 2
    assert echo(raft, 3, 2).reads == ["b"]


def test_echoes_of_other_rounds_or_terms_do_not_count() -> None:
    raft = leader()
    read(raft, "a")
    assert echo(raft, 2, 0).reads == []            # a round before the read arrived
    assert echo(raft, 2, 7).reads == []            # no such round
    assert echo(raft, 2, 1, term=1).reads == []    # an older term
    assert recv(raft, 2, AppendEntriesResult(2, 0, 2, FEATURES), raft.now).reads == []
    assert echo(raft, 3, 1).reads == ["a"]


def test_read_waits_for_an_entry_of_the_leaders_term_to_commit() -> None:
    raft = elected()
    for i in (2, 3):  # followers hold index 1 only so far, but speak the feature
        recv(raft, i, AppendEntriesResult(2, 0, 1, FEATURES), raft.now)
    assert raft.commit_index == 1
    update = read(raft, "r")
    assert rounds(update) == [(2, 1), (3, 1)]
    update = echo(raft, 2, 1)
    assert update.reads == []              # confirmed, but the barrier at 2 is not committed
    update = recv(raft, 2, AppendEntriesResult(2, 0, 2, FEATURES), raft.now)
    assert raft.commit_index == 2 and update.reads == ["r"]


def test_read_waits_for_apply_to_reach_the_commit_index_at_its_round() -> None:
    raft = leader()
    raft.step(Propose(raft.now, [b"x" * 8], req="w"))
    raft.step(Persisted(raft.now, 3, 2))
    read(raft, "r")
    update = recv(raft, 2, AppendEntriesResult(2, 0, 3, FEATURES), raft.now)
    assert update.completed == [("w", 3)] and update.reads == []
    update = echo(raft, 2, 1)
    assert update.reads == ["r"] and raft.last_applied == 3


def test_without_a_quorum_of_capable_voters_a_barrier_confirms() -> None:
    raft = leader(capable=())           # libraft followers
    update = read(raft, "r")
    assert rounds(update) == []         # never a raftpy-only message to them
    assert [e.type for e in update.persist] == [EntryType.BARRIER]
    assert update.reads == []
    raft.step(Persisted(raft.now, 3, 2))
    update = recv(raft, 2, AppendEntriesResult(2, 0, 3), raft.now)
    assert update.reads == ["r"]


def test_mixed_cluster_sends_read_heartbeats_only_to_capable_voters() -> None:
    raft = leader(3, capable=(3,))
    update = read(raft, "r")
    assert rounds(update) == [(3, 1)] and update.persist == []
    assert echo(raft, 3, 1).reads == ["r"]
    raft5 = leader(5, capable=(3,))     # 1 capable + itself: no quorum of 3
    update = read(raft5, "r")
    assert rounds(update) == [] and len(update.persist) == 1


def test_an_ack_from_a_non_voter_does_not_count() -> None:
    raft = leader(3, voters=2, capable=(2, 3))
    update = read(raft, "r")
    assert rounds(update) == [(2, 1)]
    assert echo(raft, 3, 1).reads == []
    assert echo(raft, 2, 1).reads == ["r"]


def test_single_voter_reads_at_once() -> None:
    raft = Raft(1, "1", Config(), random.Random(1), term=1, entries=bootstrap_entries(conf(1)))
    raft.step(Start(0))
    update = read(raft, "r")
    assert update.reads == ["r"] and not update.messages and not update.persist


def test_unanswered_round_is_resent_each_heartbeat_timeout() -> None:
    raft = leader()
    now = raft.now
    read(raft, "r")
    assert rounds(raft.step(Tick(now + 50))) == []
    echo(raft, 2, 1, term=1)
    update = raft.step(Tick(now + 100))
    assert rounds(update) == [(2, 1), (3, 1)]   # the same round: its echo still counts
    assert echo(raft, 3, 1).reads == ["r"]


def test_step_down_fails_pending_reads_naming_the_new_leader() -> None:
    raft = leader()
    read(raft, "r")
    update = recv(raft, 3, AppendEntries(3, 2, 2, 2), raft.now)
    assert raft.state == State.FOLLOWER
    [(req, error)] = update.failed
    assert req == "r" and isinstance(error, NotLeaderError) and error.leader_id == 3
    assert echo(raft, 2, 1).reads == []


def test_reads_confirmed_but_not_run_fail_too() -> None:
    raft = elected()
    for i in (2, 3):
        recv(raft, i, AppendEntriesResult(2, 0, 1, FEATURES), raft.now)
    read(raft, "r")
    echo(raft, 2, 1)                        # confirmed, waiting for index 2
    update = recv(raft, 2, AppendEntriesResult(5, 1, 1), raft.now)   # deposed
    assert [(req, type(e)) for req, e in update.failed] == [("r", NotLeaderError)]
    assert update.failed[0][1].leader_id == 0   # not known yet


def test_transfer_fails_pending_reads_and_refuses_new_ones() -> None:
    raft = leader()
    read(raft, "a")
    update = raft.step(Transfer(raft.now, 2, "t"))
    assert [req for req, _e in update.failed] == ["a"]
    update = read(raft, "b")
    assert [req for req, _e in update.failed] == ["b"]
    assert isinstance(update.failed[0][1], NotLeaderError)


def test_follower_refuses_reads_naming_its_leader() -> None:
    raft = server(2)
    recv(raft, 1, AppendEntries(1, 1, 1, 1))
    [(req, error)] = read(raft, "r").failed
    assert req == "r" and isinstance(error, NotLeaderError)
    assert error.leader_id == 1 and error.leader_address == "1"


def test_follower_echoes_the_round_of_its_leader_only() -> None:
    raft = server(2, term=2)
    update = recv(raft, 1, ReadHeartbeat(2, 9), 5)
    assert sent(update, ReadHeartbeatResult) == [(1, ReadHeartbeatResult(2, 9))]
    assert raft.current_leader_id == 1 and raft.election_timer_start == 5
    update = recv(raft, 3, ReadHeartbeat(1, 4))          # a stale leader: no echo
    assert sent(update, ReadHeartbeatResult) == []
    assert [m.term for _to, m in sent(update, AppendEntriesResult)] == [2]


def test_followers_announce_the_feature_in_every_result() -> None:
    raft = server(2)
    update = recv(raft, 1, AppendEntries(1, 1, 1, 1))
    [(_to, result)] = sent(update, AppendEntriesResult)
    assert result.features & FEATURE_READ_HEARTBEAT
    assert FEATURE_READ_HEARTBEAT == 1 << 63   # far above libraft's future bits


def test_lease_serves_reads_without_a_round_until_it_ends() -> None:
    raft = leader(read_mode=ReadMode.LEASE, read_lease_margin_ms=200)
    start = raft.now
    read(raft, "a", start)
    echo(raft, 2, 1)
    update = read(raft, "b", start + T - 201)
    assert update.reads == ["b"] and rounds(update) == []
    update = read(raft, "c", start + T - 200)     # the lease is over: a round again
    assert update.reads == [] and rounds(update) == [(2, 2), (3, 2)]


def test_read_index_mode_never_uses_a_lease() -> None:
    raft = leader()
    read(raft, "a")
    echo(raft, 2, 1)
    update = read(raft, "b")
    assert update.reads == [] and rounds(update) == [(2, 2), (3, 2)]


def test_lease_ends_with_the_term() -> None:
    raft = leader(read_mode=ReadMode.LEASE)
    read(raft, "a")
    echo(raft, 2, 1)
    recv(raft, 3, AppendEntries(3, 2, 2, 2), raft.now)
    assert read(raft, "b").failed[0][0] == "b"


def test_read_config_is_checked() -> None:
    with pytest.raises(ValueError, match="read_lease_margin_ms"):
        Config(read_mode=ReadMode.LEASE, read_lease_margin_ms=1000)
    with pytest.raises(ValueError, match="read_lease_margin_ms"):
        Config(read_lease_margin_ms=-1)
    Config(election_timeout_ms=150, heartbeat_timeout_ms=50)   # the margin is for leases
    with pytest.raises(ValueError, match="read_mode"):
        Config(read_mode="lease")  # type: ignore[arg-type]


# -- follower reads --------------------------------------------------------------------


def follower(announced: bool = True, **config: object) -> Raft:
    """Server 2, following leader 1 in term 2 with index 2 stored, commit 1."""
    raft = server(2, term=2, follower_reads=True, **config)
    recv(raft, 1, AppendEntries(2, 1, 1, 1, [Entry(2, EntryType.BARRIER, bytes(8))]))
    raft.step(Persisted(raft.now, 2, 2))
    if announced:
        recv(raft, 1, ReadHeartbeat(2, 0))
    return raft


def test_leader_announces_follower_reads_to_raftpy_followers_once() -> None:
    raft = leader(capable=(2,), follower_reads=True)
    update = raft.step(Tick(raft.now + 100))
    assert [(to, m.read_round) for to, m in sent(update, ReadHeartbeat)] == [(2, 0)]
    update = raft.step(Tick(raft.now + 200))
    assert sent(update, ReadHeartbeat) == []
    assert echo(raft, 2, 0).reads == []        # the announcement's echo confirms nothing


def test_follower_without_an_announcement_refuses_naming_the_leader() -> None:
    raft = follower(announced=False)
    [(req, error)] = read(raft, "r").failed
    assert req == "r" and isinstance(error, NotLeaderError) and error.leader_id == 1
    assert sent(read(raft, "s"), ReadIndexRequest) == []


def test_follower_forwards_a_batch_as_one_request_and_runs_it_once_applied() -> None:
    raft = follower()
    update = raft.step_all([Read(raft.now, k) for k in range(3)])
    [(to, request)] = sent(update, ReadIndexRequest)
    assert to == 1 and request.term == 2 and update.reads == []
    update = recv(raft, 1, ReadIndexResult(2, request.request_id, 2))
    assert update.reads == [] and raft.last_applied == 1    # index 2 not committed here yet
    update = recv(raft, 1, AppendEntries(2, 2, 2, 2))
    assert raft.last_applied == 2 and update.reads == [0, 1, 2]


def test_leader_answers_a_read_index_request_after_its_round() -> None:
    raft = leader(follower_reads=True)
    update = recv(raft, 2, ReadIndexRequest(2, 7), raft.now)
    assert rounds(update) == [(2, 1), (3, 1)] and sent(update, ReadIndexResult) == []
    update = echo(raft, 3, 1)
    assert sent(update, ReadIndexResult) == [(2, ReadIndexResult(2, 7, 2))]
    assert update.reads == []


def test_a_refused_or_stale_answer() -> None:
    raft = follower()
    [(_to, request)] = sent(read(raft, "r"), ReadIndexRequest)
    assert recv(raft, 1, ReadIndexResult(2, request.request_id + 1, 2)).failed == []
    assert recv(raft, 3, ReadIndexResult(2, request.request_id, 2)).reads == []  # not the leader
    [(req, error)] = recv(raft, 1, ReadIndexResult(2, request.request_id, 0)).failed
    assert req == "r" and isinstance(error, NotLeaderError)


def test_a_deposed_leader_refuses_requests() -> None:
    raft = leader(follower_reads=True)
    recv(raft, 2, ReadIndexRequest(2, 7), raft.now)
    update = recv(raft, 3, AppendEntries(3, 2, 2, 2), raft.now)
    assert sent(update, ReadIndexResult) == [(2, ReadIndexResult(3, 7, 0))]
    update = recv(raft, 2, ReadIndexRequest(3, 8), raft.now)
    assert sent(update, ReadIndexResult) == [(2, ReadIndexResult(3, 8, 0))]


def test_forwarded_reads_fail_when_the_leader_changes() -> None:
    raft = follower()
    read(raft, "r")
    update = recv(raft, 3, AppendEntries(3, 2, 2, 2))
    [(req, error)] = update.failed
    assert req == "r" and isinstance(error, NotLeaderError) and error.leader_id == 3


def test_unanswered_forwarded_reads_give_up_after_an_election_timeout() -> None:
    raft = follower()
    start = raft.now
    update = read(raft, "r", start)
    assert update.deadline_ms is not None and update.deadline_ms <= start + T
    recv(raft, 1, AppendEntries(2, 2, 2, 1), start + 600)     # the leader is alive
    assert raft.step(Tick(start + 999)).failed == []
    [(req, error)] = raft.step(Tick(start + T)).failed
    assert req == "r" and isinstance(error, NotLeaderError)


def test_a_request_waiting_on_a_barrier_is_answered_once_it_is_applied() -> None:
    raft = leader(capable=(), follower_reads=True)      # no quorum speaks ReadHeartbeat
    update = recv(raft, 2, ReadIndexRequest(2, 7), raft.now)
    assert [e.type for e in update.persist] == [EntryType.BARRIER]
    assert sent(update, ReadIndexResult) == []          # index 3 proves nothing yet
    raft.step(Persisted(raft.now, 3, 2))
    update = recv(raft, 3, AppendEntriesResult(2, 0, 3), raft.now)
    assert sent(update, ReadIndexResult) == [(2, ReadIndexResult(2, 7, 3))]
