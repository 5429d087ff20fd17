"""The six Raft messages, with libraft's fields (spec §4.4).

May import: the standard library, ``raftpy.core.types`` and
``raftpy.core.configuration``.  Messages are values.  They carry no sender or
receiver: like libraft, the transport supplies the sender (handshake) and the
core addresses replies from the event it received.  ``version`` is what a
decoder inferred from the header length (spec §1.3); the core only looks at
it where libraft does (RequestVoteResult, §2.3 step 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from raftpy.core.configuration import Configuration
from raftpy.core.types import Entry

__all__ = ["MessageType", "RequestVote", "RequestVoteResult", "AppendEntries",
           "AppendEntriesResult", "InstallSnapshot", "TimeoutNow", "ReadHeartbeat",
           "ReadHeartbeatResult", "ReadIndexRequest", "ReadIndexResult", "Message",
           "FEATURE_READ_HEARTBEAT", "FEATURE_CHECKED_ACKS", "FEATURES"]

# raftpy's feature bits in AppendEntriesResult.features (the 0.18 header's
# word; libraft defines none yet and would take the low bits first, so ours
# start at the top).  A raftpy server sets FEATURES in every
# AppendEntriesResult it sends; libraft never does, and a 0.15 peer's 24-byte
# header decodes as 0.  A leader sends the raftpy-only ReadHeartbeat to a peer
# only while that peer's last AppendEntriesResult in this term carried the
# bit, so a libraft peer is never sent a type it does not know.  A follower
# sends ReadIndexRequest only to a leader it received a ReadHeartbeat from in
# the current term (the leader's announcement, read_index.py): never to a
# libraft leader.
FEATURE_READ_HEARTBEAT = 1 << 63
# FEATURE_CHECKED_ACKS: this follower's success reports only entries the
# leader's messages checked (``_acknowledged``), and its refusal of a stale
# AppendEntries is never 0.  A leader may stop an AppendEntries short of the
# follower's tail only for such a follower (replication.py, _reach_reign).
FEATURE_CHECKED_ACKS = 1 << 62
FEATURES = FEATURE_READ_HEARTBEAT | FEATURE_CHECKED_ACKS


class MessageType(IntEnum):
    """libraft's message type numbers (spec §1.3), the wire's type word."""

    APPEND_ENTRIES = 1
    APPEND_ENTRIES_RESULT = 2
    REQUEST_VOTE = 3
    REQUEST_VOTE_RESULT = 4
    INSTALL_SNAPSHOT = 5
    TIMEOUT_NOW = 6
    # raftpy's own types, sent only to peers that announce FEATURE_READ_HEARTBEAT:
    # far from libraft's small numbers, and below 2**16 (0.18 reads only the low
    # 16 bits of the type word).
    READ_HEARTBEAT = 0x7201
    READ_HEARTBEAT_RESULT = 0x7202
    READ_INDEX_REQUEST = 0x7203
    READ_INDEX_RESULT = 0x7204


@dataclass(frozen=True, slots=True)
class RequestVote:
    """Dissertation §3.4 RequestVote, with libraft's pre-vote and disrupt flags."""

    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int
    disrupt_leader: bool = False
    pre_vote: bool = False
    version: int = 2

    def __str__(self) -> str:
        flags = ("pre-vote " if self.pre_vote else "") + ("disrupt " if self.disrupt_leader else "")
        return (f"RequestVote {flags}term={self.term} candidate={self.candidate_id} "
                f"last={self.last_log_index}/{self.last_log_term}")


@dataclass(frozen=True, slots=True)
class RequestVoteResult:
    """Reply to RequestVote; a pre-vote reply echoes the request's term (quirk 7)."""

    term: int
    vote_granted: bool
    pre_vote: bool = False
    version: int = 2

    def __str__(self) -> str:
        kind = "pre-vote " if self.pre_vote else ""
        return f"RequestVoteResult {kind}term={self.term} granted={int(self.vote_granted)}"


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Dissertation §3.5 AppendEntries; no leader id (it comes from the handshake)."""

    term: int
    prev_log_index: int
    prev_log_term: int
    leader_commit: int
    entries: Sequence[Entry] = ()
    version: int = 0

    def __str__(self) -> str:
        return (f"AppendEntries term={self.term} prev={self.prev_log_index}/"
                f"{self.prev_log_term} commit={self.leader_commit} "
                f"entries={len(self.entries)}")


@dataclass(frozen=True, slots=True)
class AppendEntriesResult:
    """Reply to AppendEntries and InstallSnapshot: rejected is 0 or the failing index."""

    term: int
    rejected: int
    last_log_index: int
    features: int = 0              # libraft's default; raftpy's core sends FEATURES
    version: int = 1

    def __str__(self) -> str:
        return (f"AppendEntriesResult term={self.term} rejected={self.rejected} "
                f"last={self.last_log_index}")


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Dissertation §5.3 InstallSnapshot: the whole snapshot in one message (spec §2.5)."""

    term: int
    last_index: int
    last_term: int
    conf_index: int
    conf: Configuration
    data: bytes | memoryview = b""
    version: int = 0

    def __str__(self) -> str:
        return (f"InstallSnapshot term={self.term} last={self.last_index}/"
                f"{self.last_term} conf_index={self.conf_index} size={len(self.data)}")


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Dissertation §3.10 TimeoutNow: start an election now, for leadership transfer."""

    term: int
    last_log_index: int
    last_log_term: int
    version: int = 0

    def __str__(self) -> str:
        return f"TimeoutNow term={self.term} last={self.last_log_index}/{self.last_log_term}"


@dataclass(frozen=True, slots=True)
class ReadHeartbeat:
    """raftpy only: the leader asks "am I still your leader in this term?" for the
    reads registered before it sent round ``read_round`` (read_index.py)."""

    term: int
    read_round: int

    def __str__(self) -> str:
        return f"ReadHeartbeat term={self.term} round={self.read_round}"


@dataclass(frozen=True, slots=True)
class ReadHeartbeatResult:
    """raftpy only: the reply, echoing the round; a follower of the sender in
    ``term`` sends it, and only after receiving that round's ReadHeartbeat."""

    term: int
    read_round: int

    def __str__(self) -> str:
        return f"ReadHeartbeatResult term={self.term} round={self.read_round}"


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """raftpy only: a follower asks its leader for a read index (follower reads)."""

    term: int
    request_id: int

    def __str__(self) -> str:
        return f"ReadIndexRequest term={self.term} id={self.request_id}"


@dataclass(frozen=True, slots=True)
class ReadIndexResult:
    """raftpy only: the leader's answer; read_index 0 means refused (not leader)."""

    term: int
    request_id: int
    read_index: int

    def __str__(self) -> str:
        return (f"ReadIndexResult term={self.term} id={self.request_id} "
                f"index={self.read_index}")


Message = (RequestVote | RequestVoteResult | AppendEntries | AppendEntriesResult
           | InstallSnapshot | TimeoutNow | ReadHeartbeat | ReadHeartbeatResult
           | ReadIndexRequest | ReadIndexResult)

MESSAGE_TYPES: dict[type, MessageType] = {
    AppendEntries: MessageType.APPEND_ENTRIES,
    AppendEntriesResult: MessageType.APPEND_ENTRIES_RESULT,
    RequestVote: MessageType.REQUEST_VOTE,
    RequestVoteResult: MessageType.REQUEST_VOTE_RESULT,
    InstallSnapshot: MessageType.INSTALL_SNAPSHOT,
    TimeoutNow: MessageType.TIMEOUT_NOW,
    ReadHeartbeat: MessageType.READ_HEARTBEAT,
    ReadHeartbeatResult: MessageType.READ_HEARTBEAT_RESULT,
    ReadIndexRequest: MessageType.READ_INDEX_REQUEST,
    ReadIndexResult: MessageType.READ_INDEX_RESULT,
}
