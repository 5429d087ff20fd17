"""Transport benchmark: messages/s and MB/s between two TcpTransports on loopback.

    python benchmarks/transport.py [--json] [--quick]

Server 1 streams messages to server 2 over 127.0.0.1 with at most a window
of them not yet acknowledged (2 acknowledges every half window over its own
connection, so the queues never drop), for heartbeats and AppendEntries of
64 x 8 B and 1024 x 1 KiB entries; then a heartbeat ping-pong (2 answers each
one) gives the round trip.  "1 process": both transports share one event
loop, hence one core, and the figures are the whole pipeline (encode, write,
read, decode, deliver) on one thread; "2 processes": server 2 runs in a child
process on the same kind of loop, so each side has a core.  Each case runs
on plain asyncio and on uvloop; the vs_asyncio column is the ratio (for the
round trip, asyncio's time over this one's).  MB/s counts frame bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop
from _common import Report, parser

from raftpy.core.config import Config
from raftpy.core.messages import AppendEntries, AppendEntriesResult, Message, TimeoutNow
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


CONFIG = Config(send_queue_max_messages=8192)

CASES: list[tuple[str, Message, int]] = [      # name, message, window (messages in flight)
    ("heartbeat", AppendEntries(3, 100, 3, 100), 2000),
    ("AppendEntries 64 x 8 B", append_entries(64, 8), 500),
    ("AppendEntries 1024 x 1 KiB", append_entries(1024, 1024), 16),
]


class Receiver:
    """Server 2: counts what arrives and acknowledges every ack_every messages
    (an AppendEntriesResult whose last_log_index is the count, sent over its
    own connection to the sender's handshake address); a TimeoutNow ends it."""

    def __init__(self, address: str, ack_every: int) -> None:
        self.address, self.ack_every = address, ack_every
        self.transport = TcpTransport(CONFIG)
        self.count = 0
        self.done: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self.done = asyncio.get_running_loop().create_future()
        await self.transport.start(2, self.address, self.on_receive, _no_failures)

    def on_receive(self, from_id: int, from_address: str, message: Message) -> None:
        if isinstance(message, TimeoutNow):
            assert self.done is not None
            self.done.set_result(None)
            return
        self.count += 1
        if self.count % self.ack_every == 0:
            self.transport.send(from_id, from_address, AppendEntriesResult(0, 0, self.count))


def _no_failures(to_id: int, message: Message) -> None:
    raise AssertionError(f"send to {to_id} failed: {message}")


class Sender:
    """Server 1: sends to 2 and learns from 2's acknowledgements how much arrived."""

    def __init__(self) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.transport = TcpTransport(CONFIG)
        self.acked = 0
        self.target = 0
        self.waiter: asyncio.Future[None] | None = None

    async def start(self) -> None:
        await self.transport.start(1, self.address, self.on_receive, _no_failures)

    def on_receive(self, from_id: int, from_address: str, message: Message) -> None:
        assert isinstance(message, AppendEntriesResult)
        self.acked = message.last_log_index
        if self.acked >= self.target and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait_acked(self, count: int) -> None:
        if self.acked < count:
            self.target = count
            self.waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self.waiter, 30)


async def start_receiver(ack_every: int, remote: bool, kind: str
                         ) -> tuple[str, Receiver | asyncio.subprocess.Process]:
    """A Receiver in this loop, or in a child process on the same kind of loop."""
    address = f"127.0.0.1:{free_port()}"
    if not remote:
        receiver = Receiver(address, ack_every)
        await receiver.start()
        return address, receiver
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--receiver", address, "--ack-every", str(ack_every),
        "--loop", kind, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready", line
    return address, proc


async def stop_receiver(sender: Sender, address: str,
                        receiver: Receiver | asyncio.subprocess.Process) -> None:
    sender.transport.send(2, address, TimeoutNow(0, 0, 0))
    if isinstance(receiver, Receiver):
        assert receiver.done is not None
        await asyncio.wait_for(receiver.done, 30)
        await receiver.transport.close()
        return
    try:
        await asyncio.wait_for(receiver.wait(), 30)
    finally:
        if receiver.returncode is None:
            receiver.kill()                  # our own child, by its handle
            await receiver.wait()


async def stream(message: Message, window: int, seconds: float, remote: bool = False,
                 kind: str = "asyncio") -> float:
    """Messages/s from 1 to 2 with at most `window` not yet acknowledged."""
    half = max(1, window // 2)
    sender = Sender()
    await sender.start()
    address, receiver = await start_receiver(half, remote, kind)
    try:
        send = sender.transport.send
        for _ in range(2 * half):                # warm up: connect and fill once
            send(2, address, message)
        sent = 2 * half
        await sender.wait_acked(sent)
        start, base = time.perf_counter(), sent
        while time.perf_counter() - start < seconds:
            for _ in range(half):
                send(2, address, message)
            sent += half
            await sender.wait_acked(sent - half)
        await sender.wait_acked(sent)
        elapsed = time.perf_counter() - start
        assert sender.transport.stats.send_failed == 0
        return (sent - base) / elapsed
    finally:
        await stop_receiver(sender, address, receiver)
        await sender.transport.close()


async def ping_pong(rounds: int, remote: bool = False, kind: str = "asyncio") -> float:
    """Microseconds per heartbeat round trip (2 answers over its own connection)."""
    sender = Sender()
    await sender.start()
    address, receiver = await start_receiver(1, remote, kind)
    heartbeat = AppendEntries(3, 100, 3, 100)
    try:
        sender.transport.send(2, address, heartbeat)
        await sender.wait_acked(1)
        start = time.perf_counter()
        for i in range(rounds):
            sender.transport.send(2, address, heartbeat)
            await sender.wait_acked(i + 2)
        return (time.perf_counter() - start) / rounds * 1e6
    finally:
        await stop_receiver(sender, address, receiver)
        await sender.transport.close()


async def receiver_main(address: str, ack_every: int) -> None:
    receiver = Receiver(address, ack_every)
    await receiver.start()
    print("ready", flush=True)
    assert receiver.done is not None
    await receiver.done
    await asyncio.sleep(0)
    await receiver.transport.close()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--receiver", metavar="ADDRESS", help=argparse.SUPPRESS)
    p.add_argument("--ack-every", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--loop", choices=list(LOOPS), default="uvloop", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.receiver:
        LOOPS[args.loop](asyncio.wait_for(receiver_main(args.receiver, args.ack_every), 600))
        return
    report = Report("raftpy TCP transport benchmark (two transports on loopback)", args.json)
    seconds = 0.2 if args.quick else 1.0
    rounds = 200 if args.quick else 2000
    for where, remote in (("1 process", False), ("2 processes", True)):
        for name, message, window in CASES:
            size = wire.frame_size(message)
            rates = {kind: run(stream(message, window, seconds, remote, kind))
                     for kind, run in LOOPS.items()}
            for kind, rate in rates.items():
                report.add(f"{name}, {where} ({kind})", rate, "msg/s", MB_s=rate * size / 1e6,
                           vs_asyncio=rate / rates["asyncio"])
        rtts = {kind: run(ping_pong(rounds, remote, kind)) for kind, run in LOOPS.items()}
        for kind, rtt in rtts.items():
            report.add(f"heartbeat round trip, {where} ({kind})", rtt, "us",
                       vs_asyncio=rtts["asyncio"] / rtt)
    report.print_table()


if __name__ == "__main__":
    main()
