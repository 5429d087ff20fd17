"""Membership changes: add, assign (with promotion catch-up), remove; bootstrap and recover.

May import: the standard library, ``raftpy.errors`` and ``raftpy.core``
modules below ``raft.py``.  Rules (spec §1.6, §1.7, §2.10; dissertation §4.1,
§4.2.1, §4.2.2):

* One server changes at a time: one CHANGE entry holding the whole new
  configuration.  A leader refuses a change (CantChangeError) while one is
  uncommitted or a promotion is catching up, and, deviating from libraft on
  purpose, until it has committed an entry of its own term (the no-op
  barrier): without that, single-server changes in consecutive terms can
  lose committed entries (Ongaro, raft-dev 2015, the dissertation's errata).
* The new configuration is in effect on the leader as soon as the entry is
  appended; the change request completes when it is applied.  A leader that
  is no longer a voter in it steps down then (``apply_committed``).
* Promotion to VOTER of a lagging server first runs catch-up rounds: a
  round ends when the promotee matches the index that was last when it
  began; it is caught up when a round took less than an election timeout
  (or it matches the last index); the leader aborts with NoConnectionError
  after ``max_catch_up_rounds`` slow rounds or one round longer than
  ``max_catch_up_round_duration_ms``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raftpy.core.configuration import Configuration, Role
from raftpy.core.progress import Progress
from raftpy.core.state import RaftState
from raftpy.core.types import Entry, EntryType
from raftpy.errors import (
    BadRoleError,
    CantBootstrapError,
    CantChangeError,
    InvalidError,
    NoConnectionError,
    NotFoundError,
    RaftError,
)

__all__ = ["MembershipMixin", "bootstrap", "recover_entry"]

_ROLE_NAMES = {Role.VOTER: "voter", Role.STANDBY: "stand-by", Role.SPARE: "spare"}


def bootstrap(term: int, configuration: Configuration) -> list[Entry]:
    """The log a new server is bootstrapped with (raft_bootstrap, spec §3.11).

    Only on empty state: ``term`` is the persisted term, and bootstrapping a
    server that has one fails with CantBootstrapError.  The shell persists
    term 1 and this one CHANGE entry at index 1."""
    if term != 0:
        raise CantBootstrapError(f"metadata contains term {term}")
    return [Entry(1, EntryType.CHANGE, configuration.encode())]


def recover_entry(configuration: Configuration) -> Entry:
    """The entry raft_recover force-appends after the last one: the new configuration,
    with term 1 whatever the current term (quirk 4).  Loaded at the next start it is
    the (uncommitted) configuration in effect; a sole voter then commits it.

    The procedure (libraft raft.h; dissertation §4.4 gives no safe alternative):
    when a majority is lost for good, stop every survivor, run recover on ONE
    of them only (the one with the longest log: it holds every committed
    entry), then replace the data directory of every other survivor with a
    copy of that one's before starting any.  Running recover on each survivor
    instead writes a term-1 entry at the same index on servers whose logs
    differ before it: log matching (equal index and term, so equal logs)
    then accepts the difference and state machines diverge.  Recover also
    gives up the guarantee for entries that were committed by the lost
    majority and not stored by the chosen survivor."""
    return Entry(1, EntryType.CHANGE, configuration.encode())


def _remove(conf: Configuration, server_id: int) -> Configuration:
    """conf without server_id, refusing to leave no server: an empty configuration
    has no encoding (libraft asserts n > 0 and aborts), and raising that in the
    step would stop the server."""
    new = conf.remove(server_id)
    if not new.servers:
        raise InvalidError(f"cannot remove server {server_id}: it is the last one")
    return new


class MembershipMixin(RaftState):
    __slots__ = ()

    def _change_refusal(self) -> RaftError | None:
        if self.configuration_uncommitted_index or self.promotee_id:
            return CantChangeError()
        if (len(self._voters) > 1
                and self.log.term_of(self.commit_index) != self.current_term):
            return CantChangeError("no entry of the current term is committed yet")
        return None

    def change_add(self, server_id: int, address: str, req: Any) -> None:
        self._change(req, lambda conf: conf.add(server_id, address, Role.SPARE))

    def change_remove(self, server_id: int, req: Any) -> None:
        self._change(req, lambda conf: _remove(conf, server_id))

    def _change(self, req: Any, edit: Callable[[Configuration], Configuration]) -> None:
        """Append edit(current configuration), or fail req with why it can't be."""
        error = self._change_refusal()
        if error is None:
            try:
                conf = edit(self.configuration)
            except RaftError as exc:
                error = exc
            else:
                self.append_configuration(conf, req)
                return
        self._out.failed.append((req, error))

    def change_assign(self, server_id: int, role: Role, req: Any) -> None:
        error = self._change_refusal()
        server = self.configuration.get(server_id)
        if error is None and server is None:
            error = NotFoundError(f"no server has ID {server_id}")
        elif error is None and server is not None and server.role == role:
            error = BadRoleError(f"server is already {_ROLE_NAMES[role]}")
        if error is not None:
            self._out.failed.append((req, error))
            return
        if role != Role.VOTER or self.progress[server_id].match_index == self.log.last_index:
            self.append_configuration(self.configuration.assign(server_id, role), req)
            return
        self._trace(f"promote {server_id}: catch-up round 1 to {self.log.last_index}")
        self.promotee_id = server_id
        self._promotion_req = req
        self._new_round(1)
        self._build_progress()  # type: ignore[attr-defined]  # a spare promotee is replicated to

    def append_configuration(self, conf: Configuration, req: Any) -> None:
        """Append one CHANGE entry; it is in effect at once (dissertation §4.1)."""
        index = self.append_local([Entry(  # type: ignore[attr-defined]
            self.current_term, EntryType.CHANGE, conf.encode())])
        self.configuration_uncommitted_index = index
        self._set_configuration(conf)
        self._build_progress()  # type: ignore[attr-defined]
        self._trace(f"configuration at {index}: " + " ".join(
            f"{s.id}/{s.role.name.lower()}" for s in conf.servers))
        self._out.accepted.append((req, index))
        self.pending.append((index, req))

    # -- promotion -----------------------------------------------------------------

    def _new_round(self, number: int) -> None:
        self.round_number = number
        self.round_index = self.log.last_index
        self.round_start = self.now

    def promotion_progress(self, p: Progress) -> None:
        """A success from the promotee (spec §2.10)."""
        if p.match_index < self.round_index:
            return
        if (p.match_index == self.log.last_index
                or self.now - self.round_start < self.config.election_timeout_ms):
            server_id, req = self.promotee_id, self._promotion_req
            self._trace(f"promote {server_id}: caught up in round {self.round_number}")
            self.promotee_id = 0
            self._promotion_req = None
            self.append_configuration(self.configuration.assign(server_id, Role.VOTER), req)
            return
        self._new_round(self.round_number + 1)
        self._trace(f"promote {self.promotee_id}: catch-up round {self.round_number} "
                    f"to {self.round_index}")

    def promotion_watchdog(self) -> None:
        """Leader tick: abort a promotion whose rounds take too long."""
        duration = self.now - self.round_start
        config = self.config
        if ((self.round_number >= config.max_catch_up_rounds
             and duration > config.election_timeout_ms)
                or duration > config.max_catch_up_round_duration_ms):
            self._trace(f"promote {self.promotee_id}: aborted in round {self.round_number}")
            self.abort_promotion(NoConnectionError())
            self._build_progress()  # type: ignore[attr-defined]

    def abort_promotion(self, error: RaftError) -> None:
        if self.promotee_id:
            self._out.failed.append((self._promotion_req, error))
            self.promotee_id = 0
            self._promotion_req = None
