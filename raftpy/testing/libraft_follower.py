"""A Raft that answers as a libraft 0.15 follower does, for mixed-cluster checks.

May import: the standard library, ``raftpy.core``.  raftpy's followers deviate
from libraft in two answers that a leader must not rely on, since a libraft
follower in a mixed cluster still gives libraft's (spec §2.12):

* a success reports ``last_stored``, entries beyond the range the leader's
  message checked included (raftpy caps it at the verified index);
* a refusal of a stale-term AppendEntries says ``rejected = prev_log_index``,
  which is 0, a success, for one sent from index 1 (raftpy says 1);
* and it announces no features (raftpy's FEATURE_CHECKED_ACKS says the two
  answers above are raftpy's).

``LibraftFollowerRaft`` gives exactly those two answers and is otherwise
raftpy, so the simulated cluster and the transcripts can put such followers
beside raftpy leaders and show what the leader's own guards catch.
"""

from __future__ import annotations

import dataclasses

from raftpy.core.messages import AppendEntriesResult, Message
from raftpy.core.raft import Raft

__all__ = ["LibraftFollowerRaft"]


class LibraftFollowerRaft(Raft):
    """raftpy with libraft's success and stale-refusal reports."""

    __slots__ = ()

    def _send(self, to_id: int, to_address: str, message: Message) -> None:
        if isinstance(message, AppendEntriesResult):
            message = dataclasses.replace(message, features=0)  # it announces nothing
        super()._send(to_id, to_address, message)

    def _acknowledged(self) -> int:
        return self.last_stored

    def accept_leader(self, from_id: int, from_address: str, term: int, rejected: int,
                      what: str) -> bool:
        if term < self.current_term:
            self._trace(f"reject {what}: stale term (libraft reply)")
            self._send(from_id, from_address, AppendEntriesResult(
                self.current_term, rejected, self.log.last_index))
            return False
        return super().accept_leader(from_id, from_address, term, rejected, what)
