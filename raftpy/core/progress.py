"""Progress: the leader's view of one follower (dissertation §3.5, libraft progress.c).

May import: the standard library only.  A Progress is the one mutable record
outside ``Raft``; it lives only while its owner is leader.  Invariants:
``match_index < next_index`` and, in PROBE and SNAPSHOT mode,
``next_index == match_index + 1`` is *not* required (a probe walks back from
the leader's last index towards the follower's).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ProgressMode", "Progress"]


class ProgressMode(IntEnum):
    """libraft's progress states: PROBE sends one message per heartbeat until a
    success; PIPELINE streams optimistically; SNAPSHOT waits for an install."""

    PROBE = 0
    PIPELINE = 1
    SNAPSHOT = 2


class Progress:
    """next_index/match_index and the send bookkeeping for one follower."""

    __slots__ = ("next_index", "match_index", "mode", "snapshot_index", "last_send",
                 "snapshot_last_send", "recent_recv", "features", "unreachable")

    def __init__(self, next_index: int, match_index: int = 0) -> None:
        self.next_index = next_index
        self.match_index = match_index
        self.mode = ProgressMode.PROBE
        self.snapshot_index = 0
        self.last_send = -(1 << 62)       # "never": the first check sends at once
        self.snapshot_last_send = 0
        self.recent_recv = False          # heard from since the last check-quorum
        self.features = 0
        self.unreachable = False          # a send failed since it was last heard from

    def to_probe(self, next_index: int) -> None:
        self.mode = ProgressMode.PROBE
        self.snapshot_index = 0
        self.next_index = next_index

    def to_pipeline(self) -> None:
        self.mode = ProgressMode.PIPELINE

    def __repr__(self) -> str:
        return (f"Progress({self.mode.name} next={self.next_index} "
                f"match={self.match_index})")
