"""Server: the asyncio shell around the sans-I/O core (DESIGN.md, "The shell in detail").

May import: anything in raftpy (the outermost layer; only raftpy/__init__
imports it) and the standard library.

The Server owns one core (``raftpy.core.raft.Raft``), one Storage, one
Transport and the user's StateMachine, all on one event loop.  Rules kept:

- Every input (a message received, a write completed or failed, a client
  request, the timer, a message that could not be sent, a snapshot taken or
  installed) is appended to one list of pending events; the first one of a
  loop iteration schedules a drain with ``loop.call_soon``.  The drain calls
  ``raft.step_all(events)`` once and carries out that one Update in
  update.py's order.  Time is ``loop.time()`` in ms, never going back.
- Term and vote first: while ``set_term``/``set_vote`` are in flight nothing
  else of that Update is done and no later drain runs (events keep queueing),
  so no message that depends on them leaves before they are durable (libraft
  writes them synchronously).  If the write fails, the Update's entries are
  still applied and its requests resolved, then ``HardStateFailed`` is the
  next thing the core hears; nothing of that Update is written or sent.
- Then ``truncate`` and ONE ``Storage.append`` per Update, issued in order
  (each in its own task, created in call order, so the store sees the calls
  in that order while earlier ones are in flight); completions come back as
  ``Persisted``/``PersistFailed`` events.  A failed truncate is reported as
  ``PersistFailed`` at its index (nothing from there on is durable as the
  core believes it).
- Then the messages (``Transport.send`` queues; nothing awaits a peer), the
  apply pass (every entry of the Update before the core is stepped again),
  the requests' futures, the reads the core released (``Server.read``'s
  functions run on the state machine right after that apply pass), the
  snapshot to install or take, and one ``loop.call_at`` handle following
  ``deadline_ms``.
- Nothing here decides anything Raft decides.  Requests the core refuses come
  back in ``Update.failed`` (NotLeaderError naming the leader, ...); the shell
  refuses only what is its own business: a closed server (ShutdownError),
  more than ``Config.pending_requests_max`` requests pending (BusyError),
  bootstrap/recover of a started server (BusyError), commands whose length
  libraft's formats cannot carry (InvalidError) or that are longer than the
  payload a peer takes, ``Config.message_payload_max_bytes`` (TooBigError).
- Close: requests still pending fail with ShutdownError (libraft reports
  RAFT_LEADERSHIPLOST for a closing leader's requests, spec §1.6; raftpy names
  the cause), the core hears ``Close``, the transport closes, the writes in
  flight finish, the storage closes.  Any request after that: ShutdownError.
- ``RAFTPY_TRACE`` set in the environment prints the core's trace lines (and
  the shell's few) on stderr, ``<time ms> <server id>: <text>``.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import inspect
import logging
import os
import random
import sys
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from raftpy.core.config import Config
from raftpy.core.configuration import Configuration, Role
from raftpy.core.events import (
    Add,
    Assign,
    Barrier,
    Close,
    Event,
    HardStateFailed,
    Persisted,
    PersistFailed,
    Propose,
    Read,
    Receive,
    Remove,
    SendFailed,
    SnapshotInstalled,
    SnapshotTaken,
    Start,
    TakeSnapshot,
    Tick,
    Transfer,
)
from raftpy.core.messages import Message
from raftpy.core.raft import Raft
from raftpy.core.snapshot_types import Snapshot
from raftpy.core.trace import Tracer, tracer_from_env
from raftpy.core.types import Entry, EntryType, State
from raftpy.core.update import Update
from raftpy.errors import (
    BusyError,
    InvalidError,
    NotLeaderError,
    RaftError,
    ShutdownError,
    TooBigError,
)
from raftpy.io.interfaces import SnapshotLike, Storage, Transport
from raftpy.io.tls import Tls
from raftpy.metrics import Counters, FollowerMetrics, ServerMetrics, message_type_name
from raftpy.state_machine import StateMachine

__all__ = ["Server"]

log = logging.getLogger(__name__)

_ONE, _MANY, _OTHER = 0, 1, 2          # kinds of request
_T = TypeVar("_T")
_BYTES_LIKE = (bytes, bytearray, memoryview)


class _Raised:
    """A state machine's apply raised: the request for that entry fails with it."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Request:
    """A client request in flight: the core's opaque ``req`` token, or for apply and
    apply_many a member of a _Group (which is then the token)."""

    __slots__ = ("future", "kind", "offset", "n", "return_exceptions", "read")

    def __init__(self, future: asyncio.Future[Any], kind: int,
                 return_exceptions: bool = False) -> None:
        self.future = future
        self.kind = kind
        self.offset = 0                # its first command's place in its group
        self.n = 0                     # its commands
        self.return_exceptions = return_exceptions
        self.read: Callable[[StateMachine], Any] | None = None   # Server.read's fn


class _Group:
    """The proposals of one loop iteration, handed to the core as ONE Propose (its
    ``req``): one append_local, one accepted/completed pair, however many
    apply calls there were.  ``payloads`` is the Propose's list, extended while
    that Propose is the last pending event."""

    __slots__ = ("members", "payloads", "event", "first")

    def __init__(self, payloads: list[bytes]) -> None:
        self.members: list[_Request] = []
        self.payloads = payloads
        self.event: Propose | None = None
        self.first = 0                 # index of its first entry, once accepted


class Server:
    """One Raft server on the running event loop (see the module docstring).

    ``storage`` defaults to ``DiskStore(data_dir)``, ``transport`` to
    ``raftpy.io.tcp.TcpTransport(config, tls=tls)`` (``tls``: mutual TLS between
    raftpy servers, raftpy.io.tls.Tls); ``tracer`` to one that prints the
    trace lines if ``RAFTPY_TRACE`` is set.
    """

    def __init__(self, id: int, address: str, data_dir: str | os.PathLike[str],
                 state_machine: StateMachine, config: Config | None = None,
                 storage: Storage | None = None, transport: Transport | None = None, *,
                 tracer: Tracer | None = None, rng: random.Random | None = None,
                 tls: Tls | None = None) -> None:
        if isinstance(id, bool) or not isinstance(id, int) or not 0 < id < 1 << 64:
            # The wire and the disk carry ids as u64: an id outside them would
            # only fail later, inside a step, and stop the server.
            raise InvalidError(f"server id must be an int in 1..2**64-1, not {id!r}")
        self.id = id
        self.address = address
        self.data_dir = os.fspath(data_dir)
        self.config = config if config is not None else Config()
        self.state_machine = state_machine
        if storage is None:
            from raftpy.io.disk import DiskStore
            storage = DiskStore(self.data_dir)
        if transport is None:
            from raftpy.io.tcp import TcpTransport  # type: ignore[import-not-found, unused-ignore]
            transport = TcpTransport(self.config, tls=tls)
        elif tls is not None:
            raise InvalidError("tls= configures the default transport; give your own "
                               "transport its TLS instead")
        self.storage: Storage = storage
        self.transport: Transport = transport
        self._tracer = tracer if tracer is not None else _env_tracer()
        self._rng = rng if rng is not None else random.Random()
        self._raft: Raft | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock_ms = 0
        self._pending: list[Event] = []
        self._scheduled = False        # a drain is scheduled
        self._busy = False             # starting, or term/vote being written: no drain
        self._busy_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline_ms: int | None = None    # the core's next deadline
        self._timer_ms = 0             # when _timer fires (<= _deadline_ms while armed)
        self._requests: set[_Request] = set()
        self._proposals = 0            # proposals submitted and not resolved
        self._group: _Group | None = None     # the group the last pending event proposes
        self._results: dict[int, Any] = {}    # index -> apply result, while proposals wait
        self._writes: set[asyncio.Task[None]] = set()     # storage work in flight
        # The store's task-free append (DiskStore.append_nowait), if it has one.
        # It is used only while no spawned storage task waits for its first
        # step (_unstarted), so that the store still sees the calls in order.
        self._append_nowait: Callable[[int, Sequence[Entry], Callable[[Any], None]], None] \
            | None = getattr(storage, "append_nowait", None)
        # The transport's one-call send of an Update's messages, if it has one.
        self._send_many: Callable[[list[tuple[int, str, Message]]], None] | None = \
            getattr(transport, "send_many", None)
        self._unstarted = 0            # spawned storage tasks not yet at their first step
        self._appends_issued = 0       # append_nowait calls made
        self._appends_done = 0         # ... and completed (they complete in order)
        self._appends_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._starting: asyncio.Future[None] | None = None    # start() in progress
        self._closing: asyncio.Future[None] | None = None     # close() begun
        self._transport_started = False
        # take_snapshot callers: asked (their TakeSnapshot not yet stepped), and
        # waiting (stepped: answered by the Update, or when the snapshot is written)
        self._snapshot_asked: list[asyncio.Future[int]] = []
        self._snapshot_waiters: list[asyncio.Future[int]] = []
        self._snapshot_index = 0       # the snapshot being taken (0: none)
        self._machine_snapshot: asyncio.Future[Any] | None = None   # an async snapshot()
        self._durable = (0, 0)         # term and vote as last written
        self._storage_open = False
        self._closed = False
        self._error: RaftError | None = None    # an internal error stopped the server
        self._watchers: list[asyncio.Future[None]] = []
        self._counters = Counters()    # metrics(): bumped per batch, read by _metrics

    # ------------------------------------------------------------ lifecycle

    async def bootstrap(self, configuration: Configuration) -> None:
        """Write the first configuration of a new cluster (raft_bootstrap, spec §1.6)."""
        self._check_not_started("bootstrap")
        await self._open_storage()
        await self.storage.bootstrap(configuration)

    async def recover(self, configuration: Configuration) -> int:
        """Force a configuration (raft_recover; read DiskStore.recover first)."""
        self._check_not_started("recover")
        await self._open_storage()
        return await self.storage.recover(configuration)

    async def start(self) -> None:
        """Load the data directory, start listening, start the core (spec §2.1).

        A close() while this runs wins: start stops at its next step with
        ShutdownError, and close() waits for it (nothing is left listening)."""
        self._check_not_started("start")
        self._loop = asyncio.get_running_loop()
        self._busy = True
        self._starting = self._loop.create_future()
        try:
            await self._open_storage()
            self._check_open()
            loaded = await self.storage.load()
            self._check_open()
            snapshot = _core_snapshot(loaded.snapshot)
            if snapshot is not None:
                await _maybe_await(self.state_machine.restore(bytes(snapshot.data)))
                self._check_open()
            self._durable = (loaded.term, loaded.voted_for)
            self._raft = Raft(self.id, self.address, self.config, self._rng,
                              term=loaded.term, voted_for=loaded.voted_for,
                              entries=loaded.entries, start_index=loaded.start_index,
                              snapshot=snapshot, tracer=self._tracer)
            self._pending.append(Start(self._now_ms()))
            await self.transport.start(self.id, self.address, self._on_receive,
                                       self._on_send_failed)
            self._transport_started = True
            self._check_open()
        except BaseException as exc:
            self._raft = None
            self._pending.clear()
            error = exc if isinstance(exc, RaftError) else ShutdownError()
            for req in list(self._requests):       # admitted while it listened
                self._fail(req, copy.copy(error))
            raise
        finally:
            self._busy = False
            self._starting.set_result(None)
        self._schedule()

    def _check_open(self) -> None:
        if self._closed:
            raise ShutdownError("start: the server was closed meanwhile")

    async def close(self) -> None:
        """Fail pending requests with ShutdownError, stop the core, close the I/O.

        A second call waits for the first to finish."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await self._close()
        finally:
            self._closing.set_result(None)

    async def _close(self) -> None:
        self._closed = True
        for req in list(self._requests):
            self._fail(req, ShutdownError())
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._busy_task is not None:
            await asyncio.gather(self._busy_task, return_exceptions=True)
        raft = self._raft
        if raft is not None:
            self._pending.clear()
            try:
                self._finish(raft.step(Close(self._now_ms())), io=False)
            except Exception:          # a broken core (_broken): close the I/O anyway
                log.exception("server %d: stepping Close failed", self.id)
        if self._transport_started:
            await self.transport.close()
        self._set_timer(None)
        if self._machine_snapshot is not None:
            self._machine_snapshot.cancel()
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        await self._appends_finished(self._appends_issued)
        for waiter in self._snapshot_waiters + self._snapshot_asked:
            if not waiter.done():
                waiter.set_exception(ShutdownError())
        self._snapshot_waiters.clear()
        self._snapshot_asked.clear()
        self._notify()
        if self._storage_open:
            await self.storage.close()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_not_started(self, what: str) -> None:
        if self._closed:
            raise ShutdownError()
        if self._raft is not None or self._busy:
            raise BusyError(f"{what}: the server is already started")

    async def _open_storage(self) -> None:
        if not self._storage_open:
            await self.storage.open()
            self._storage_open = True

    # ---------------------------------------------------------- introspection

    @property
    def state(self) -> State:
        return self._raft.state if self._raft is not None else State.UNAVAILABLE

    @property
    def leader(self) -> tuple[int, str | None]:
        """(id, address) of the leader as raft_leader reports it; (0, None) if unknown."""
        raft = self._raft
        leader_id = raft.leader_id if raft is not None else 0
        if not leader_id or raft is None:
            return 0, None
        return leader_id, (self.address if leader_id == self.id
                           else raft.current_leader_address)

    @property
    def term(self) -> int:
        return self._raft.current_term if self._raft is not None else self._durable[0]

    @property
    def commit_index(self) -> int:
        return self._raft.commit_index if self._raft is not None else 0

    @property
    def last_applied(self) -> int:
        return self._raft.last_applied if self._raft is not None else 0

    @property
    def raft(self) -> Raft | None:
        """The core, for inspection only (tests, tools): never step it from outside."""
        return self._raft

    async def changed(self) -> None:
        """Return after the next batch of events has been carried out (or close)."""
        if self._closed:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append(future)
        await future

    # --------------------------------------------------------------- metrics

    def metrics(self) -> ServerMetrics:
        """A snapshot of what this server is doing (raftpy.metrics.ServerMetrics).

        Call it on the loop thread (BlockingServer.metrics() does that for you)."""
        raft = self._raft
        leader_id, leader_address = self.leader
        followers = _followers(raft) if raft is not None else {}
        return _build_metrics(self, raft, followers, leader_id, leader_address)

    def _count_election(self, term: int, voted_for: int) -> None:
        # A candidate bumps its term and votes for itself (dissertation §3.4);
        # pre-vote rounds change neither and are not counted.
        if voted_for == self.id and term != self._durable[0]:
            self._counters.elections += 1

    # ---------------------------------------------------------- client requests

    async def apply(self, command: bytes) -> Any:
        """Replicate one command; return what the state machine's apply returned."""
        command = _command_bytes(command, self.config)
        req = self._request(_ONE)
        self._propose(req, (command,))
        return await req.future

    async def apply_many(self, commands: Sequence[bytes], *,
                         return_exceptions: bool = False) -> list[Any]:
        """Replicate commands as one request (one Propose, consecutive entries); return
        their results in order.  If the state machine raised for some, the first
        such error is raised, or, with ``return_exceptions``, each is in the list
        in its place (as ``asyncio.gather`` does)."""
        if not commands:
            return []
        commands = [_command_bytes(command, self.config) for command in commands]
        req = self._request(_MANY, return_exceptions)
        self._propose(req, commands)
        result: list[Any] = await req.future
        return result

    async def read(self, fn: Callable[[StateMachine], _T]) -> _T:
        """A linearizable read: ``fn(state_machine)``'s result, run once this server,
        the leader, confirmed its leadership after the call and applied every
        entry committed before it (ReadIndex, dissertation §6.4, or a lease with
        ``Config.read_mode``; raftpy/core/read_index.py).  No log entry is
        written (unless too few voters speak raftpy's ReadHeartbeat: then one
        barrier per round of reads).  ``fn`` runs on the loop thread, between
        apply calls: it must not block, and what it returns is the answer.
        Raises NotLeaderError (naming the leader if known) on a follower, or if
        leadership ends first; whatever ``fn`` raises."""
        req = self._request(_OTHER)
        req.read = fn
        self._post(Read(self._now_ms(), req))
        result: _T = await req.future
        return result

    async def barrier(self) -> int:
        """Return once every entry before it is applied here (raft_barrier); its index."""
        return int(await self._submit(lambda req: Barrier(self._now_ms(), req)))

    async def add(self, server_id: int, address: str) -> None:
        """Add a server as SPARE (raft_add); return once the change is committed."""
        await self._submit(lambda req: Add(self._now_ms(), server_id, address, req))

    async def assign(self, server_id: int, role: Role | int) -> None:
        """Change a server's role (raft_assign); promotion waits for its catch-up."""
        await self._submit(lambda req: Assign(self._now_ms(), server_id, role, req))

    async def remove(self, server_id: int) -> None:
        """Remove a server from the configuration (raft_remove)."""
        await self._submit(lambda req: Remove(self._now_ms(), server_id, req))

    async def transfer(self, server_id: int = 0) -> int:
        """Hand leadership to server_id (0: a voter the core picks); return the leader
        id once the transfer ended (0 if none is known then)."""
        return int(await self._submit(lambda req: Transfer(self._now_ms(), server_id, req)))

    async def take_snapshot(self) -> int:
        """Snapshot now, whatever snapshot_threshold; return the index of the snapshot
        written (the one in progress if any), or 0 if none was taken (nothing new
        applied, installing one, unavailable)."""
        if self._closed:
            raise ShutdownError()
        if self._error is not None:
            raise self._error
        if self._raft is None:
            raise NotLeaderError("take_snapshot: the server is not started")
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._snapshot_asked.append(waiter)
        self._post(TakeSnapshot(self._now_ms()))
        return await waiter

    def _propose(self, req: _Request, commands: Sequence[bytes]) -> None:
        """Add req's commands to this iteration's group, or start one (a new Propose
        event) if another event was posted since."""
        group = self._group
        pending = self._pending
        if group is None or not pending or pending[-1] is not group.event:
            payloads: list[bytes] = []
            group = _Group(payloads)
            group.event = Propose(self._now_ms(), payloads, group)
            self._group = group
            self._post(group.event)
        req.offset = len(group.payloads)
        req.n = len(commands)
        group.payloads.extend(commands)
        group.members.append(req)
        self._proposals += 1

    async def _submit(self, make: Callable[[_Request], Event]) -> Any:
        req = self._request(_OTHER)
        self._post(make(req))
        return await req.future

    def _request(self, kind: int, return_exceptions: bool = False) -> _Request:
        if self._closed:
            raise ShutdownError()
        if self._error is not None:
            raise self._error
        if self._raft is None:
            raise NotLeaderError("the server is not started")
        if len(self._requests) >= self.config.pending_requests_max:
            raise BusyError(f"{len(self._requests)} requests pending "
                            f"(pending_requests_max={self.config.pending_requests_max})")
        assert self._loop is not None
        req = _Request(self._loop.create_future(), kind, return_exceptions)
        self._requests.add(req)
        return req

    # --------------------------------------------------------------- inputs

    def _now_ms(self) -> int:
        assert self._loop is not None
        now = int(self._loop.time() * 1000)
        if now > self._clock_ms:
            self._clock_ms = now
        return self._clock_ms

    def _post(self, event: Event) -> None:
        if self._closed or self._error is not None:
            return
        self._pending.append(event)
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and not self._busy and self._pending:
            self._scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._drain)

    def _on_receive(self, from_id: int, from_address: str, message: Message) -> None:
        self._counters.received[type(message)] += 1
        self._post(Receive(self._now_ms(), from_id, from_address, message))

    def _on_send_failed(self, to_id: int, message: Message) -> None:
        self._counters.messages_dropped += 1
        self._post(SendFailed(self._now_ms(), to_id, message))

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline_ms
        if deadline is not None and deadline > self._timer_ms and not self._closed:
            # The deadline moved later while this handle was armed: wait on.
            self._arm(deadline)
            return
        self._deadline_ms = None
        now = self._now_ms()
        if deadline is not None and deadline > now:
            # loop.time() may read a little early (uvloop's is in whole ms).
            self._clock_ms = now = deadline
        self._post(Tick(now))

    # ------------------------------------------------------- carrying out

    def _drain(self) -> None:
        self._scheduled = False
        raft = self._raft
        if self._busy or self._closed or self._error is not None or raft is None \
                or not self._pending:
            return
        events, self._pending = self._pending, []
        self._group = None
        if self._snapshot_asked:
            self._snapshot_waiters += self._snapshot_asked
            self._snapshot_asked = []
        try:
            self._carry_out(raft.step_all(events))
        except Exception as exc:
            self._broken(exc)

    def _broken(self, exc: Exception) -> None:
        """A bug in the core, the shell or a transport: say so loudly and fail what
        waits, instead of leaving requests hanging on a server that stopped."""
        log.exception("server %d: internal error; the server stops", self.id)
        error = RaftError(f"internal error: {exc!r}")
        for req in list(self._requests):
            self._fail(req, error)
        self._resolve_snapshot_waiters(0)
        self._notify()
        self._error = error             # nothing more is stepped; close() still cleans up

    def _carry_out(self, u: Update) -> None:
        if u.hard_state is not None:
            self._count_election(*u.hard_state)
            self._busy = True
            self._busy_task = asyncio.ensure_future(self._after_hard_state(u))
            return
        self._finish(u, io=True)

    async def _after_hard_state(self, u: Update) -> None:
        assert u.hard_state is not None
        try:
            await self._persist_hard_state(*u.hard_state)
            error: Exception | None = None
        except Exception as exc:       # any failure of the store: fatal (spec §2.16)
            error = exc
        self._busy = False
        self._busy_task = None
        raft = self._raft
        if self._closed or raft is None:
            return
        try:
            if error is None:
                self._finish(u, io=True)
            else:
                log.error("server %d: could not persist term/vote: %s", self.id, error)
                self._trace(f"term/vote write failed: {error}")
                self._finish(u, io=False)
                self._finish(raft.step(HardStateFailed(self._now_ms(), error)), io=False)
        except Exception as exc:
            self._broken(exc)
        self._schedule()

    async def _persist_hard_state(self, term: int, voted_for: int) -> None:
        durable_term, durable_vote = self._durable
        if term != durable_term:
            await self.storage.set_term(term)        # also resets the vote
            self._durable = (term, 0)
            durable_vote = 0
        if voted_for != durable_vote:
            await self.storage.set_vote(voted_for)
            self._durable = (term, voted_for)

    def _finish(self, u: Update, io: bool) -> None:
        """Items 2-7 of update.py; ``io`` False after a failed term/vote write or
        at close: nothing is written or sent."""
        if io:
            # Messages before the write: no message depends on this Update's own
            # write (a follower acknowledges only after Persisted), and the
            # leader's AppendEntries then leave without waiting for io_submit,
            # which is on the critical path of every commit (tens of us).
            if u.messages:
                if self._send_many is not None:
                    self._send_many(u.messages)
                else:
                    send = self.transport.send
                    for to_id, address, message in u.messages:
                        send(to_id, address, message)
                self._counters.count_sent(u.messages)
            if u.truncate_from:
                self._spawn(self._truncate(u.truncate_from))
            if u.persist:
                if self._append_nowait is not None and not self._unstarted:
                    self._append_now(u.persist_index, u.persist)
                else:
                    self._spawn(self._append(u.persist_index, u.persist))
        if u.apply:
            self._apply(u.apply_index, u.apply)
        if u.accepted or u.completed or u.failed:
            self._resolve(u)
        if u.reads:
            self._run_reads(u.reads)
        if io:
            if u.install_snapshot is not None:
                self._spawn(self._install(u.install_snapshot))
            if u.take_snapshot is not None:
                self._take(u.take_snapshot)
        if self._snapshot_waiters and not self._snapshot_index:
            self._resolve_snapshot_waiters(0)
        self._set_timer(u.deadline_ms)
        if u.state_changed and u.state == State.LEADER:
            self._counters.leadership_acquired += 1
        if self._watchers:
            self._notify()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # Tasks take their first step in creation order, so the store sees
        # truncate/append/install calls in the order the Updates asked; an
        # append_nowait waits (goes in a task too) until they have.
        self._unstarted += 1
        task = asyncio.ensure_future(self._started(coro))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _started(self, coro: Coroutine[Any, Any, None]) -> None:
        self._unstarted -= 1
        await coro

    def _set_timer(self, deadline_ms: int | None) -> None:
        if deadline_ms == self._deadline_ms and (self._timer is not None
                                                 or deadline_ms is None):
            return
        if (deadline_ms is not None and self._timer is not None
                and deadline_ms >= self._timer_ms):
            # Later than the armed handle: keep it, _on_timer re-arms then.  A
            # follower's election deadline moves with every AppendEntries; this
            # makes that one handle per timeout, not one per message.
            self._deadline_ms = deadline_ms
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline_ms = deadline_ms
        if deadline_ms is not None and not self._closed:
            self._arm(deadline_ms)

    def _arm(self, deadline_ms: int) -> None:
        assert self._loop is not None
        self._timer_ms = deadline_ms
        self._timer = self._loop.call_at(deadline_ms / 1000, self._on_timer)

    def _notify(self) -> None:
        watchers, self._watchers = self._watchers, []
        for future in watchers:
            if not future.done():
                future.set_result(None)

    # ------------------------------------------------------------ storage

    async def _append(self, first: int, entries: list[Entry]) -> None:
        start_s = time.perf_counter()     # not loop.time(): uvloop's counts whole ms
        try:
            await self.storage.append(first, entries)
        except Exception as exc:
            self._report_write(first, entries, start_s, exc)
        else:
            self._report_write(first, entries, start_s, None)

    def _report_write(self, first: int, entries: list[Entry], start_s: float,
                      error: Exception | None) -> None:
        """Count a finished append and feed its outcome to the core."""
        counters = self._counters
        if error is not None:
            counters.write_failures += 1
            self._trace(f"write from {first} failed: {error}")
            self._post(PersistFailed(self._now_ms(), first, error))
        else:
            counters.write_latency.observe(time.perf_counter() - start_s)
            counters.writes += 1
            counters.entries_appended += len(entries)
            self._post(Persisted(self._now_ms(), first + len(entries) - 1, entries[-1].term))

    def _append_now(self, first: int, entries: list[Entry]) -> None:
        """The task-free append: the store calls back when the write is done."""
        assert self._append_nowait is not None
        self._appends_issued += 1
        done = functools.partial(self._appended, first, entries, time.perf_counter())
        try:
            self._append_nowait(first, entries, done)
        except Exception as exc:
            done(exc)

    def _appended(self, first: int, entries: list[Entry], start_s: float,
                  error: Exception | None) -> None:
        self._appends_done += 1
        self._report_write(first, entries, start_s, error)
        if self._appends_waiters:
            done = self._appends_done
            keep = []
            for target, fut in self._appends_waiters:
                if target > done:
                    keep.append((target, fut))
                elif not fut.done():
                    fut.set_result(None)
            self._appends_waiters = keep

    async def _appends_finished(self, target: int) -> None:
        """Return once the first ``target`` append_nowait calls have completed."""
        if self._appends_done < target:
            assert self._loop is not None
            fut: asyncio.Future[None] = self._loop.create_future()
            self._appends_waiters.append((target, fut))
            await fut

    async def _truncate(self, index: int) -> None:
        try:
            await self.storage.truncate(index)
        except Exception as exc:
            self._counters.write_failures += 1
            self._trace(f"truncate from {index} failed: {exc}")
            self._post(PersistFailed(self._now_ms(), index, exc))

    async def _install(self, snapshot: Snapshot) -> None:
        """Install the leader's snapshot, restore the state machine, then report it
        (after every write issued before it has reported: update.py item 6)."""
        earlier = [t for t in self._writes if t is not asyncio.current_task()]
        appends_before = self._appends_issued
        error: Exception | None = None
        try:
            await self.storage.snapshot_install(_for_storage(snapshot, bytes(snapshot.data)))
        except Exception as exc:
            error = exc
        if earlier:
            await asyncio.wait(earlier)
        await self._appends_finished(appends_before)
        if error is None:
            try:
                await _maybe_await(self.state_machine.restore(bytes(snapshot.data)))
            except Exception as exc:
                error = exc
        if error is not None:
            log.error("server %d: install snapshot %d failed: %s", self.id, snapshot.index,
                      error)
        else:
            self._counters.snapshots_installed += 1
        self._post(SnapshotInstalled(self._now_ms(), snapshot.index, error))

    def _take(self, request: Snapshot) -> None:
        """Snapshot the state machine now (its state is the one at request.index)."""
        self._snapshot_index = request.index
        try:
            data = self.state_machine.snapshot()
            if isinstance(data, bytearray | memoryview):
                # Its bytes now: the write starts in a later loop iteration,
                # and a machine may reuse that buffer as it applies on.
                data = bytes(data)
            if inspect.iscoroutine(data):
                data = _start_eagerly(data)
            if inspect.isawaitable(data):
                # A task of its own, so that close can cancel a state machine
                # that never finishes its snapshot.
                data = self._machine_snapshot = asyncio.ensure_future(_awaited(data))
        except Exception as exc:
            log.warning("server %d: snapshot at %d failed: %s", self.id, request.index, exc)
            data = None
        self._spawn(self._put_snapshot(request, data))

    async def _put_snapshot(self, request: Snapshot, data: Any) -> None:
        taken: bytes | memoryview | None = None
        try:
            if data is not None and not isinstance(data, bytes | bytearray | memoryview):
                try:
                    data = await data
                finally:
                    self._machine_snapshot = None
            if data is not None:
                if not isinstance(data, _BYTES_LIKE):
                    # bytes(5) is five zero bytes: an async snapshot() that
                    # returns an int would be written as a snapshot of zeros.
                    raise InvalidError(f"snapshot() returned {type(data).__name__}, "
                                       "not bytes")
                # Reported taken only once written: the core compacts its
                # log on SnapshotTaken with data (None: not taken).
                blob = bytes(data)
                await self.storage.snapshot_put(self.config.snapshot_trailing,
                                                _for_storage(request, blob))
                taken = blob
                self._counters.snapshots_taken += 1
        except Exception as exc:
            log.warning("server %d: snapshot at %d not written: %s", self.id,
                        request.index, exc)
        self._snapshot_index = 0
        waiters, self._snapshot_waiters = self._snapshot_waiters, []
        self._post(SnapshotTaken(self._now_ms(), request.index, taken))
        # After the drain just scheduled: the core has compacted by then.
        assert self._loop is not None
        self._loop.call_soon(_resolve_all, waiters, request.index if taken is not None else 0)

    def _resolve_snapshot_waiters(self, index: int) -> None:
        waiters, self._snapshot_waiters = self._snapshot_waiters, []
        _resolve_all(waiters, index)

    # -------------------------------------------------- state machine, requests

    def _apply(self, first: int, entries: list[Entry]) -> None:
        machine_apply = self.state_machine.apply
        results = self._results if self._proposals else None
        index = first - 1
        for entry in entries:
            index += 1
            if entry.type != EntryType.COMMAND:
                continue
            payload = entry.payload
            try:
                value = machine_apply(payload if type(payload) is bytes else bytes(payload))
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:    # noqa: BLE001 - CancelledError and the like too:
                # escaping, it would end this pass with the entries after it
                # never applied (the core counts them applied) and their
                # requests never resolved.
                log.error("server %d: state machine failed to apply entry %d: %r",
                          self.id, index, exc)
                value = _Raised(exc)
            if results is not None:
                results[index] = value

    def _resolve(self, u: Update) -> None:
        for token, first in u.accepted:
            if isinstance(token, _Group):
                token.first = first
        for token, value in u.completed:
            if isinstance(token, _Group):
                for req in token.members:
                    self._complete_proposal(req, token.first + req.offset)
            elif token in self._requests:
                self._requests.discard(token)
                if not token.future.done():
                    token.future.set_result(value)
        for token, error in u.failed:
            if isinstance(token, _Group):
                head, *others = token.members
                self._fail(head, error)
                for req in others:          # each raise gets its own traceback
                    self._fail(req, copy.copy(error))
            else:
                self._fail(token, error)
        if not self._proposals and self._results:
            self._results.clear()

    def _run_reads(self, reads: list[Any]) -> None:
        """Reads the core released (after this Update's apply pass): run each fn."""
        machine = self.state_machine
        for req in reads:
            if req not in self._requests:
                continue
            self._requests.discard(req)
            fn = req.read
            assert fn is not None
            try:
                value = fn(machine)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - the reader's own error, to the reader
                # (CancelledError and the like too: escaping, it would leave the
                # reads after it, and the rest of this Update, not carried out.)
                if not req.future.done():
                    req.future.set_exception(exc)
                continue
            if not req.future.done():
                req.future.set_result(value)

    def _complete_proposal(self, req: _Request, first: int) -> None:
        """req's entries first..first+n-1 are applied: its results are in _results."""
        if req not in self._requests:
            return
        self._requests.discard(req)
        self._proposals -= 1
        future = req.future
        results = self._results
        if req.kind == _ONE:
            result = results.pop(first, None)
            if future.done():
                return
            if isinstance(result, _Raised):
                future.set_exception(result.error)
            else:
                future.set_result(result)
            return
        values = [results.pop(i, None) for i in range(first, first + req.n)]
        if future.done():
            return
        raised = [v.error for v in values if isinstance(v, _Raised)]
        if raised and not req.return_exceptions:
            future.set_exception(raised[0])
        else:
            future.set_result([v.error if isinstance(v, _Raised) else v for v in values])

    def _fail(self, req: _Request, error: BaseException) -> None:
        if req not in self._requests:
            return
        self._requests.discard(req)
        if req.kind != _OTHER:
            self._proposals -= 1
        if not req.future.done():
            req.future.set_exception(error)

    def _trace(self, text: str) -> None:
        if self._tracer is not None:
            self._tracer(self.id, self._clock_ms, text)


# ------------------------------------------------------------------ helpers

def _followers(raft: Raft) -> dict[int, FollowerMetrics]:
    if raft.state != State.LEADER:
        return {}
    last = raft.log.last_index
    return {server_id: FollowerMetrics(p.match_index, p.next_index, last - p.match_index,
                                       p.mode.name)
            for server_id, p in raft.progress.items() if server_id != raft.id}


def _build_metrics(server: Server, raft: Raft | None, followers: dict[int, FollowerMetrics],
                   leader_id: int, leader_address: str | None) -> ServerMetrics:
    c = server._counters
    stats = getattr(server.transport, "stats", None)
    by_reason = dict(getattr(stats, "dropped_by_reason", None) or {})
    extra = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)
             if type(getattr(stats, f.name)) is int} if dataclasses.is_dataclass(stats) else {}
    written = getattr(server.storage, "bytes_appended", None)
    snapshot = raft.snapshot if raft is not None else None
    return ServerMetrics(
        id=server.id, state=server.state.name, term=server.term, leader_id=leader_id,
        leader_address=leader_address, commit_index=server.commit_index,
        last_applied=server.last_applied,
        last_stored=raft.last_stored if raft is not None else 0,
        last_index=raft.log.last_index if raft is not None else 0,
        snapshot_index=snapshot.index if snapshot is not None else 0,
        pending_requests=len(server._requests), followers=followers,
        writes=c.writes, entries_appended=c.entries_appended,
        bytes_written=written if type(written) is int else None,
        write_failures=c.write_failures,
        messages_sent={message_type_name(k): v for k, v in c.sent.items()},
        messages_received={message_type_name(k): v for k, v in c.received.items()},
        messages_dropped=c.messages_dropped, dropped_by_reason=by_reason,
        elections=c.elections, leadership_acquired=c.leadership_acquired,
        snapshots_taken=c.snapshots_taken, snapshots_installed=c.snapshots_installed,
        write_latency=c.write_latency.snapshot(), extra=extra)


def _resolve_all(futures: list[asyncio.Future[int]], value: int) -> None:
    for future in futures:
        if not future.done():
            future.set_result(value)


def _command_bytes(command: bytes, config: Config) -> bytes:
    """command as the immutable bytes the log keeps: a bytearray or memoryview is
    copied at the call (its bytes, all of them, whatever the view's item size),
    because the log holds what it is given until compaction and sends it to
    followers that catch up later: a caller reusing its buffer would otherwise
    change entries already written, and replicas would apply different
    commands at one index."""
    if type(command) is not bytes:
        if not isinstance(command, _BYTES_LIKE):
            raise InvalidError(f"a command is bytes, not {type(command).__name__}")
        command = bytes(command)
    if len(command) % 8:
        # libraft's segments and wire carry entry payloads of whole 8-byte words
        # (spec §0 fact 3): refused here, before the core appends anything.
        raise InvalidError(f"command length {len(command)} is not a multiple of 8")
    if len(command) > config.message_payload_max_bytes:
        # An AppendEntries carries at least one entry whatever its size, and
        # a raftpy peer closes the connection on a payload over this limit:
        # the entry would never reach a follower, and no leader could
        # replicate past it (the cluster stays without one).
        raise TooBigError(f"command of {len(command)} bytes is longer than "
                          f"message_payload_max_bytes={config.message_payload_max_bytes}")
    return command


def _core_snapshot(loaded: SnapshotLike | None) -> Snapshot | None:
    if loaded is None:
        return None
    return Snapshot(loaded.index, loaded.term, loaded.configuration_index,
                    loaded.configuration, loaded.data)


@dataclass(frozen=True, slots=True)
class _StoredSnapshot:
    """A snapshot as Storage takes it (SnapshotLike: data is bytes)."""

    term: int
    index: int
    configuration: Configuration
    configuration_index: int
    data: bytes


def _for_storage(snapshot: Snapshot, data: bytes) -> _StoredSnapshot:
    return _StoredSnapshot(snapshot.term, snapshot.index, snapshot.configuration,
                           snapshot.configuration_index, data)


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


def _start_eagerly(coro: Coroutine[Any, Any, Any]) -> Awaitable[Any]:
    """Run coro now up to its first suspension (what Python 3.12's eager tasks do) and
    return an awaitable of the rest: the state machine's ``async def snapshot``
    sees the state at the snapshot's index until its first await."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return _resume_done(stop.value)
    return _resume(coro, yielded)


async def _resume_done(value: Any) -> Any:
    return value


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Hand what coro yielded to the task that awaits us, and drive coro on (a
    ``yield from`` that starts after the first step)."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def _env_tracer() -> Tracer | None:
    """RAFTPY_TRACE set: trace lines to logging, and to stderr if logging has nowhere
    to put them (libraft prints LIBRAFT_TRACE lines on stderr)."""
    tracer = tracer_from_env(os.environ)
    if tracer is not None:
        trace_log = logging.getLogger("raftpy.trace")
        if not trace_log.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            trace_log.addHandler(handler)
        trace_log.setLevel(logging.DEBUG)
    return tracer
