"""Config: libraft's tunables with libraft's defaults (spec §1.8), plus raftpy's limits.

May import: the standard library only.  A Config is a value; the core never
mutates it.  Every queue the core keeps has its limit here (house style 7).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Config:
    """Tunables of one server.  Units are in the names; defaults are libraft's."""

    election_timeout_ms: int = 1000
    heartbeat_timeout_ms: int = 100
    install_snapshot_timeout_ms: int = 30000
    snapshot_threshold: int = 1024
    snapshot_trailing: int = 2048
    max_catch_up_rounds: int = 10
    max_catch_up_round_duration_ms: int = 5000
    pre_vote: bool = False
    # raftpy's additions (libraft has no flow control; it sends the whole log tail):
    # at most this many entries, and about this many payload bytes, in flight
    # to one follower.  At least one entry is always sent, whatever its size.
    append_entries_max: int = 65536
    append_bytes_max: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        # raft_start asserts the same (spec §1.6).
        if not 0 < self.heartbeat_timeout_ms < self.election_timeout_ms:
            raise ValueError("need 0 < heartbeat_timeout_ms < election_timeout_ms")
        if self.append_entries_max < 1 or self.append_bytes_max < 1:
            raise ValueError("append limits must be positive")
