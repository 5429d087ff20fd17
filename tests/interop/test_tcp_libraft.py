"""TcpTransport with real libraft's transport (spec §4.1, §4.7), over TCP on
127.0.0.1, on both event loops.

tests/interop/wirecompat.c (built by test_wire_libraft's fixture) runs
libraft's own raft_uv transport: ``send`` makes libraft connect to our
TcpTransport, write its handshake and io.send the seven messages of the spec
§4.9 capture; ``recv`` makes libraft listen and print what it decoded from
the connection our TcpTransport opens to it.  Without libraft these tests
skip with the reason (fail under CI), as the wire tests do.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

from test_wire_libraft import _expected_json, _plain, wirecompat  # noqa: F401 (a fixture)
from wire_capture import MESSAGES

from raftpy.core.config import Config
from raftpy.core.messages import AppendEntries, AppendEntriesResult, RequestVote
from raftpy.core.types import Entry
from raftpy.io.tcp import TcpTransport

TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def test_libraft_connects_to_a_tcp_transport_and_its_messages_arrive(
        run_loop, wirecompat: Path, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    async def body() -> None:
        received: list = []
        failed: list = []
        address = f"127.0.0.1:{free_port()}"
        transport = TcpTransport(Config())
        await transport.start(2, address, lambda f, a, m: received.append((f, a, m)),
                              lambda t, m: failed.append((t, m)))
        proc = await asyncio.create_subprocess_exec(
            str(wirecompat), "send", str(tmp_path), "1", "127.0.0.1:9001", "2", address,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
            assert proc.returncode == 0, err
            assert out.decode().strip() == "sent 7"
            await wait_until(lambda: len(received) == len(MESSAGES), "libraft's 7 messages")
        finally:
            if proc.returncode is None:
                proc.kill()                  # our own child, by its handle
                await proc.wait()
            await transport.close()
        assert {(f, a) for f, a, _ in received} == {(1, "127.0.0.1:9001")}
        for (_, _, message), (_, golden) in zip(received, MESSAGES, strict=True):
            if isinstance(golden, AppendEntriesResult):     # 0.15: a 24-byte header
                assert (message.term, message.rejected, message.last_log_index) == (5, 0, 8)
            else:
                assert _plain(message) == _plain(golden)
        stats = transport.stats
        assert stats.connections_closed_malformed == stats.connections_read_errors == 0
        assert failed == []
    run_loop(asyncio.wait_for(body(), TIMEOUT_S + 10))


def test_a_tcp_transport_connects_to_libraft_which_decodes_everything(
        run_loop, wirecompat: Path, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    messages = [m for _, m in MESSAGES] + [
        RequestVote(3, 7, 1, 1),
        AppendEntries(6, 9, 5, 9, [Entry(6, 1, bytes([i]) * 64) for i in range(100)]),
    ] * 3

    our_address = f"127.0.0.1:{free_port()}"

    async def body() -> list[dict]:
        libraft_address = f"127.0.0.1:{free_port()}"
        proc = await asyncio.create_subprocess_exec(
            str(wirecompat), "recv", str(tmp_path), "2", libraft_address, str(len(messages)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        failed: list = []
        transport = TcpTransport(Config())
        await transport.start(7, our_address, lambda f, a, m: None,
                              lambda t, m: failed.append((t, m)))
        try:
            assert proc.stdout is not None
            ready = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT_S)
            assert ready.strip() == b"ready"
            for m in messages:
                transport.send(2, libraft_address, m)
            out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
            assert proc.returncode == 0, err
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await transport.close()
        assert failed == []
        assert transport.stats.connects == 1
        return [json.loads(line) for line in out.decode().splitlines()]

    got = run_loop(asyncio.wait_for(body(), TIMEOUT_S + 10))
    assert len(got) == len(messages)
    for decoded, m in zip(got, messages, strict=True):
        assert decoded.pop("from_id") == 7
        assert decoded.pop("from_address") == our_address      # from our handshake
        assert decoded == _expected_json(m), m
