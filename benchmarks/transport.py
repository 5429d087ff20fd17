"""Transport benchmark: messages/s and MB/s between two TcpTransports on loopback.

    python benchmarks/transport.py [--json] [--quick]

Server 1 streams messages to server 2 over 127.0.0.1 with at most a window
of them not yet received (so the queues never drop), for heartbeats and
AppendEntries of 64 x 8 B and 1024 x 1 KiB entries; then a heartbeat ping-pong
(server 2 answers each over its own connection) gives the round trip.  Both
transports share one event loop, hence one core: the figures are the whole
pipeline (encode, write, read, decode, deliver) on a single thread.  Each case
runs on plain asyncio and on uvloop; the vs_asyncio column is the ratio.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop
from _common import Report, parser

from raftpy.core.config import Config
from raftpy.core.messages import AppendEntries, AppendEntriesResult, Message
from raftpy.core.types import Entry, EntryType
from raftpy.io import wire
from raftpy.io.tcp import TcpTransport

LOOPS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {
    "asyncio": asyncio.run, "uvloop": uvloop.run}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def append_entries(count: int, size: int) -> AppendEntries:
    entries = [Entry(3, EntryType.COMMAND, bytes([i % 251]) * size) for i in range(count)]
    return AppendEntries(3, 100, 3, 100, entries)


CASES: list[tuple[str, Message, int]] = [      # name, message, window (messages in flight)
    ("heartbeat", AppendEntries(3, 100, 3, 100), 2000),
    ("AppendEntries 64 x 8 B", append_entries(64, 8), 500),
    ("AppendEntries 1024 x 1 KiB", append_entries(1024, 1024), 16),
]


class Pair:
    """Server 1 sending to server 2 on loopback; counts what 2 received."""

    def __init__(self) -> None:
        config = Config(send_queue_max_messages=8192)
        self.a, self.b = TcpTransport(config), TcpTransport(config)
        self.addr_a = f"127.0.0.1:{free_port()}"
        self.addr_b = f"127.0.0.1:{free_port()}"
        self.received = 0
        self.target = 0
        self.waiter: asyncio.Future[None] | None = None
        self.echo = False
        self.failed = 0

    async def start(self) -> None:
        await self.a.start(1, self.addr_a, self._on_a, self._on_failed)
        await self.b.start(2, self.addr_b, self._on_b, self._on_failed)

    def _on_failed(self, to_id: int, message: Message) -> None:
        self.failed += 1

    def _on_b(self, from_id: int, from_address: str, message: Message) -> None:
        if self.echo:
            self.b.send(from_id, from_address, AppendEntriesResult(3, 0, 100))
        else:
            self._count()

    def _on_a(self, from_id: int, from_address: str, message: Message) -> None:
        self._count()

    def _count(self) -> None:
        self.received += 1
        if self.received >= self.target and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait_for(self, count: int) -> None:
        if self.received < count:
            self.target = count
            self.waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self.waiter, 30)

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()


async def stream(message: Message, window: int, seconds: float) -> float:
    """Messages/s from 1 to 2 with at most `window` not yet received."""
    pair = Pair()
    await pair.start()
    try:
        send, sent = pair.a.send, 0
        half = max(1, window // 2)
        for _ in range(window):                  # warm up: connect and fill once
            send(2, pair.addr_b, message)
        sent = window
        await pair.wait_for(sent)
        start, base = time.perf_counter(), sent
        while time.perf_counter() - start < seconds:
            for _ in range(half):
                send(2, pair.addr_b, message)
            sent += half
            await pair.wait_for(sent - half)
        await pair.wait_for(sent)
        elapsed = time.perf_counter() - start
        assert pair.failed == 0 and pair.a.stats.send_failed == 0
        return (sent - base) / elapsed
    finally:
        await pair.close()


async def ping_pong(rounds: int) -> float:
    """Microseconds per heartbeat round trip (2 answers over its own connection)."""
    pair = Pair()
    await pair.start()
    pair.echo = True
    heartbeat = AppendEntries(3, 100, 3, 100)
    try:
        pair.a.send(2, pair.addr_b, heartbeat)
        await pair.wait_for(1)
        start = time.perf_counter()
        for i in range(rounds):
            pair.a.send(2, pair.addr_b, heartbeat)
            await pair.wait_for(i + 2)
        return (time.perf_counter() - start) / rounds * 1e6
    finally:
        await pair.close()


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    report = Report("raftpy TCP transport benchmark (two transports, one loop, loopback)",
                    args.json)
    seconds = 0.2 if args.quick else 1.0
    rounds = 200 if args.quick else 2000
    for name, message, window in CASES:
        size = wire.frame_size(message)
        rates = {kind: run(stream(message, window, seconds)) for kind, run in LOOPS.items()}
        for kind, rate in rates.items():
            report.add(f"{name} ({kind})", rate, "msg/s", MB_s=rate * size / 1e6,
                       vs_asyncio=rate / rates["asyncio"])
    rtts = {kind: run(ping_pong(rounds)) for kind, run in LOOPS.items()}
    for kind, rtt in rtts.items():
        report.add(f"heartbeat round trip ({kind})", rtt, "us",
                   vs_asyncio=rtts["asyncio"] / rtt)
    report.print_table()


if __name__ == "__main__":
    main()
