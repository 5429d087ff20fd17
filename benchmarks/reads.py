"""Reads benchmark: linearizable reads per second against writes per second.

    python benchmarks/reads.py [--dir DIR] [--seconds S] [--loop uvloop|asyncio|both]
                               [--transport memory|tcp] [--json] [--quick]

Three in-process ``raftpy.Server`` objects on one event loop (benchmarks/server.py's
cluster: a real DiskStore each, the in-memory transport or TCP on loopback),
8-byte commands, a counting state machine.  With 1 and 1024 clients in
flight (each awaiting its request, then sending the next) it measures:
writes (``apply``), ReadIndex reads on the leader (``read``, one round of
ReadHeartbeats shared by the reads that arrive while none is in flight),
lease reads (``Config.read_mode = LEASE``: no round while the lease holds)
and follower reads (``Config.follower_reads``: a follower asks the leader
for a read index).  Per case: requests/s, p50/p99 latency, log entries
written per 1,000 requests (0 for reads: they write nothing) and
ReadHeartbeats sent per 1,000 requests (how well rounds are shared).
--quick runs each case for 0.3 s on uvloop only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import Report, parser, percentile
from server import cluster

from raftpy import Config, ReadMode, Server, State
from raftpy.core.messages import Message, ReadHeartbeat


def _count(machine: Any) -> int:
    return int(machine.count)


async def run_case(request: Callable[[], Awaitable[Any]], in_flight: int, seconds: float
                   ) -> tuple[int, list[float], float]:
    """Clients send requests until the time is up; returns (done, latencies, elapsed)."""
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    stop = start + seconds
    done = 0

    async def client() -> None:
        nonlocal done
        while loop.time() < stop:
            t = time.perf_counter()
            await request()
            latencies.append(time.perf_counter() - t)
            done += 1

    await asyncio.gather(*[client() for _ in range(in_flight)])
    return done, latencies, loop.time() - start


def _count_read_heartbeats(transport: Any) -> list[int]:
    """Wrap a CountingTransport's send to count ReadHeartbeats too."""
    counter = [0]
    send = transport.send

    def counting(to_id: int, to_address: str, message: Message) -> None:
        if isinstance(message, ReadHeartbeat) and message.read_round:
            counter[0] += 1
        send(to_id, to_address, message)
    transport.send = counting
    return counter


async def bench(root: str, seconds: float, report: Report, loop_kind: str,
                transport_kind: str, config: Config, cases: list[tuple[str, int]]) -> None:
    servers, stores, transports = await cluster(root, transport_kind, config)
    try:
        leader = next(s for s in servers if s.state == State.LEADER)
        k = servers.index(leader)
        follower = next(s for s in servers if s is not leader)
        heartbeats = _count_read_heartbeats(transports[k])
        command = struct.pack("<Q", 42)
        await run_case(lambda: leader.apply(command), 8, min(seconds, 0.3))   # warm up
        if config.follower_reads:
            await _announced(follower, leader)
        kinds: dict[str, Callable[[], Awaitable[Any]]] = {
            "write": lambda: leader.apply(command),
            "read": lambda: leader.read(_count),
            "lease_read": lambda: leader.read(_count),
            "follower_read": lambda: follower.read(_count),
        }
        for kind, in_flight in cases:
            entries0, beats0 = stores[k].entries, heartbeats[0]
            done, lat, elapsed = await run_case(kinds[kind], in_flight, seconds)
            lat.sort()
            report.add(f"{kind}_{in_flight}_in_flight", done / elapsed, "requests/s",
                       loop=loop_kind, net=transport_kind,
                       p50_us=percentile(lat, 50) * 1e6, p99_us=percentile(lat, 99) * 1e6,
                       entries_per_1k=(stores[k].entries - entries0) / max(done, 1) * 1000,
                       rounds_per_1k=(heartbeats[0] - beats0) / 2 / max(done, 1) * 1000)
    finally:
        for server in servers:
            await server.close()


async def _announced(follower: Server, leader: Server) -> None:
    """Wait (bounded) until the leader's announcement of follower reads arrived."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while follower.raft is not None and follower.raft._reads.leader_reads[1] != leader.id:
        if loop.time() > deadline:
            raise RuntimeError("the leader never announced follower reads")
        await asyncio.sleep(0.01)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dir", default=None, help="directory on the disk to use")
    p.add_argument("--seconds", type=float, default=3.0, help="per case")
    p.add_argument("--loop", choices=["uvloop", "asyncio", "both"], default="both")
    p.add_argument("--transport", choices=["memory", "tcp"], default="memory")
    args = p.parse_args()
    seconds = 0.3 if args.quick else args.seconds
    loops = ("uvloop",) if args.quick else (
        ("uvloop", "asyncio") if args.loop == "both" else (args.loop,))
    report = Report(f"3 in-process Servers, {args.transport} transport, DiskStore, "
                    "8-byte commands: reads against writes", args.json)
    base = Config(follower_reads=True)
    runs = [(base, [(kind, n) for kind in ("write", "read", "follower_read")
                    for n in (1, 1024)]),
            (dataclasses.replace(base, read_mode=ReadMode.LEASE),
             [("lease_read", 1), ("lease_read", 1024)])]
    for kind in loops:
        for config, cases in runs:
            with tempfile.TemporaryDirectory(dir=args.dir, prefix="raftpy-bench-") as root:
                coro = bench(root, seconds, report, kind, args.transport, config, cases)
                if kind == "uvloop":
                    import uvloop
                    uvloop.run(coro)
                else:
                    asyncio.run(coro)
    report.print_table()


if __name__ == "__main__":
    main()
