"""StateMachine: what the user gives a Server (libraft's ``struct raft_fsm``, spec §1.9).

May import: the standard library only.  The Server calls these methods on the
loop thread, in log order; the rules they may rely on and must keep:

- ``apply(command)`` gets each committed COMMAND entry's payload (bytes), once,
  in index order; what it returns is the result of the ``Server.apply`` that
  proposed it (on the leader that proposed it; elsewhere it is dropped).  If
  it raises, that request fails with the exception (logged) and the entry
  still counts as applied: the next entry is applied next.  libraft instead
  stops the apply loop and retries the same entry at the next pass (spec
  §1.9), which for a deterministic error retries forever; raftpy's core hands
  entries over once, so a state machine that must not skip an entry must not
  raise for it.
- ``snapshot()`` is called right after the apply pass that reached the
  snapshot's index: the state machine's state then is the snapshot's.  It
  returns the bytes, or an awaitable of them (e.g. a coroutine: ``async def
  snapshot``), which the Server awaits while the loop keeps serving and
  applying (libraft's non-blocking fsm v3).  A coroutine is run at once up
  to its first ``await`` (as Python 3.12's eager tasks do; that first step
  runs outside any task, so ``asyncio.current_task()`` is None there): copy
  (or freeze) what the snapshot needs before that first await; later entries
  may be applied while it is suspended.  Closing the server cancels it.
  Returning ``None`` (or raising) means "not now": no snapshot is written
  and the server asks again after a later apply pass (libraft's RAFT_BUSY).
- ``restore(data)`` replaces the whole state with a snapshot's (at start, from
  the data directory's latest snapshot, and when the leader sends one); it may
  also return an awaitable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable

__all__ = ["StateMachine"]


class StateMachine(ABC):
    """Base class of the user's replicated state machine (see the module docstring)."""

    @abstractmethod
    def apply(self, command: bytes) -> object:
        """Apply one committed command; return its result."""

    @abstractmethod
    def snapshot(self) -> bytes | Awaitable[bytes | None] | None:
        """The whole state as bytes, or an awaitable of them, or None for 'not now'."""

    @abstractmethod
    def restore(self, snapshot: bytes) -> None | Awaitable[None]:
        """Replace the whole state with the snapshot's."""
