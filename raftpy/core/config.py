"""Config: libraft's tunables with libraft's defaults (spec §1.8), plus raftpy's limits.

May import: the standard library only.  A Config is a value; the core never
mutates it.  Every queue the core keeps has its limit here (house style 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Config", "ReadMode"]


class ReadMode(Enum):
    """How a leader confirms it still leads before serving a read (read_index.py).

    READ_INDEX: one round of ReadHeartbeat acknowledged by a quorum after the
    read arrived (dissertation §6.4); safe whatever the clocks do.
    LEASE: skip the round while a lease from the last confirmed round holds
    (§6.4.1); safe only if clocks drift apart by less than
    ``Config.read_lease_margin_ms`` per election timeout (see read_index.py).
    """

    READ_INDEX = "read_index"
    LEASE = "lease"


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
    # The shell's limits (house style 7).
    # Wire: a received header or payload longer than these closes that
    # connection with a logged reason before anything of its size is
    # allocated (libraft has no limit, spec §4.6).  The header of an
    # AppendEntries of n entries is 48 + 16 n bytes.  The core reads one of
    # them: no AppendEntries it sends carries more than
    # message_payload_max_bytes of entries (at least one entry always goes).
    message_header_max_bytes: int = 32 * 1024 * 1024
    message_payload_max_bytes: int = 1024 * 1024 * 1024
    # Transport: each peer's queue of messages not yet written to its socket;
    # past either limit the oldest queued messages are dropped (counted,
    # traced and reported to the core as SendFailed).
    send_queue_max_bytes: int = 64 * 1024 * 1024
    send_queue_max_messages: int = 4096
    connect_retry_delay_ms: int = 1000          # libraft's (spec §4.1)
    # A connect that has not completed by then fails (and is retried after
    # connect_retry_delay_ms).  libraft has none: the kernel's SYN retries
    # (about two minutes) keep a peer behind a silent partition unreachable
    # that long after the partition heals.
    connect_timeout_ms: int = 3000
    # Server: client requests (apply, barrier, membership, transfer) not yet
    # completed; past it a request fails at once with BusyError.
    pending_requests_max: int = 65536
    # Reads (read_index.py).  In LEASE mode a lease lasts election_timeout_ms
    # minus this margin from the sending of the round that confirmed it; the
    # margin must cover how much more time a follower's clock may count than
    # the leader's over one election timeout (clock drift; 20% by default).
    read_mode: ReadMode = ReadMode.READ_INDEX
    read_lease_margin_ms: int = 200
    # Follower reads: a follower serves a read by asking its leader for a read
    # index, if the leader announced that it can (a raftpy leader with this
    # set: it then sends one ReadHeartbeat of round 0 to each raftpy
    # follower per leadership); else the read fails with NotLeaderError.
    follower_reads: bool = False

    def __post_init__(self) -> None:
        # raft_start asserts the same (spec §1.6).
        if not 0 < self.heartbeat_timeout_ms < self.election_timeout_ms:
            raise ValueError("need 0 < heartbeat_timeout_ms < election_timeout_ms")
        if self.append_entries_max < 1 or self.append_bytes_max < 1:
            raise ValueError("append limits must be positive")
        for name in ("message_header_max_bytes", "message_payload_max_bytes",
                     "send_queue_max_bytes", "send_queue_max_messages",
                     "connect_retry_delay_ms", "connect_timeout_ms",
                     "pending_requests_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if not isinstance(self.read_mode, ReadMode):
            raise ValueError(f"read_mode must be a ReadMode, not {self.read_mode!r}")
        if self.read_lease_margin_ms < 0 or (
                self.read_mode == ReadMode.LEASE
                and self.read_lease_margin_ms >= self.election_timeout_ms):
            raise ValueError("need 0 <= read_lease_margin_ms, and < election_timeout_ms "
                             "for leases")
