"""Update: everything the shell must do after a batch of events, in this order.

May import: the standard library and ``raftpy.core`` value modules.  The core
builds one Update per ``step``/``step_all`` call and hands it over; from then
on it belongs to the shell.  The order of the fields is the order of duty:

1. ``hard_state`` (term, voted_for): persist before sending any message.
   If that write fails, report ``HardStateFailed`` before any other event
   and skip the writes and messages of this Update (items 2, 3 and 6); the
   server is then UNAVAILABLE (libraft: a failed set_term/set_vote is fatal).
2. ``truncate_from`` then ``persist``: delete log entries from that index,
   then append ``persist`` starting at ``persist_index``; report completion
   with ``Persisted(index, term)`` of the last entry written, or failure
   with ``PersistFailed(first index of the write, error)``.
3. ``messages``: send, before the write of item 2 starts or while it is in
   flight: no message of an Update depends on that Update's own write (a
   follower acknowledges entries only in the Update after their
   ``Persisted``), so the Server sends first and the leader's AppendEntries
   do not wait for its io_submit.
   A message that could not be handed to its peer (connection down or
   refused) is reported with ``SendFailed(to_id, message)``, at once or
   whenever the transport learns it; nothing awaits delivery.
4. ``apply``: the committed entries from ``apply_index``, to apply in order
   (BARRIER and CHANGE entries are not given to the state machine).  The
   core counts them as applied once handed over (``last_applied``), so the
   shell applies every Update's entries before it steps the core again.
5. ``accepted`` (req, index of its first entry); ``completed`` (req, value):
   a Propose completes when its *last* entry is applied (value: that index;
   libraft fires at the first, quirk 5), a Barrier when applied (its index),
   a Transfer when it ends (value: the leader id then, 0 if unknown);
   ``failed`` (req, error): NotLeaderError, LeadershipLostError, the write's
   error, ...  ``reads``: the ``req`` of each Read that may run now, in the
   order the reads arrived: run it on the state machine after ``apply``
   (its state then includes every write acknowledged before the read
   arrived, read_index.py).
6. ``install_snapshot`` (a follower): persist this snapshot in place of the
   whole log (after the writes above; later writes wait for it), restore the
   state machine from it, report ``SnapshotInstalled``; report the completion
   (``Persisted``/``PersistFailed``) of every write issued before the install
   first, before ``SnapshotInstalled``: the core ignores them while
   installing, but after the install a late ``Persisted`` of an old write
   could name an index and term that a new, not yet durable entry has too.  ``take_snapshot``:
   snapshot the state machine now, after applying ``apply`` (its state is
   then the one at ``take_snapshot.index``), persist it with this metadata
   in the background, keep serving, report ``SnapshotTaken``; the shell may
   then delete log entries up to ``index - Config.snapshot_trailing``.
7. ``state``/``leader_id`` if ``state_changed``; ``deadline_ms``: send a Tick then.
"""

from __future__ import annotations

from typing import Any

from raftpy.core.messages import Message
from raftpy.core.snapshot_types import Snapshot
from raftpy.core.types import Entry, State

__all__ = ["Update"]


class Update:
    """Output of one step; a plain record, filled by the core and read by the shell."""

    __slots__ = ("hard_state", "truncate_from", "persist_index", "persist",
                 "messages", "apply_index", "apply", "accepted", "completed",
                 "failed", "reads", "install_snapshot", "take_snapshot", "state", "leader_id",
                 "state_changed", "commit_index", "deadline_ms")

    def __init__(self) -> None:
        self.hard_state: tuple[int, int] | None = None
        self.truncate_from = 0            # 0: nothing to truncate
        self.persist_index = 0            # index of persist[0]
        self.persist: list[Entry] = []
        self.messages: list[tuple[int, str, Message]] = []
        self.apply_index = 0              # index of apply[0]
        self.apply: list[Entry] = []
        self.accepted: list[tuple[Any, int]] = []
        self.completed: list[tuple[Any, Any]] = []
        self.failed: list[tuple[Any, Exception]] = []
        self.reads: list[Any] = []
        self.install_snapshot: Snapshot | None = None
        self.take_snapshot: Snapshot | None = None   # metadata only: data is b""
        self.state = State.UNAVAILABLE
        self.leader_id = 0
        self.state_changed = False
        self.commit_index = 0
        self.deadline_ms: int | None = None

    def __repr__(self) -> str:
        return (f"Update(hard_state={self.hard_state}, truncate_from={self.truncate_from}, "
                f"persist={self.persist_index}+{len(self.persist)}, "
                f"messages={len(self.messages)}, apply={self.apply_index}+{len(self.apply)}, "
                f"state={self.state.name}, deadline={self.deadline_ms})")
