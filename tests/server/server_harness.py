"""Helpers for the Server tests: a state machine, storage/transport wrappers that
count and record, and a cluster of real Servers (DiskStore on real directories,
the in-memory transport) on one event loop."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import raftpy
from raftpy import Config, Configuration, Server, State, StateMachine
from raftpy.core.messages import Message
from raftpy.io.disk import DiskStore
from raftpy.io.memory import MemoryNetwork

# Short timeouts keep tests quick; long enough that a loop stalled by a busy
# machine (the whole suite on 2 cores) does not start spurious elections.
FAST = Config(election_timeout_ms=500, heartbeat_timeout_ms=50)


def cmd(i: int) -> bytes:
    return struct.pack("<Q", i)


class Counter(StateMachine):
    """Counts commands and chains a CRC over them: equal machines applied the same
    commands in the same order.  apply returns the count; a command starting with
    b"boom" raises."""

    def __init__(self) -> None:
        self.count = 0
        self.digest = 0
        self.restores = 0
        self.snapshots = 0

    def apply(self, command: bytes) -> object:
        assert type(command) is bytes
        if command.startswith(b"boom"):
            raise ValueError("boom")
        self.count += 1
        self.digest = zlib.crc32(command, self.digest)
        return self.count

    def snapshot(self) -> bytes:
        self.snapshots += 1
        return struct.pack("<QQ", self.count, self.digest)

    def restore(self, snapshot: bytes) -> None:
        self.restores += 1
        self.count, self.digest = struct.unpack("<QQ", snapshot)

    def state(self) -> tuple[int, int]:
        return self.count, self.digest


class Timeline:
    """One ordered record of storage returns and transport sends, for all servers."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []


class CountingStorage:
    """Wraps a Storage: counts appends, records returns on a Timeline, and can be
    armed to fail set_term/set_vote or append."""

    def __init__(self, inner: DiskStore, server_id: int, timeline: Timeline | None = None
                 ) -> None:
        self.inner = inner
        self.server_id = server_id
        self.timeline = timeline
        self.appends = 0
        self.appended_entries = 0
        self.fail_hard_state: Exception | None = None
        self.fail_append: Exception | None = None
        self.snapshots_put: list[Any] = []

    def _record(self, *event: Any) -> None:
        if self.timeline is not None:
            self.timeline.events.append((self.server_id, *event))

    async def open(self) -> None:
        await self.inner.open()

    async def load(self) -> Any:
        result = await self.inner.load()
        last = result.start_index + len(result.entries) - 1
        self._record("loaded", result.term, result.voted_for, last)
        return result

    async def bootstrap(self, conf: Configuration) -> None:
        await self.inner.bootstrap(conf)

    async def recover(self, conf: Configuration) -> int:
        return await self.inner.recover(conf)

    async def set_term(self, term: int) -> None:
        if self.fail_hard_state is not None:
            raise self.fail_hard_state
        await self.inner.set_term(term)
        self._record("term", term)

    async def set_vote(self, server_id: int) -> None:
        if self.fail_hard_state is not None:
            raise self.fail_hard_state
        await self.inner.set_vote(server_id)
        self._record("vote", server_id)

    async def append(self, first_index: int, entries: Sequence[Any]) -> None:
        self.appends += 1
        self.appended_entries += len(entries)
        if self.fail_append is not None:
            raise self.fail_append
        await self.inner.append(first_index, entries)
        self._record("appended", first_index, first_index + len(entries) - 1)

    async def truncate(self, index: int) -> None:
        await self.inner.truncate(index)
        self._record("truncated", index)

    async def snapshot_put(self, trailing: int, snapshot: Any) -> None:
        self.snapshots_put.append(snapshot)
        await self.inner.snapshot_put(trailing, snapshot)

    async def snapshot_install(self, snapshot: Any) -> None:
        await self.inner.snapshot_install(snapshot)
        self._record("installed", snapshot.index)

    async def snapshot_get(self) -> Any:
        return await self.inner.snapshot_get()

    async def close(self) -> None:
        await self.inner.close()


class CountingTransport:
    """Wraps a Transport: counts messages per peer and records sends on a Timeline."""

    def __init__(self, inner: Any, server_id: int, timeline: Timeline | None = None) -> None:
        self.inner = inner
        self.server_id = server_id
        self.timeline = timeline
        self.sent: dict[int, int] = {}

    async def start(self, server_id: int, address: str, receive: Any, send_failed: Any
                    ) -> None:
        await self.inner.start(server_id, address, receive, send_failed)

    def send(self, to_id: int, to_address: str, message: Message) -> None:
        self.sent[to_id] = self.sent.get(to_id, 0) + 1
        if self.timeline is not None:
            self.timeline.events.append((self.server_id, "send", to_id, message))
        self.inner.send(to_id, to_address, message)

    async def close(self) -> None:
        await self.inner.close()


class Cluster:
    """Servers 1..n with data directories under root, on one MemoryNetwork."""

    def __init__(self, root: str | os.PathLike[str], n: int = 3, config: Config = FAST,
                 machine: Callable[[], StateMachine] = Counter,
                 timeline: Timeline | None = None, server_class: type[Server] = Server
                 ) -> None:
        self.server_class = server_class
        self.root = os.fspath(root)
        self.n = n
        self.config = config
        self.machine = machine
        self.timeline = timeline
        self.network = MemoryNetwork()
        self.servers: dict[int, Server] = {}
        self.storages: dict[int, CountingStorage] = {}
        self.transports: dict[int, CountingTransport] = {}
        self.configuration = Configuration.of(*[(i, self.address(i))
                                                for i in range(1, n + 1)])

    def address(self, i: int) -> str:
        return f"127.0.0.1:{9000 + i}"

    def make(self, i: int, config: Config | None = None) -> Server:
        """A new Server object for id i on its directory (the old one must be closed)."""
        path = os.path.join(self.root, str(i))
        os.makedirs(path, exist_ok=True)
        storage = CountingStorage(DiskStore(path), i, self.timeline)
        transport = CountingTransport(self.network.transport(), i, self.timeline)
        server = self.server_class(i, self.address(i), path, self.machine(), config or self.config,
                        storage=storage, transport=transport)
        self.servers[i], self.storages[i], self.transports[i] = server, storage, transport
        return server

    async def start(self, ids: Sequence[int] | None = None, bootstrap: bool = True) -> None:
        for i in ids or range(1, self.n + 1):
            server = self.make(i)
            if bootstrap:
                await server.bootstrap(self.configuration)
            await self.boot(server)

    async def boot(self, server: Server) -> None:
        """Start server and wait for its first batch (Start) to be carried out."""
        await server.start()
        await self.wait(lambda: server.state != State.UNAVAILABLE, f"{server.id} started")

    def alive(self) -> list[Server]:
        return [s for s in self.servers.values() if s.state != State.UNAVAILABLE]

    async def wait(self, predicate: Callable[[], bool], what: str = "",
                   timeout: float = 10.0) -> None:
        """Wait, without polling, until predicate() holds after some server's batch."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what or predicate}")
            waits = [asyncio.ensure_future(s.changed()) for s in self.servers.values()]
            try:
                await asyncio.wait(waits, timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def leader(self, timeout: float = 10.0) -> Server:
        """The one leader all live servers agree on (as their raft_leader says)."""
        def agreed() -> bool:
            leaders = [s for s in self.alive() if s.state == State.LEADER]
            if len(leaders) != 1:
                return False
            lid = leaders[0].id
            return all(s.leader[0] == lid for s in self.alive())
        await self.wait(agreed, "one agreed leader", timeout)
        return next(s for s in self.alive() if s.state == State.LEADER)

    async def converge(self, timeout: float = 10.0) -> None:
        """Wait until every live server applied what the leader committed."""
        leader = await self.leader(timeout)
        await self.wait(lambda: all(s.last_applied >= leader.commit_index
                                    for s in self.alive()), "convergence", timeout)

    async def close(self) -> None:
        for server in self.servers.values():
            await server.close()


class TcpCluster(Cluster):
    """The Cluster on real sockets: DiskStore and TcpTransport, unwrapped (so that
    metrics see the store's byte count and the transport's stats)."""

    def __init__(self, root: str | os.PathLike[str], n: int = 3, config: Config = FAST) -> None:
        self.ports = free_ports(n)
        super().__init__(root, n, config)

    def address(self, i: int) -> str:
        return f"127.0.0.1:{self.ports[i - 1]}"

    def make(self, i: int, config: Config | None = None) -> Server:
        from raftpy.io.tcp import TcpTransport
        path = os.path.join(self.root, str(i))
        os.makedirs(path, exist_ok=True)
        config = config or self.config
        server = Server(i, self.address(i), path, Counter(), config,
                        storage=DiskStore(path), transport=TcpTransport(config))
        self.servers[i] = server
        return server


def free_ports(n: int) -> list[int]:
    """n ports free on 127.0.0.1 now (held together while they are picked)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


LIMIT_S = 60


def run(run_loop: Any, coro_fn: Callable[[], Any], limit: float = LIMIT_S) -> Any:
    """run_loop(coro_fn()), failing after limit seconds."""
    async def bounded() -> Any:
        return await asyncio.wait_for(coro_fn(), limit)
    return run_loop(bounded())


def machine_of(server: Server) -> Counter:
    machine = server.state_machine
    assert isinstance(machine, Counter)
    return machine


__all__ = ["Cluster", "TcpCluster", "Counter", "CountingStorage", "CountingTransport",
           "Timeline", "FAST", "LIMIT_S", "cmd", "free_ports", "machine_of", "run", "raftpy"]
