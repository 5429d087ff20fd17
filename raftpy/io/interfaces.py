"""The I/O interfaces the Server drives: Storage (durable state) and Transport
(messages to and from peers).

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
- every failure is a ``raftpy.errors.RaftError``;
- optionally, ``append_nowait(first_index, entries, done)``: append's contract
  without a task: it raises what append would raise at once, else calls
  ``done(None)`` once the entries are durable or ``done(error)``, on the
  loop and never from inside the call, in call order.  The Server uses it
  when present (DiskStore has it: the write is submitted before it returns),
  and falls back to ``append`` in a task while other storage calls it
  spawned have not yet reached the store.

Transport mirrors libraft's ``raft_uv_transport`` (spec §1.11, §4.1); the
stock implementation is ``raftpy.io.tcp.TcpTransport`` (libraft's wire
format), and ``raftpy.io.memory`` has one in memory for tests:

- ``start(server_id, address, receive, send_failed)`` starts listening (on
  the address, or the bind address the implementation was given) and
  returns once it does; an address in use is a RaftError saying so.  From
  then on every message received calls ``receive(from_id, from_address,
  message)`` on the loop thread, in the order the peer sent them;
- ``send(to_id, to_address, message)`` never blocks and never raises for a
  peer's sake: it queues the message (connecting if need be) and returns.
  A message that cannot be handed to the peer (no connection, the queue over
  its limits, the connection lost with it unwritten) is reported, at once or
  later, with ``send_failed(to_id, message)``, which the Server turns into
  the core's SendFailed event;
- optionally, ``send_many(messages)``: ``send`` for each (to_id, to_address,
  message) of the list, in order (TcpTransport has it: one write per peer);
  the Server hands each Update's messages over so when it is there;
- a malformed byte stream from a peer closes that connection only (logged
  with the reason) and never raises into the caller;
- ``close()`` stops listening, closes every connection and drops what is
  queued (no send_failed calls after it returns).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from raftpy.core.configuration import Configuration
from raftpy.core.messages import Message
from raftpy.core.types import Entry

__all__ = ["Storage", "LoadedState", "SnapshotLike", "Transport", "ReceiveCallback",
           "SendFailedCallback"]

ReceiveCallback = Callable[[int, str, Message], None]      # (from_id, from_address, message)
SendFailedCallback = Callable[[int, Message], None]        # (to_id, message)


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


@runtime_checkable
class Transport(Protocol):
    """Messages between this server and its peers (contract: module docstring)."""

    async def start(self, server_id: int, address: str, receive: ReceiveCallback,
                    send_failed: SendFailedCallback) -> None: ...
    def send(self, to_id: int, to_address: str, message: Message) -> None: ...
    async def close(self) -> None: ...
