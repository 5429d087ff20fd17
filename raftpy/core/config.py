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
    # The shell's limits (the core does not read them; house style 7).
    # Wire: a received header or payload longer than these closes that
    # connection with a logged reason before anything of its size is
    # allocated (libraft has no limit, spec §4.6).  The header of an
    # AppendEntries of n entries is 48 + 16 n bytes.
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
