"""The in-memory Transport keeps the Transport contract (raftpy.io.interfaces)."""

from __future__ import annotations

import asyncio

import pytest
from server_harness import Cluster, cmd, machine_of

from raftpy import RaftError, State
from raftpy.core.messages import TimeoutNow
from raftpy.io.interfaces import Transport
from raftpy.io.memory import MemoryNetwork


def run(run_loop, coro_fn, limit: float = 30):
    async def bounded():
        return await asyncio.wait_for(coro_fn(), limit)
    return run_loop(bounded())


async def pair(net: MemoryNetwork):
    got: list[tuple] = []
    failed: list[tuple] = []
    a, b = net.transport(), net.transport()
    await a.start(1, "a", lambda *m: got.append(("a", *m)), lambda *f: failed.append(("a", *f)))
    await b.start(2, "b", lambda *m: got.append(("b", *m)), lambda *f: failed.append(("b", *f)))
    return a, b, got, failed


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_order_refusal_cuts_and_close(run_loop):
    async def go():
        net = MemoryNetwork()
        a, b, got, failed = await pair(net)
        assert isinstance(a, Transport)
        for term in range(1, 6):
            a.send(2, "b", TimeoutNow(term, 0, 0))
        assert got == []                          # never delivered inside send
        await settle()
        assert [m[3].term for m in got] == [1, 2, 3, 4, 5]
        assert all(m[:3] == ("b", 1, "a") for m in got)
        a.send(3, "nobody", TimeoutNow(9, 0, 0))  # refused: reported, not raised
        await settle()
        assert failed == [("a", 3, TimeoutNow(9, 0, 0))]
        net.cut(1, 2)                             # lost silently
        a.send(2, "b", TimeoutNow(10, 0, 0))
        net.cut(1, 2, fail=True)                  # lost and reported
        a.send(2, "b", TimeoutNow(11, 0, 0))
        await settle()
        assert len(got) == 5 and failed[-1] == ("a", 2, TimeoutNow(11, 0, 0))
        net.heal()
        b.send(1, "a", TimeoutNow(12, 0, 0))
        await b.close()
        a.send(2, "b", TimeoutNow(13, 0, 0))      # b closed: refused
        await settle()
        assert got[-1][0] == "a" and got[-1][3].term == 12
        assert failed[-1] == ("a", 2, TimeoutNow(13, 0, 0))
        c = net.transport()
        with pytest.raises(RaftError, match="in use"):
            await c.start(3, "a", print, print)
        await a.close()
        assert net.listeners == {}
    run(run_loop, go)


def test_a_server_down_is_reported_and_catches_up(tmp_path, run_loop):
    """Messages to a closed server come back as SendFailed; the cluster goes on
    and the server, restarted from its directory, catches up."""
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            down = next(s for s in c.servers.values() if s is not leader)
            await down.close()
            assert await leader.apply_many([cmd(i) for i in range(30)]) == list(range(1, 31))
            assert leader.state == State.LEADER
            assert leader.raft.progress[down.id].unreachable
            back = c.make(down.id)
            await c.boot(back)
            await c.converge()
            assert machine_of(back).state() == machine_of(leader).state()
        finally:
            await c.close()
    run(run_loop, go)
