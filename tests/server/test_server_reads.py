"""Server.read: linearizable reads on real Servers (DiskStore on real directories;
the in-memory transport, and TCP on loopback), on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from server_harness import FAST, Cluster, Counter, TcpCluster, cmd, machine_of, run

from raftpy import NotLeaderError, ReadMode, Server
from raftpy.core.messages import ReadHeartbeat


def count(machine: Counter) -> int:
    return machine.count


def read_heartbeats(c: Cluster, server_id: int) -> int:
    return sum(1 for e in c.timeline.events  # type: ignore[union-attr]
               if e[0] == server_id and e[1] == "send" and isinstance(e[3], ReadHeartbeat))


async def settled(c: Cluster) -> Server:
    """A leader whose followers have replied (announcing the read feature)."""
    leader = await c.leader()
    await leader.apply(cmd(0))
    await c.converge()
    return leader


def test_read_sees_every_acknowledged_write_and_writes_no_entry(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await settled(c)
            for i in range(1, 21):
                await leader.apply(cmd(i))
                assert await leader.read(count) == i + 1
            last = leader.raft.log.last_index
            appends = c.storages[leader.id].appends
            values = await asyncio.gather(*[leader.read(count) for _ in range(100)])
            assert values == [21] * 100
            assert leader.raft.log.last_index == last             # no log write
            assert c.storages[leader.id].appends == appends
        finally:
            await c.close()
    run(run_loop, go)


def test_concurrent_reads_share_rounds(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path, timeline=raftpy_timeline())
        await c.start()
        try:
            leader = await settled(c)
            before = read_heartbeats(c, leader.id)
            values = await asyncio.gather(*[leader.read(count) for _ in range(500)])
            assert values == [1] * 500
            sent = read_heartbeats(c, leader.id) - before
            print(f"500 concurrent reads: {sent} ReadHeartbeats sent")
            assert 2 <= sent <= 8          # one or two rounds to 2 followers, not 500
        finally:
            await c.close()
    run(run_loop, go)


def raftpy_timeline():
    from server_harness import Timeline
    return Timeline()


def test_read_on_a_follower_names_the_leader(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await settled(c)
            follower = next(s for s in c.servers.values() if s is not leader)
            with pytest.raises(NotLeaderError) as info:
                await follower.read(count)
            assert info.value.leader_id == leader.id
            assert info.value.leader_address == leader.address
        finally:
            await c.close()
    run(run_loop, go)


def test_a_raising_read_fails_alone(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await settled(c)

            def broken(machine: Counter) -> int:
                raise KeyError("no such key")
            results = await asyncio.gather(leader.read(broken), leader.read(count),
                                           return_exceptions=True)
            assert isinstance(results[0], KeyError) and results[1] == 1
        finally:
            await c.close()
    run(run_loop, go)


def test_a_leader_cut_off_fails_its_reads_instead_of_answering(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await settled(c)
            others = [i for i in c.servers if i != leader.id]
            c.network.partition([leader.id], others)
            read = asyncio.ensure_future(leader.read(count))
            with pytest.raises(NotLeaderError):
                await asyncio.wait_for(read, 5)          # check-quorum steps it down
            c.network.heal()
            new = await c.leader()
            assert await new.read(count) == 1
        finally:
            await c.close()
    run(run_loop, go)


def test_lease_reads_need_no_round_while_the_lease_holds(tmp_path, run_loop):
    async def go():
        config = dataclasses.replace(FAST, read_mode=ReadMode.LEASE)
        c = Cluster(tmp_path, config=config, timeline=raftpy_timeline())
        await c.start()
        try:
            leader = await settled(c)
            assert await leader.read(count) == 1         # a round, which grants a lease
            before = read_heartbeats(c, leader.id)
            values = [await leader.read(count) for _ in range(50)]
            assert values == [1] * 50
            # The lease (500 - 200 ms) outlives these reads on an idle machine;
            # on a loaded one a read may need a round again, but not one each.
            assert read_heartbeats(c, leader.id) - before <= 10
        finally:
            await c.close()
    run(run_loop, go)


def test_reads_over_tcp(tmp_path, run_loop):
    """ReadHeartbeat and its result cross real sockets (raftpy's wire types)."""
    async def go():
        c = TcpCluster(tmp_path, config=FAST)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply_many([cmd(i) for i in range(10)])
            await c.converge()
            last = leader.raft.log.last_index
            values = await asyncio.gather(*[leader.read(count) for _ in range(50)])
            assert values == [10] * 50 and leader.raft.log.last_index == last
            assert machine_of(leader).count == 10
        finally:
            await c.close()
    run(run_loop, go)


def test_follower_reads_ask_the_leader_and_see_every_acknowledged_write(tmp_path, run_loop):
    async def go():
        config = dataclasses.replace(FAST, follower_reads=True)
        c = Cluster(tmp_path, config=config)
        await c.start()
        try:
            leader = await settled(c)
            follower = next(s for s in c.servers.values() if s is not leader)
            # The leader announces follower reads at its next heartbeat tick.
            await c.wait(lambda: follower.raft._reads.leader_reads[1] == leader.id,
                         "the announcement")
            for i in range(2, 12):
                await leader.apply(cmd(i))
                assert await follower.read(count) == i    # acknowledged, so seen
            values = await asyncio.gather(*[follower.read(count) for _ in range(100)])
            assert values == [11] * 100
        finally:
            await c.close()
    run(run_loop, go)


class _Stop(BaseException):
    """Not an Exception: what a read function may let out (CancelledError is one)."""


def _stop(machine: Counter) -> int:
    raise _Stop("stop")


def test_a_read_raising_a_base_exception_fails_only_that_read(tmp_path, run_loop):
    """It escaped the pass over the released reads: neither it nor the reads
    released with it ever resolved (both timed out), before the fix."""
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await settled(c)
            failing = asyncio.ensure_future(leader.read(_stop))
            other = asyncio.ensure_future(leader.read(count))
            with pytest.raises(_Stop):
                await asyncio.wait_for(failing, 5)
            assert await asyncio.wait_for(other, 5) == 1
        finally:
            await c.close()
    run(run_loop, go)
