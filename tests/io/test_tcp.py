"""TcpTransport over real sockets on loopback, on both event loops.

Peers are TcpTransports or raw sockets (asyncio streams) that write chosen
bytes or read what the transport writes.  Every test body runs under
asyncio.wait_for; waits on a condition poll it with a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import tracemalloc

import pytest

from raftpy.core.config import Config
from raftpy.core.configuration import Configuration
from raftpy.core.messages import (
    AppendEntries,
    AppendEntriesResult,
    InstallSnapshot,
    RequestVote,
    RequestVoteResult,
    TimeoutNow,
)
from raftpy.core.types import Entry, EntryType
from raftpy.errors import InvalidError, IOError_
from raftpy.io import wire
from raftpy.io.interfaces import Transport
from raftpy.io.tcp import TcpTransport, parse_address

TIMEOUT_S = 20.0
FAST = Config(connect_retry_delay_ms=50)


def free_port(host: str = "127.0.0.1", family: int = socket.AF_INET) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def wait_until(predicate, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


class Node:
    """A TcpTransport with what it received and what it was told failed."""

    def __init__(self, server_id: int, address: str, config: Config = FAST,
                 bind_address: str | None = None) -> None:
        self.id, self.address = server_id, address
        self.transport = TcpTransport(config, bind_address)
        self.received: list[tuple[int, str, object]] = []
        self.failed: list[tuple[int, object]] = []
        self.on_receive = None

    async def start(self) -> Node:
        await self.transport.start(self.id, self.address, self._receive, self._failed)
        return self

    def _receive(self, from_id, from_address, message) -> None:
        self.received.append((from_id, from_address, message))
        if self.on_receive is not None:
            self.on_receive(from_id, from_address, message)

    def _failed(self, to_id, message) -> None:
        self.failed.append((to_id, message))

    def send(self, other: Node, message) -> None:
        self.transport.send(other.id, other.address, message)

    async def wait_received(self, count: int, timeout_s: float = 10.0) -> None:
        await wait_until(lambda: len(self.received) >= count,
                         f"server {self.id} to receive {count} (has {len(self.received)})",
                         timeout_s)

    async def close(self) -> None:
        await self.transport.close()


def canon(message) -> tuple:
    """A comparable form: entries as tuples of bytes, data as bytes."""
    fields = []
    for name in type(message).__slots__:
        value = getattr(message, name)
        if name == "entries":
            value = tuple((e.term, int(e.type), bytes(e.payload)) for e in value)
        elif name == "data":
            value = bytes(value)
        fields.append(value)
    return (type(message).__name__, *fields)


CONF = Configuration.of((1, "127.0.0.1:9001"), (2, "127.0.0.1:9002"), (3, "127.0.0.1:9003"))


def every_message_type(i: int = 0) -> list:
    entries = [Entry(5, EntryType.COMMAND, b"a" * 8), Entry(5, EntryType.BARRIER, b""),
               Entry(5, EntryType.CHANGE, CONF.encode()), Entry(6, EntryType.COMMAND,
                                                              bytes(range(256)) * 4)]
    return [
        RequestVote(5 + i, 1, 7, 4, disrupt_leader=True, pre_vote=True),
        RequestVoteResult(5 + i, True, pre_vote=True),
        AppendEntries(5 + i, 6, 4, 6, entries),
        AppendEntries(5 + i, 6, 4, 6),                       # a heartbeat
        AppendEntriesResult(5 + i, 0, 8),
        InstallSnapshot(5 + i, 9, 4, 1, CONF, b"snapshot-payload-bytes!\0" * 100),
        TimeoutNow(5 + i, 9, 4),
    ]


def run(run_loop, body):
    return run_loop(asyncio.wait_for(body(), TIMEOUT_S))


def test_parse_address():
    assert parse_address("127.0.0.1:9001") == ("127.0.0.1", 9001)
    assert parse_address("localhost:1") == ("localhost", 1)
    assert parse_address("10.0.0.1") == ("10.0.0.1", 8080)
    assert parse_address("10.0.0.1:") == ("10.0.0.1", 8080)
    assert parse_address("[::1]:9001") == ("::1", 9001)
    assert parse_address("[::1]") == ("::1", 8080)
    for bad in ("", ":9001", "[::1", "[::1]x", "h:70000", "h:-1", "h:x", "[]:1"):
        with pytest.raises(InvalidError):
            parse_address(bad)


def test_is_a_transport():
    assert isinstance(TcpTransport(Config()), Transport)


# Exchanges between transports -------------------------------------------------


def test_two_transports_exchange_every_message_type_both_ways(run_loop):
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        b = await Node(2, f"127.0.0.1:{free_port()}").start()
        # b answers each request over its own connection, to the handshake's address
        b.on_receive = lambda fid, faddr, m: b.transport.send(fid, faddr, m)
        try:
            sent = every_message_type() + every_message_type(1)
            for m in sent:
                a.send(b, m)
            await b.wait_received(len(sent))
            await a.wait_received(len(sent))
            assert [canon(m) for _, _, m in b.received] == [canon(m) for m in sent]
            assert [canon(m) for _, _, m in a.received] == [canon(m) for m in sent]
            assert {(f, addr) for f, addr, _ in b.received} == {(1, a.address)}
            assert {(f, addr) for f, addr, _ in a.received} == {(2, b.address)}
            assert a.failed == b.failed == []
            for n in (a, b):
                s = n.transport.stats
                assert s.messages_sent == s.messages_received == len(sent)
                assert s.connects == 1 and s.connections_accepted == 1
                assert s.send_failed == 0
            assert a.transport.stats.bytes_sent == sum(wire.frame_size(m) for m in sent)
        finally:
            await a.close()
            await b.close()
    run(run_loop, body)


def test_three_transports_keep_order_per_connection(run_loop):
    async def body():
        nodes = [await Node(i, f"127.0.0.1:{free_port()}").start() for i in (1, 2, 3)]
        count = 350
        kinds = len(every_message_type())

        def message(k: int, src: Node, dst: Node):
            # every type in turn; the term tells sender, receiver and sequence apart
            return every_message_type(1000 * (10 * src.id + dst.id) + k)[k % kinds]
        try:
            for k in range(count):          # interleaved: every node to every other
                for src in nodes:
                    for dst in nodes:
                        if src is not dst:
                            src.send(dst, message(k, src, dst))
                if k % 50 == 0:
                    await asyncio.sleep(0)
            for n in nodes:
                await n.wait_received(2 * count)
            for n in nodes:
                for src in nodes:
                    if src is not n:
                        got = [canon(m) for f, addr, m in n.received if f == src.id]
                        assert all(addr == src.address for f, addr, _ in n.received
                                   if f == src.id)
                        assert got == [canon(message(k, src, n)) for k in range(count)]
                assert n.failed == []
        finally:
            for n in nodes:
                await n.close()
    run(run_loop, body)


async def read_frames(reader: asyncio.StreamReader, count: int) -> tuple[tuple, list]:
    """Read a handshake and count messages from a raw accepted connection."""
    decoder = wire.Reader(1 << 20, 1 << 20)
    messages: list = []
    while len(messages) < count:
        data = await reader.read(65536)
        assert data, f"EOF after {len(messages)} messages"
        messages += decoder.feed(data)
    return decoder.handshake, messages


def test_reply_goes_over_the_repliers_own_outbound_connection(run_loop):
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        a.on_receive = lambda fid, faddr, m: a.transport.send(
            fid, faddr, RequestVoteResult(m.term, True))
        accepted: asyncio.Queue = asyncio.Queue()

        async def on_accept(reader, writer):
            await accepted.put((reader, writer))
        raw_port = free_port()
        raw_server = await asyncio.start_server(on_accept, "127.0.0.1", raw_port)
        try:
            # a raw peer (id 9, listening at raw_port) connects to a and asks for a vote
            reader, writer = await asyncio.open_connection("127.0.0.1", a.address.split(":")[1])
            writer.write(wire.encode_handshake(9, f"127.0.0.1:{raw_port}"))
            writer.writelines(wire.encode(RequestVote(3, 9, 1, 1)))
            await writer.drain()
            in_reader, in_writer = await asyncio.wait_for(accepted.get(), 10)
            handshake, replies = await read_frames(in_reader, 1)
            assert handshake == (1, a.address)
            assert [canon(m) for m in replies] == [canon(RequestVoteResult(3, True))]
            assert a.received[0][:2] == (9, f"127.0.0.1:{raw_port}")
            # nothing comes back on the connection the raw peer opened
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(1), 0.2)
            writer.close()
            in_writer.close()
        finally:
            raw_server.close()
            await a.close()
    run(run_loop, body)


def test_reconnect_after_the_peer_restarts_on_the_same_port(run_loop):
    async def body():
        config = Config(connect_retry_delay_ms=300)
        a = await Node(1, f"127.0.0.1:{free_port()}", config).start()
        b = await Node(2, f"127.0.0.1:{free_port()}").start()
        try:
            a.send(b, TimeoutNow(1, 1, 1))
            await b.wait_received(1)
            await b.close()
            await wait_until(lambda: a.transport.stats.connections_lost == 1, "a sees b go")
            t0 = time.monotonic()
            b2 = await Node(2, b.address).start()
            a.send(b2, TimeoutNow(2, 2, 2))
            await b2.wait_received(1)
            assert time.monotonic() - t0 >= 0.3 * 0.8      # it waited for the retry delay
            assert [m for _, _, m in b2.received] == [TimeoutNow(2, 2, 2)]
            assert a.transport.stats.connects == 2
            assert a.failed == []
            await b2.close()
        finally:
            await a.close()
    run(run_loop, body)


def test_a_new_address_for_an_id_tears_down_the_old_client(run_loop):
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        b1 = await Node(2, f"127.0.0.1:{free_port()}").start()
        b2 = await Node(2, f"127.0.0.1:{free_port()}").start()
        try:
            a.send(b1, TimeoutNow(1, 1, 1))
            await b1.wait_received(1)
            a.send(b2, TimeoutNow(2, 2, 2))
            await b2.wait_received(1)
            await wait_until(lambda: not b1.transport.inbound, "b1's connection closed")
            assert [m for _, _, m in b1.received] == [TimeoutNow(1, 1, 1)]
            assert [m for _, _, m in b2.received] == [TimeoutNow(2, 2, 2)]
            assert a.transport.stats.connects == 2
            assert b1.transport.stats.connections_closed_malformed == 0
        finally:
            for n in (a, b1, b2):
                await n.close()
    run(run_loop, body)


def test_host_names_are_resolved(run_loop):
    async def body():
        a = await Node(1, f"localhost:{free_port()}").start()
        b = await Node(2, f"localhost:{free_port()}").start()
        b.on_receive = lambda fid, faddr, m: b.transport.send(fid, faddr, m)
        try:
            a.send(b, TimeoutNow(1, 2, 3))
            await a.wait_received(1)
            assert b.received[0][:2] == (1, a.address)
            assert a.received[0][:2] == (2, b.address)
        finally:
            await a.close()
            await b.close()
    run(run_loop, body)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError as exc:
        print(f"\nno IPv6 loopback on this machine: {exc}")
        return False


def test_ipv6_literals_in_brackets(run_loop):
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")

    async def body():
        a = await Node(1, f"[::1]:{free_port('::1', socket.AF_INET6)}").start()
        b = await Node(2, f"[::1]:{free_port('::1', socket.AF_INET6)}").start()
        b.on_receive = lambda fid, faddr, m: b.transport.send(fid, faddr, m)
        try:
            a.send(b, TimeoutNow(1, 2, 3))
            await a.wait_received(1)
            assert b.received[0][:2] == (1, a.address)
            assert a.transport.listen_addresses[0][0] == "::1"
        finally:
            await a.close()
            await b.close()
    run(run_loop, body)


def test_bind_address_is_listened_on_and_the_own_address_announced(run_loop):
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        bind_port, own_port = free_port("127.0.0.2"), free_port()
        b = await Node(2, f"127.0.0.1:{own_port}", bind_address=f"127.0.0.2:{bind_port}").start()
        try:
            assert b.transport.listen_addresses == [("127.0.0.2", bind_port)]
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", own_port)
            a.transport.send(2, f"127.0.0.2:{bind_port}", TimeoutNow(1, 1, 1))
            await b.wait_received(1)
            b.send(a, TimeoutNow(2, 2, 2))
            await a.wait_received(1)
            assert a.received[0][:2] == (2, f"127.0.0.1:{own_port}")
        finally:
            await a.close()
            await b.close()
    run(run_loop, body)


def test_address_in_use_is_a_clear_error(run_loop):
    async def body():
        address = f"127.0.0.1:{free_port()}"
        a = await Node(1, address).start()
        b = Node(2, address)
        try:
            with pytest.raises(IOError_, match=f"listen on {address}: address already in use"):
                await b.start()
            # b can still be closed; a still works
            await b.close()
        finally:
            await a.close()
        with pytest.raises(InvalidError, match="bad port"):
            await Node(3, "127.0.0.1:http").start()
    run(run_loop, body)


# Bad peers --------------------------------------------------------------------


def handshake_then(frame: bytes) -> bytes:
    return wire.encode_handshake(7, "127.0.0.1:1") + frame


def huge_header() -> bytes:
    return handshake_then(struct.pack("<QQ", 1, 1 << 62))


def truncated() -> bytes:
    frame = b"".join(bytes(p) for p in wire.encode(AppendEntries(1, 0, 0, 0, [
        Entry(1, EntryType.COMMAND, b"x" * 64)])))
    return handshake_then(frame[:-10])


def huge_entry() -> bytes:
    """An AppendEntries announcing one entry of 4 GiB - 1 (over the 1 GiB payload limit)."""
    head = struct.pack("<7Q", 1, 48 + 16, 1, 0, 0, 0, 1)
    return handshake_then(head + struct.pack("<QB3xI", 1, 1, 0xFFFFFFFF) + bytes(8))


def huge_snapshot() -> bytes:
    """An InstallSnapshot announcing 2^60 bytes of data."""
    frame = bytearray(wire.encode(InstallSnapshot(1, 1, 1, 1, CONF, b""))[0])
    conf_len = struct.unpack_from("<Q", frame, 16 + 32)[0]
    struct.pack_into("<Q", frame, 16 + 40 + conf_len, 1 << 60)
    return handshake_then(bytes(frame))


UNKNOWN_TYPE = struct.pack("<QQ", 99, 8) + bytes(8)


def good_then_garbage() -> bytes:
    return handshake_then(b"".join(wire.encode(TimeoutNow(7, 7, 7))) + UNKNOWN_TYPE)


BAD_INPUTS = {     # bytes, words the warning has, messages delivered before the damage
    "garbage": (b"\xde\xad\xbe\xef" * 64, "protocol", 0),
    "bad handshake protocol": (struct.pack("<QQQ", 2, 7, 8) + b"x:1\0\0\0\0\0", "protocol", 0),
    "garbage after the handshake": (handshake_then(b"\xff" * 64), "exceeds the limit", 0),
    "unknown message type": (handshake_then(UNKNOWN_TYPE), "unknown message type", 0),
    "a good frame then garbage": (good_then_garbage(), "unknown message type", 1),
    "truncated frame then EOF": (truncated(), "middle of a frame", 0),
    "huge declared header length": (huge_header(), "exceeds the limit", 0),
    "huge declared entry": (huge_entry(), "exceeds the limit", 0),
    "huge declared snapshot": (huge_snapshot(), "exceeds the limit", 0),
    "EOF in the handshake": (wire.encode_handshake(7, "127.0.0.1:1")[:20], "before the handshake",
                             0),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_malformed_stream_closes_that_connection_only(run_loop, case, caplog):
    data, reason, delivered = BAD_INPUTS[case]

    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        b = await Node(2, f"127.0.0.1:{free_port()}").start()
        try:
            a.send(b, TimeoutNow(1, 1, 1))          # a well-behaved peer, connected first
            await b.wait_received(1)
            tracemalloc.start()
            reader, writer = await asyncio.open_connection("127.0.0.1", b.address.split(":")[1])
            writer.write(data)
            writer.write_eof()
            await writer.drain()
            try:
                assert await asyncio.wait_for(reader.read(), 10) == b""   # closed by b
            except ConnectionResetError:
                pass
            _, peak_bytes = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert peak_bytes < 4 << 20, f"peak {peak_bytes} bytes allocated"
            await wait_until(lambda: b.transport.stats.connections_closed_malformed == 1,
                             "the malformed count")
            assert len(b.transport.inbound) == 1      # a's connection is still there
            a.send(b, TimeoutNow(2, 2, 2))
            await b.wait_received(2 + delivered)
            assert [m for f, _, m in b.received if f == 1] == [TimeoutNow(1, 1, 1),
                                                                 TimeoutNow(2, 2, 2)]
            assert [m for f, _, m in b.received if f == 7] == [TimeoutNow(7, 7, 7)] * delivered
            writer.close()
        finally:
            await a.close()
            await b.close()
    with caplog.at_level(logging.WARNING, logger="raftpy.io.tcp"):
        run(run_loop, body)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "connection from 127.0.0.1:" in warnings[0] and "closing it" in warnings[0]
    assert reason in warnings[0]


def test_a_receive_callback_that_raises_loses_nothing_else(run_loop, caplog):
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        b = await Node(2, f"127.0.0.1:{free_port()}").start()

        def explode(fid, faddr, m):
            if m.term == 2:
                raise RuntimeError("server bug")
        b.on_receive = explode
        try:
            for t in (1, 2, 3):
                a.send(b, TimeoutNow(t, 0, 0))
            await b.wait_received(3)
            a.send(b, TimeoutNow(4, 0, 0))
            await b.wait_received(4)
            assert [m.term for _, _, m in b.received] == [1, 2, 3, 4]
            assert b.transport.stats.connections_closed_malformed == 0
        finally:
            await a.close()
            await b.close()
    with caplog.at_level(logging.ERROR, logger="raftpy.io.tcp"):
        run(run_loop, body)
    assert any("receive callback failed" in r.getMessage() for r in caplog.records)


# Queues, failures, retries ---------------------------------------------------


def test_a_peer_that_never_reads_bounds_the_queue_and_reports_drops(run_loop):
    config = Config(send_queue_max_messages=40, send_queue_max_bytes=1 << 20,
                    connect_retry_delay_ms=50)
    payload = b"p" * 65536
    message = AppendEntries(1, 0, 0, 0, [Entry(1, EntryType.COMMAND, payload)])
    size = wire.frame_size(message)
    total = 1500

    async def body():
        held = []

        async def never_read(reader, writer):
            held.append(writer)           # keep it open; never read
        port = free_port()
        server = await asyncio.start_server(never_read, "127.0.0.1", port)
        for s in server.sockets:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        a = await Node(1, f"127.0.0.1:{free_port()}", config).start()
        high = a.transport.write_high_bytes
        peak_buffer = 0
        try:
            for i in range(total):
                a.transport.send(2, f"127.0.0.1:{port}", message)
                queued_messages, queued_bytes = a.transport.queued(2)
                assert queued_messages <= 40 and queued_bytes <= 1 << 20
                peak_buffer = max(peak_buffer, a.transport.write_buffer_bytes(2))
                if i % 20 == 0:
                    await asyncio.sleep(0.001)
            stats = a.transport.stats
            await wait_until(lambda: len(a.failed) == stats.send_failed, "the reports")
            queued_messages, _ = a.transport.queued(2)
            assert stats.send_failed > 0
            assert stats.dropped_by_reason == {"queue full": stats.send_failed}
            assert stats.messages_sent + stats.send_failed + queued_messages == total
            assert stats.messages_sent * size < 32 << 20    # the kernel took what it could
            assert peak_buffer <= high + size
            assert stats.peak_queue_bytes <= 1 << 20 and stats.peak_queue_messages <= 40
            assert all(to == 2 and m is message for to, m in a.failed)
            print(f"\nsent {stats.messages_sent}, dropped {stats.send_failed}, "
                  f"queued {queued_messages}, peak write buffer {peak_buffer} bytes")
        finally:
            await a.close()
            for w in held:
                w.close()
            server.close()
    run(run_loop, body)


def test_nothing_listening_reports_failures_and_retries(run_loop):
    async def body():
        port = free_port()
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        try:
            sent = [TimeoutNow(t, 0, 0) for t in range(10)]
            t0 = time.monotonic()
            for m in sent:
                a.transport.send(2, f"127.0.0.1:{port}", m)
            await wait_until(lambda: len(a.failed) == 7, "7 failures")
            # libraft's rule: the newest 3 stay queued, the oldest are failed in order
            assert [m for _, m in a.failed] == sent[:7]
            assert a.transport.queued(2)[0] == 3
            await wait_until(lambda: a.transport.stats.connect_failures >= 3, "retries")
            elapsed = time.monotonic() - t0
            assert elapsed >= 2 * FAST.connect_retry_delay_ms / 1000 * 0.9
            assert a.transport.stats.dropped_by_reason == {"no connection": 7}
            # once something listens there, the 3 kept messages arrive
            b = await Node(2, f"127.0.0.1:{port}").start()
            await b.wait_received(3)
            assert [m for _, _, m in b.received] == sent[7:]
            assert len(a.failed) == 7
            await b.close()
        finally:
            await a.close()
    run(run_loop, body)


def test_a_peer_nobody_sends_to_any_more_is_forgotten(run_loop):
    # Review of issue 9: every id a stranger announced (and the core answered
    # once) kept a client retrying every connect_retry_delay_ms for good.
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        try:
            dead = [free_port() for _ in range(50)]
            for i, port in enumerate(dead):
                a.transport.send(100 + i, f"127.0.0.1:{port}", TimeoutNow(1, 0, 0))
            await wait_until(lambda: len(a.failed) == 50, "each one reported failed")
            assert not a.transport._peers
            failures = a.transport.stats.connect_failures
            assert failures == 50 * 3
            await asyncio.sleep(4 * FAST.connect_retry_delay_ms / 1000)
            assert a.transport.stats.connect_failures == failures    # no more retries
            # A peer still sent to keeps being retried, and gets what is kept.
            port = free_port()
            for t in range(8):
                a.transport.send(2, f"127.0.0.1:{port}", TimeoutNow(t, 0, 0))
                await asyncio.sleep(FAST.connect_retry_delay_ms / 1000)
            assert 2 in a.transport._peers
            b = await Node(2, f"127.0.0.1:{port}").start()
            await b.wait_received(3)
            await b.close()
        finally:
            await a.close()
    run(run_loop, body)


def test_unresolvable_and_invalid_addresses_fail_without_raising(run_loop):
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        try:
            for t in range(5):
                a.transport.send(2, "no-such-host.invalid:9000", TimeoutNow(t, 0, 0))
                a.transport.send(3, "127.0.0.1:notaport", TimeoutNow(t, 0, 0))
            await wait_until(lambda: len(a.failed) == 4, "4 failures")
            assert sorted(to for to, _ in a.failed) == [2, 2, 3, 3]
        finally:
            await a.close()
    run(run_loop, body)


def test_lost_connection_reports_what_was_still_buffered(run_loop):
    config = Config(connect_retry_delay_ms=50)
    message = AppendEntries(1, 0, 0, 0, [Entry(1, EntryType.COMMAND, b"q" * 65536)])

    async def body():
        held = []

        async def never_read(reader, writer):
            held.append(writer)
        port = free_port()
        server = await asyncio.start_server(never_read, "127.0.0.1", port)
        a = await Node(1, f"127.0.0.1:{free_port()}", config).start()
        try:
            for _ in range(200):
                a.transport.send(2, f"127.0.0.1:{port}", message)
            await wait_until(lambda: held and a.transport.write_buffer_bytes(2) > 0,
                             "a full write buffer")
            for w in held:
                w.transport.abort()        # reset: what a has buffered is lost
            stats = a.transport.stats
            await wait_until(lambda: stats.dropped_by_reason.get("connection lost", 0) > 0,
                             "the lost messages")
            await wait_until(lambda: len(a.failed) == stats.send_failed, "the reports")
            assert stats.connections_lost == 1
        finally:
            await a.close()
            server.close()
    run(run_loop, body)


def test_close_is_idempotent_and_reports_nothing_after(run_loop):
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        b = await Node(2, f"127.0.0.1:{free_port()}").start()
        port = free_port()
        for t in range(10):
            a.transport.send(3, f"127.0.0.1:{port}", TimeoutNow(t, 0, 0))
        a.send(b, TimeoutNow(1, 1, 1))
        await b.wait_received(1)
        for t in range(10, 20):          # queued again, and failures not yet reported
            a.transport.send(3, f"127.0.0.1:{port}", TimeoutNow(t, 0, 0))
        assert a.transport.queued(3)[0] > 3
        failed_before = list(a.failed)
        await a.close()
        await a.close()
        a.transport.send(3, f"127.0.0.1:{port}", TimeoutNow(99, 0, 0))   # ignored
        await asyncio.sleep(0.2)        # past several retry delays: nothing may happen
        assert a.failed == failed_before
        assert a.transport.queued(3) == (0, 0)
        await wait_until(lambda: not b.transport.inbound, "b sees a's connection close")
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", a.address.split(":")[1])
        await b.close()
        with pytest.raises(InvalidError):
            await a.transport.start(1, a.address, a._receive, a._failed)
    run(run_loop, body)


def test_a_message_the_wire_refuses_is_reported_and_the_rest_sent(run_loop, caplog):
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        b = await Node(2, f"127.0.0.1:{free_port()}").start()
        bad = AppendEntries(1, 0, 0, 0, [Entry(1, 9, b"x" * 8)])        # entry type 9
        try:
            a.send(b, TimeoutNow(1, 0, 0))
            a.send(b, bad)
            a.send(b, TimeoutNow(2, 0, 0))
            await b.wait_received(2)
            await wait_until(lambda: a.failed, "the report")
            assert a.failed == [(2, bad)]
            assert [m.term for _, _, m in b.received] == [1, 2]
            assert a.transport.stats.dropped_by_reason == {"not encodable": 1}
        finally:
            await a.close()
            await b.close()
    with caplog.at_level(logging.WARNING, logger="raftpy.io.tcp"):
        run(run_loop, body)
    assert any("cannot encode" in r.getMessage() for r in caplog.records)


def test_an_empty_connection_is_quiet_and_a_reset_is_a_read_error(run_loop, caplog):
    async def body():
        b = await Node(2, f"127.0.0.1:{free_port()}").start()
        port = int(b.address.split(":")[1])
        try:
            # a probe that connects and closes without a byte: no warning
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await wait_until(lambda: b.transport.stats.connections_accepted == 1
                             and not b.transport.inbound, "the probe's close")
            # a peer that resets the connection after its handshake
            raw = socket.create_connection(("127.0.0.1", port))
            raw.sendall(wire.encode_handshake(7, "127.0.0.1:1"))
            await wait_until(lambda: len(b.transport.inbound) == 1, "the second connection")
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
            await wait_until(lambda: not b.transport.inbound, "the reset")
            stats = b.transport.stats
            assert stats.connections_read_errors == 1
            assert stats.connections_closed_malformed == 0
        finally:
            await b.close()
    with caplog.at_level(logging.WARNING, logger="raftpy.io.tcp"):
        run(run_loop, body)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "read error" in warnings[0], warnings
    assert "(server 7, 127.0.0.1:1)" in warnings[0]


def test_a_slow_reader_gets_every_message_not_reported_in_order(run_loop):
    config = Config(send_queue_max_messages=30, send_queue_max_bytes=256 * 1024,
                    connect_retry_delay_ms=50)
    total = 600

    def message(k: int) -> AppendEntries:
        return AppendEntries(k, 0, 0, 0, [Entry(1, EntryType.COMMAND, b"s" * 16384)])

    async def body():
        gate = asyncio.Event()
        expected: list[int] = []
        got: list = []

        async def slow_reader(reader, writer):
            await gate.wait()             # read nothing until every send is done
            handshake, messages = await read_frames(reader, len(expected))
            got.extend(messages)
            writer.close()
        port = free_port()
        server = await asyncio.start_server(slow_reader, "127.0.0.1", port)
        for s in server.sockets:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        a = await Node(1, f"127.0.0.1:{free_port()}", config).start()
        try:
            for k in range(total):
                a.transport.send(2, f"127.0.0.1:{port}", message(k))
                if k % 10 == 0:
                    await asyncio.sleep(0.001)
            stats = a.transport.stats
            await wait_until(lambda: len(a.failed) == stats.send_failed, "the reports")
            assert 0 < stats.send_failed < total
            failed_terms = {m.term for _, m in a.failed}
            expected.extend(k for k in range(total) if k not in failed_terms)
            gate.set()
            await wait_until(lambda: len(got) == len(expected), "the slow reader", 15)
            assert [m.term for m in got] == expected
            assert stats.dropped_by_reason == {"queue full": len(failed_terms)}
            assert a.transport.queued(2) == (0, 0)
            print(f"\ndelivered {len(expected)}, reported failed {len(failed_terms)}")
        finally:
            await a.close()
            server.close()
    run(run_loop, body)


def test_frames_split_anywhere_by_a_raw_peer_arrive_whole(run_loop, seeded_random):
    sent = every_message_type() + every_message_type(1)
    stream = wire.encode_handshake(7, "127.0.0.1:7007") + b"".join(
        bytes(p) for m in sent for p in wire.encode(m))
    cuts = sorted(seeded_random.sample(range(1, len(stream)), 150))
    chunks = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]

    async def body():
        b = await Node(2, f"127.0.0.1:{free_port()}").start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", b.address.split(":")[1])
            writer.transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0)          # let b read between the pieces
            await b.wait_received(len(sent))
            assert [canon(m) for _, _, m in b.received] == [canon(m) for m in sent]
            assert {(f, a) for f, a, _ in b.received} == {(7, "127.0.0.1:7007")}
            assert b.transport.stats.bytes_received == len(stream)
            writer.close()
        finally:
            await b.close()
    run(run_loop, body)


def test_send_many_writes_each_peers_share_at_once_in_order(run_loop, caplog):
    """send_many (the Server's path): every message arrives, in order per peer,
    each peer's share handed to its socket before the call returns (no flush
    callback later); a refused message is reported and the rest still sent."""
    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}").start()
        b = await Node(2, f"127.0.0.1:{free_port()}").start()
        c = await Node(3, f"127.0.0.1:{free_port()}").start()
        bad = AppendEntries(1, 0, 0, 0, [Entry(1, 9, b"x" * 8)])        # entry type 9
        try:
            a.send(b, TimeoutNow(1, 0, 0))          # connect both first
            a.send(c, TimeoutNow(1, 0, 0))
            await b.wait_received(1)
            await c.wait_received(1)
            batch = [(b.id, b.address, TimeoutNow(2, 0, 0)), (c.id, c.address,
                     TimeoutNow(2, 0, 0)), (b.id, b.address, bad),
                     (b.id, b.address, TimeoutNow(3, 0, 0)),
                     (c.id, c.address, TimeoutNow(3, 0, 0))]
            a.transport.send_many(batch)
            assert a.transport.queued(b.id) == (0, 0)    # handed over already
            assert a.transport.queued(c.id) == (0, 0)
            assert a.transport.stats.messages_sent == 6
            await b.wait_received(3)
            await c.wait_received(3)
            assert [m.term for _, _, m in b.received] == [1, 2, 3]
            assert [m.term for _, _, m in c.received] == [1, 2, 3]
            await wait_until(lambda: a.failed, "the report")
            assert a.failed == [(2, bad)]
            # to a peer not connected yet: queued, then sent once connected
            d = await Node(4, f"127.0.0.1:{free_port()}").start()
            try:
                a.transport.send_many([(d.id, d.address, TimeoutNow(7, 0, 0)),
                                       (d.id, d.address, TimeoutNow(8, 0, 0))])
                await d.wait_received(2)
                assert [m.term for _, _, m in d.received] == [7, 8]
            finally:
                await d.close()
        finally:
            await a.close()
            await b.close()
            await c.close()
    with caplog.at_level(logging.WARNING, logger="raftpy.io.tcp"):
        run(run_loop, body)


def test_a_snapshot_over_the_payload_limit_is_named_in_the_senders_log(run_loop, caplog):
    """libraft's format sends a snapshot in one message: one over
    message_payload_max_bytes was closed on by the follower, and only the
    follower's log said so; the leader retried it silently."""
    config = Config(connect_retry_delay_ms=50, message_payload_max_bytes=1024)

    async def body():
        a = await Node(1, f"127.0.0.1:{free_port()}", config).start()
        b = await Node(2, f"127.0.0.1:{free_port()}", config).start()
        try:
            a.send(b, InstallSnapshot(5, 9, 4, 1, CONF, b"s" * 1024))   # fits
            await b.wait_received(1)
            a.send(b, InstallSnapshot(5, 10, 4, 1, CONF, b"s" * 1025))
            await wait_until(lambda: b.transport.stats.connections_closed_malformed == 1,
                             "the follower closing on it")
        finally:
            await a.close()
            await b.close()
    with caplog.at_level(logging.WARNING, logger="raftpy.io.tcp"):
        run(run_loop, body)
    sender = [r.getMessage() for r in caplog.records
              if r.levelno == logging.WARNING and "send to" in r.getMessage()]
    assert len(sender) == 1, sender
    assert "snapshot 10 is 1025 bytes, over message_payload_max_bytes=1024" in sender[0]
