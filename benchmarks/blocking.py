"""BlockingServer benchmark: applies per second from T threads vs T asyncio tasks.

    python benchmarks/blocking.py [--dir DIR] [--seconds S] [--servers 1|3]
                                  [--loop uvloop|asyncio] [--inflight K]
                                  [--json] [--quick]

A cluster of ``raftpy.BlockingServer`` objects (each a Server with a DiskStore
on its own directory under --dir and a TcpTransport on loopback, on a loop
thread of its own), 8-byte commands, a counting state machine.  Against the
same leader, for T clients each applying then waiting for the result:

- ``async_T``: T asyncio tasks on the leader's loop calling ``Server.apply``
  (the async API; the reference);
- ``threads_T``: T threads calling ``BlockingServer.apply`` (batched: the
  commands of all threads submitted meanwhile go as one apply_many);
- ``threads_naive_T``: T threads, each apply its own
  ``run_coroutine_threadsafe`` and future (what batching saves).

It reports applies/s, p50/p99 latency, the process's CPU time per apply (all
threads: the servers' loops and the clients) and, for threads_T, applies per
batch.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import threading
import time
from typing import Any

from _common import Counter, Report, parser, percentile

from raftpy import BlockingServer, Config, Configuration, Server, State
from raftpy.io.tcp import TcpTransport

COMMAND = struct.pack("<Q", 1)




def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cluster(root: str, n: int, loop_kind: str, inflight: int
            ) -> tuple[list[BlockingServer], BlockingServer]:
    ports = free_ports(n)
    conf = Configuration.of(*[(i + 1, f"127.0.0.1:{p}") for i, p in enumerate(ports)])
    config = Config()
    servers: list[BlockingServer] = []
    for i, port in enumerate(ports, start=1):
        path = os.path.join(root, str(i))
        os.makedirs(path)
        bs = BlockingServer(i, f"127.0.0.1:{port}", path, Counter(), config,
                            transport=TcpTransport(config), loop=loop_kind,
                            max_inflight_batches=inflight)
        servers.append(bs)
        bs.bootstrap(conf)
        bs.start()

    async def until_leader(server: Server) -> None:
        while server.state != State.LEADER and server.leader[0] == 0:
            await server.changed()
    servers[0].call(until_leader, 30, "wait for a leader")
    leader_id = servers[0].leader[0]
    leader = servers[leader_id - 1]

    async def until_leading(server: Server) -> None:
        while server.state != State.LEADER:
            await server.changed()
    leader.call(until_leading, 30, "wait for the leader")
    return servers, leader


def async_case(bs: BlockingServer, clients: int, seconds: float
               ) -> tuple[int, list[float], float]:
    async def run(server: Server) -> tuple[int, list[float], float]:
        import asyncio
        latencies: list[float] = []
        start = time.perf_counter()
        stop = start + seconds

        async def client() -> None:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                await server.apply(COMMAND)
                latencies.append(time.perf_counter() - t)
        await asyncio.gather(*[client() for _ in range(clients)])
        return len(latencies), latencies, time.perf_counter() - start
    return bs.call(run, seconds + 60, "async clients")


def thread_case(bs: BlockingServer, clients: int, seconds: float, naive: bool
                ) -> tuple[int, list[float], float]:
    per_thread: list[list[float]] = [[] for _ in range(clients)]
    start = time.perf_counter()
    stop = start + seconds

    def one(server: Server) -> Any:
        return server.apply(COMMAND)

    def client(i: int) -> None:
        mine = per_thread[i]
        while time.perf_counter() < stop:
            t = time.perf_counter()
            if naive:
                bs.call(one, 30, "apply")
            else:
                bs.apply(COMMAND, 30)
            mine.append(time.perf_counter() - t)
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    latencies = [v for lat in per_thread for v in lat]
    return len(latencies), latencies, time.perf_counter() - start


def bench(root: str, n: int, loop_kind: str, inflight: int, seconds: float,
          clients_list: list[int], report: Report) -> None:
    servers, leader = cluster(root, n, loop_kind, inflight)
    try:
        thread_case(leader, 4, min(seconds, 0.3), False)      # warm up
        for clients in clients_list:
            for mode in ("async", "threads", "threads_naive"):
                batches0, cpu0 = leader.batches, time.process_time()
                if mode == "async":
                    done, lat, elapsed = async_case(leader, clients, seconds)
                else:
                    done, lat, elapsed = thread_case(leader, clients, seconds,
                                                     mode == "threads_naive")
                cpu_s = time.process_time() - cpu0
                lat.sort()
                extra: dict[str, Any] = {"cpu_us_per_apply": cpu_s / max(1, done) * 1e6}
                if mode == "threads":
                    extra["per_batch"] = done / max(1, leader.batches - batches0)
                report.add(f"{mode}_{clients}", done / elapsed, "applies/s", loop=loop_kind,
                           servers=n, p50_us=percentile(lat, 50) * 1e6,
                           p99_us=percentile(lat, 99) * 1e6, **extra)
    finally:
        for bs in servers:
            bs.close()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dir", default=None, help="directory on the disk to use")
    p.add_argument("--seconds", type=float, default=3.0, help="per case")
    p.add_argument("--servers", type=int, choices=[1, 3], default=3)
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--inflight", type=int, default=1,
                   help="BlockingServer's max_inflight_batches (default 1)")
    args = p.parse_args()
    seconds = 0.3 if args.quick else args.seconds
    clients_list = [1, 16] if args.quick else [1, 16, 64]
    report = Report(f"{args.servers} BlockingServers ({args.loop}), TcpTransport, DiskStore, "
                    "8-byte commands: T clients", args.json)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="raftpy-bench-") as root:
        bench(root, args.servers, args.loop, args.inflight, seconds, clients_list, report)
    report.print_table()


if __name__ == "__main__":
    main()
