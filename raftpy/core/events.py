"""Inputs to ``Raft.step``: every event carries the time it happened (``time_ms``).

May import: the standard library and ``raftpy.core`` value modules.  Events
are values.  ``req`` on client events is an opaque token of the shell's; the
core hands it back in ``Update.accepted`` / ``completed`` / ``failed`` so the
shell can resolve its futures without the core knowing about them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raftpy.core.configuration import Role
from raftpy.core.messages import Message

__all__ = ["Start", "Tick", "Receive", "Persisted", "PersistFailed", "HardStateFailed",
           "SendFailed", "Propose", "Barrier", "Transfer", "Close", "TakeSnapshot",
           "SnapshotTaken", "SnapshotInstalled", "Add", "Assign", "Remove", "Read", "Event"]


@dataclass(frozen=True, slots=True)
class Start:
    """Begin as follower from the state given to ``Raft()`` (spec §2.1)."""

    time_ms: int


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; the shell sends one at (or after) ``Update.deadline_ms``."""

    time_ms: int


@dataclass(frozen=True, slots=True)
class Receive:
    """A message arrived from ``from_id`` (address as given in its handshake)."""

    time_ms: int
    from_id: int
    from_address: str
    message: Message


@dataclass(frozen=True, slots=True)
class Persisted:
    """The shell's log writes up to and including ``index`` are durable.

    ``term`` is the term of the entry at ``index`` as written; if the core has
    since replaced that entry (a conflict truncated it) the event is stale and
    only a later write's completion advances ``last_stored``.
    """

    time_ms: int
    index: int
    term: int


@dataclass(frozen=True, slots=True)
class PersistFailed:
    """The shell's log write that starts at ``index`` failed (e.g. disk full).

    Nothing from ``index`` on may be considered durable.  A leader fails the
    requests for those entries with ``error`` and steps down; a follower
    rejects with ``rejected = index`` (libraft's prev_log_index + 1, quirk 13).
    """

    time_ms: int
    index: int
    error: Exception


@dataclass(frozen=True, slots=True)
class HardStateFailed:
    """Persisting ``Update.hard_state`` (term and vote) failed (libraft: a failed
    set_term/set_vote, which is fatal, spec §2.16).

    The shell reports it before it steps the core with anything else, and
    carries out nothing of that Update that writes or sends: no log or
    snapshot write, no message (a vote granted, a RequestVote of the new
    term, an acknowledgement in it: each may depend on the write).  It still
    applies the Update's committed entries and resolves its requests.  The
    server becomes UNAVAILABLE; a restart loads what is on disk.
    """

    time_ms: int
    error: Exception


@dataclass(frozen=True, slots=True)
class SendFailed:
    """A message of ``Update.messages`` could not be handed to ``to_id``: the
    connection is down or was refused (libraft's send callback with an error).

    The shell reports each message it knows was not delivered; a message
    written to a connection and lost later cannot be known and is not
    reported.  A leader moves that follower back to PROBE (next_index =
    match_index + 1; an InstallSnapshot is given up and sent again once the
    follower answers), and picks another target for a transfer to "any voter"
    until the follower is heard from again.  Other failures change nothing
    (libraft ignores them too): a lost vote or reply is a lost message.
    """

    time_ms: int
    to_id: int
    message: Message


@dataclass(frozen=True, slots=True)
class Propose:
    """Client request (raft_apply): append COMMAND entries with these payloads."""

    time_ms: int
    payloads: Sequence[bytes | memoryview]
    req: Any = None


@dataclass(frozen=True, slots=True)
class Barrier:
    """Client barrier (raft_barrier, spec §2.15): a BARRIER entry, completed when applied."""

    time_ms: int
    req: Any = None


@dataclass(frozen=True, slots=True)
class Read:
    """A linearizable read (read_index.py, dissertation §6.4): no log entry.

    The leader comes back with ``req`` in ``Update.reads`` once the read may
    run on the state machine (after that Update's ``apply``), or in
    ``Update.failed`` (NotLeaderError naming the leader if known) when it is
    not the leader, or stops being it, before then.
    """

    time_ms: int
    req: Any = None


@dataclass(frozen=True, slots=True)
class Transfer:
    """Leadership transfer (raft_transfer, spec §2.9); target 0 picks a voter."""

    time_ms: int
    target_id: int = 0
    req: Any = None


@dataclass(frozen=True, slots=True)
class Close:
    """Shut down: the server becomes UNAVAILABLE and pending requests fail."""

    time_ms: int


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Ask for a snapshot now, whatever ``snapshot_threshold`` (raftpy's addition:
    libraft snapshots only at the threshold).  For a shell or operator that
    wants one at a moment of its choosing, e.g. before a planned restart.

    The core answers as for a threshold snapshot: ``Update.take_snapshot`` at
    ``last_applied``, then ``SnapshotTaken``.  Nothing happens (a trace line
    says why) while a snapshot is being taken or installed, when the server is
    UNAVAILABLE, or when nothing was applied since the last snapshot.
    """

    time_ms: int


@dataclass(frozen=True, slots=True)
class SnapshotTaken:
    """The shell took the snapshot asked for in ``Update.take_snapshot`` (spec §2.11).

    ``data`` is the state machine's snapshot at ``index``, now durable with
    the metadata of the request; None if the state machine was busy or the
    write failed (nothing changes, a later apply pass asks again).
    """

    time_ms: int
    index: int
    data: bytes | memoryview | None


@dataclass(frozen=True, slots=True)
class SnapshotInstalled:
    """The snapshot of ``Update.install_snapshot`` is durable (it replaced the whole
    log) and the state machine restored from it; ``error`` if that failed."""

    time_ms: int
    index: int
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Add:
    """raft_add: a configuration change adding a SPARE server (spec §1.7)."""

    time_ms: int
    server_id: int
    address: str
    req: Any = None


@dataclass(frozen=True, slots=True)
class Assign:
    """raft_assign: change a server's role; promotion to VOTER waits for catch-up (§2.10)."""

    time_ms: int
    server_id: int
    role: Role | int
    req: Any = None


@dataclass(frozen=True, slots=True)
class Remove:
    """raft_remove: a configuration change dropping a server (spec §1.7)."""

    time_ms: int
    server_id: int
    req: Any = None


Event = (Start | Tick | Receive | Persisted | PersistFailed | HardStateFailed | SendFailed
         | Propose | Barrier | Transfer | Close | TakeSnapshot | SnapshotTaken
         | SnapshotInstalled | Add | Assign | Remove | Read)
