"""Server benchmark: applies per second through three in-process raftpy Servers.

    python benchmarks/server.py [--dir DIR] [--seconds S] [--loop uvloop|asyncio|both]
                                [--transport memory|tcp] [--json] [--quick]

Three ``raftpy.Server`` objects on one event loop, each with a real DiskStore
(its own directory under --dir, default a temporary one on this disk), joined
by the in-memory transport (raftpy.io.memory: no sockets, no encoding, so
this measures the shell, the core and the disk).  8-byte commands, a state
machine that counts them, libraft's default snapshot settings (threshold
1024, trailing 2048; --snapshot-threshold to change).  With 1, 64
and 1024 applies in flight (that many clients, each awaiting its apply then
sending the next) it reports applies/s committed and applied on the leader,
p50/p99 latency from ``apply()`` to its result, and how well the shell batches:
entries per leader Storage.append and AppendEntries per follower per 1,000
applies.  A last case sends batches of 1024 through ``apply_many``.  By
default it runs on uvloop and on the plain asyncio loop.  ``--transport tcp``
uses raftpy.io.tcp on loopback instead (libraft's wire format; AppendEntries
counted by a wrapper).
"""

from __future__ import annotations

import asyncio
import os
import struct
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from _common import Counter, Report, free_ports, parser, percentile

from raftpy import Config, Configuration, Server, State
from raftpy.core.messages import AppendEntries, Message
from raftpy.io.disk import DiskStore
from raftpy.io.memory import MemoryNetwork, MemoryTransport


class CountingStore(DiskStore):
    appends = 0
    entries = 0

    async def append(self, first_index: int, entries: Sequence[Any]) -> None:
        self.appends += 1
        self.entries += len(entries)
        await super().append(first_index, entries)


class CountingTransport:
    """Counts the AppendEntries handed to the wrapped transport."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.append_entries = 0

    async def start(self, *args: Any) -> None:
        await self.inner.start(*args)

    def send(self, to_id: int, to_address: str, message: Message) -> None:
        if isinstance(message, AppendEntries):
            self.append_entries += 1
        self.inner.send(to_id, to_address, message)

    async def close(self) -> None:
        await self.inner.close()


async def cluster(root: str, transport_kind: str, config: Config) -> tuple[
        list[Server], list[CountingStore], list[CountingTransport]]:
    network = MemoryNetwork()
    ports = free_ports(3) if transport_kind == "tcp" else [9101, 9102, 9103]
    addresses = {i: f"127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3)}
    conf = Configuration.of(*addresses.items())
    servers, stores, transports = [], [], []
    for i in (1, 2, 3):
        path = os.path.join(root, str(i))
        os.makedirs(path)
        if transport_kind == "tcp":
            from raftpy.io.tcp import TcpTransport  # type: ignore[import-not-found]
            inner: Any = TcpTransport(config)
        else:
            inner = MemoryTransport(network)
        store, transport = CountingStore(path), CountingTransport(inner)
        server = Server(i, addresses[i], path, Counter(), config,
                        storage=store, transport=transport)
        await server.bootstrap(conf)
        await server.start()
        servers.append(server)
        stores.append(store)
        transports.append(transport)
    while not any(s.state == State.LEADER for s in servers):
        await asyncio.wait([asyncio.ensure_future(s.changed()) for s in servers],
                           timeout=1, return_when=asyncio.FIRST_COMPLETED)
    return servers, stores, transports


async def run_case(leader: Server, in_flight: int, seconds: float, batch: int
                   ) -> tuple[int, list[float], float]:
    """Clients apply until the time is up; returns (applies, latencies, elapsed)."""
    command = struct.pack("<Q", 42)
    commands = [command] * batch
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    stop = start + seconds
    done = 0

    async def client() -> None:
        nonlocal done
        while loop.time() < stop:
            t = time.perf_counter()
            if batch == 1:
                await leader.apply(command)
            else:
                await leader.apply_many(commands)
            latencies.append(time.perf_counter() - t)
            done += batch

    await asyncio.gather(*[client() for _ in range(in_flight)])
    return done, latencies, loop.time() - start


async def bench(root: str, seconds: float, report: Report, loop_kind: str,
                transport_kind: str, config: Config) -> None:
    servers, stores, transports = await cluster(root, transport_kind, config)
    try:
        leader = next(s for s in servers if s.state == State.LEADER)
        k = servers.index(leader)
        await run_case(leader, 8, min(seconds, 0.3), 1)      # warm up
        for in_flight, batch in ((1, 1), (64, 1), (1024, 1), (1, 1024)):
            appends0, entries0 = stores[k].appends, stores[k].entries
            ae0 = transports[k].append_entries
            done, lat, elapsed = await run_case(leader, in_flight, seconds, batch)
            lat.sort()
            appends = stores[k].appends - appends0
            name = (f"apply_{in_flight}_in_flight" if batch == 1
                    else f"apply_many_{batch}")
            report.add(name, done / elapsed, "applies/s", loop=loop_kind, net=transport_kind,
                       p50_us=percentile(lat, 50) * 1e6, p99_us=percentile(lat, 99) * 1e6,
                       entries_per_write=(stores[k].entries - entries0) / max(appends, 1),
                       ae_per_1k=(transports[k].append_entries - ae0) / 2 / done * 1000)
    finally:
        for server in servers:
            await server.close()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dir", default=None, help="directory on the disk to use")
    p.add_argument("--seconds", type=float, default=3.0, help="per case")
    p.add_argument("--loop", choices=["uvloop", "asyncio", "both"], default="both")
    p.add_argument("--transport", choices=["memory", "tcp"], default="memory")
    p.add_argument("--snapshot-threshold", type=int, default=Config().snapshot_threshold,
                   help="entries between snapshots (libraft's 1024 by default)")
    args = p.parse_args()
    seconds = 0.3 if args.quick else args.seconds
    report = Report(f"3 in-process Servers, {args.transport} transport, DiskStore, "
                    "8-byte commands", args.json)
    for kind in ("uvloop", "asyncio") if args.loop == "both" else (args.loop,):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="raftpy-bench-") as root:
            config = Config(snapshot_threshold=args.snapshot_threshold)
            coro = bench(root, seconds, report, kind, args.transport, config)
            if kind == "uvloop":
                import uvloop
                uvloop.run(coro)
            else:
                asyncio.run(coro)
    report.print_table()


if __name__ == "__main__":
    main()
