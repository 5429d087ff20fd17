"""The I/O interfaces the Server drives: what a storage backend must provide.

May import: the standard library, raftpy.core (values).  These are
``typing.Protocol`` classes: any object with these methods works; the stock
implementation is ``raftpy.io.disk.DiskStore``.  The contract mirrors
libraft's ``raft_io`` (spec §1.10):

- ``open`` then ``load`` exactly once, before any append or truncate;
- ``set_term``/``set_vote`` return once durable (the Server sends nothing that
  depends on them before);
- ``append(first_index, entries)`` calls complete in the order they were made
  and only once the entries are durable; first_index must be where the log
  ends after every earlier call (a mismatch is refused with a RaftError
  naming both, never written elsewhere); ``truncate`` is ordered after earlier appends and
  before later ones;
- ``truncate(index)`` deletes the entries from index on, for
  0 < index <= the index the next append gets; at that index it deletes
  nothing and succeeds (after a failed write the log ends where the write
  began, and the core truncates there: PersistFailed, then
  Update.truncate_from), and returns once no failed write's data can come
  back after a crash;
- ``snapshot_put(trailing, snapshot)`` persists a snapshot taken of this log
  and compacts it, keeping at least ``trailing`` entries before the snapshot
  (0: none); appends go on meanwhile.  ``snapshot_install(snapshot)`` installs
  one received from the leader: the log is replaced and the next append is at
  snapshot.index + 1.  At most one of the two at a time;
- every failure is a ``raftpy.errors.RaftError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from raftpy.core.configuration import Configuration
from raftpy.core.types import Entry

__all__ = ["Storage", "LoadedState", "SnapshotLike"]


class SnapshotLike(Protocol):
    """What a snapshot carries (raftpy.io.disk.Snapshot is one)."""

    @property
    def term(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def configuration(self) -> Configuration: ...
    @property
    def configuration_index(self) -> int: ...
    @property
    def data(self) -> bytes: ...


class LoadedState(Protocol):
    """What ``load`` returns: entries[i] has index start_index + i."""

    @property
    def term(self) -> int: ...
    @property
    def voted_for(self) -> int: ...
    @property
    def snapshot(self) -> SnapshotLike | None: ...
    @property
    def start_index(self) -> int: ...
    @property
    def entries(self) -> list[Entry]: ...


@runtime_checkable
class Storage(Protocol):
    """Durable term, vote, log and snapshots of one server."""

    async def open(self) -> None: ...
    async def load(self) -> LoadedState: ...
    async def bootstrap(self, conf: Configuration) -> None: ...
    async def recover(self, conf: Configuration) -> int: ...
    async def set_term(self, term: int) -> None: ...
    async def set_vote(self, server_id: int) -> None: ...
    async def append(self, first_index: int, entries: Sequence[Entry]) -> None: ...
    async def truncate(self, index: int) -> None: ...
    async def snapshot_put(self, trailing: int, snapshot: SnapshotLike) -> None: ...
    async def snapshot_install(self, snapshot: SnapshotLike) -> None: ...
    async def snapshot_get(self) -> SnapshotLike | None: ...
    async def close(self) -> None: ...
