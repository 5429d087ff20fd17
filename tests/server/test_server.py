"""Server: three real Servers (DiskStore on real directories, the in-memory
transport) on one event loop, on asyncio and on uvloop; every test bounded."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import pytest
from server_harness import FAST, Cluster, Counter, cmd, free_ports, machine_of, run

import raftpy
from raftpy import (
    BusyError,
    CantBootstrapError,
    Config,
    InvalidError,
    NotLeaderError,
    Role,
    Server,
    ShutdownError,
    State,
)
from raftpy.errors import IOError_
from raftpy.io.disk import DiskStore
from raftpy.io.memory import MemoryNetwork


def test_public_names():
    for name in ("Server", "StateMachine", "Config", "Configuration", "Role", "State",
                 "NotLeaderError", "BusyError", "ShutdownError"):
        assert name in raftpy.__all__ and hasattr(raftpy, name)
    assert os.path.exists(os.path.join(os.path.dirname(raftpy.__file__), "py.typed"))


def test_bootstrap_elect_apply_replicate(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            assert [await leader.apply(cmd(i)) for i in range(1, 6)] == [1, 2, 3, 4, 5]
            assert await leader.apply_many([cmd(i) for i in range(6, 10)]) == [6, 7, 8, 9]
            await c.converge()
            states = {machine_of(s).state() for s in c.servers.values()}
            assert len(states) == 1 and states.pop()[0] == 9
            assert leader.leader == (leader.id, leader.address)
            assert leader.term >= 2 and leader.commit_index == leader.last_applied
        finally:
            await c.close()
    run(run_loop, go)


def test_apply_on_follower_names_the_leader(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            follower = next(s for s in c.servers.values() if s is not leader)
            with pytest.raises(NotLeaderError) as info:
                await follower.apply(cmd(1))
            assert info.value.leader_id == leader.id
            assert info.value.leader_address == leader.address
            assert str(leader.id) in str(info.value) and leader.address in str(info.value)
            assert info.value.code == 7
            assert follower.leader == (leader.id, leader.address)
            # concurrent applies go to the core as one Propose: each fails on its own
            errors = await asyncio.gather(*[follower.apply(cmd(i)) for i in range(3)],
                                          return_exceptions=True)
            assert all(isinstance(e, NotLeaderError) and e.leader_id == leader.id
                       for e in errors) and len({id(e) for e in errors}) == 3
        finally:
            await c.close()
    run(run_loop, go)


def test_restart_from_disk(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        leader = await c.leader()
        await leader.apply_many([cmd(i) for i in range(20)])
        await c.converge()
        before = machine_of(leader).state()
        term = leader.term
        await c.close()
        c2 = Cluster(tmp_path)                      # same directories, new machines
        await c2.start(bootstrap=False)
        try:
            leader = await c2.leader()
            assert leader.term > term
            assert await leader.apply(cmd(99)) == before[0] + 1   # the counter continues
            await c2.converge()
            assert len({machine_of(s).state() for s in c2.servers.values()}) == 1
        finally:
            await c2.close()
    run(run_loop, go)


def test_snapshot_and_install_on_a_lagging_server(tmp_path, run_loop):
    config = Config(election_timeout_ms=500, heartbeat_timeout_ms=50, snapshot_threshold=16,
                    snapshot_trailing=4)

    async def go():
        c = Cluster(tmp_path, config=config)
        await c.start([1, 2])
        c.make(3)
        await c.servers[3].bootstrap(c.configuration)   # bootstrapped, never started
        await c.wait(lambda: any(s.state == State.LEADER for s in c.servers.values()
                                 if s.id != 3), "a leader of two")
        leader = next(s for s in c.servers.values() if s.state == State.LEADER)
        for k in range(10):
            await leader.apply_many([cmd(10 * k + i) for i in range(10)])
        await c.wait(lambda: all(machine_of(c.servers[i]).snapshots for i in (1, 2)),
                     "snapshots on both")
        assert c.storages[leader.id].snapshots_put
        # The put is recorded when it starts; the leader drops the entries the
        # snapshot covers only once it is stored.  Until then server 3 (which
        # has entry 1) could still be sent entry 2 onwards (it once was).
        await c.wait(lambda: leader.raft.log.offset > 1, "the leader's log compacted")
        await c.boot(c.servers[3])
        try:
            await c.converge()
            third = machine_of(c.servers[3])
            assert third.restores >= 1                   # caught up by InstallSnapshot
            assert third.state() == machine_of(leader).state()
            assert third.count == 100
        finally:
            await c.close()
    run(run_loop, go)


def test_add_assign_remove(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply_many([cmd(i) for i in range(5)])
            fourth = c.make(4)
            await c.boot(fourth)                      # empty: waits to be added
            await leader.add(4, c.address(4))
            await leader.assign(4, Role.VOTER)
            conf = leader.raft.configuration
            assert conf.role_of(4) == Role.VOTER
            assert await leader.apply(cmd(5)) == 6
            await c.converge()
            assert machine_of(fourth).state() == machine_of(leader).state()
            victim = next(s for s in c.servers.values() if s is not leader and s.id != 4)
            await leader.remove(victim.id)
            assert leader.raft.configuration.get(victim.id) is None
            assert await leader.apply(cmd(6)) == 7
            with pytest.raises(raftpy.BadIdError):
                await leader.remove(victim.id)
        finally:
            await c.close()
    run(run_loop, go)


def test_transfer(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply(cmd(1))
            target = next(s for s in c.servers.values() if s is not leader)
            assert await leader.transfer(target.id) == target.id
            new = await c.leader()
            assert new is target
            assert await target.apply(cmd(2)) == 2
        finally:
            await c.close()
    run(run_loop, go)


def test_barrier(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            applies = [asyncio.ensure_future(leader.apply(cmd(i))) for i in range(50)]
            await asyncio.sleep(0)                   # the tasks submit their applies
            index = await leader.barrier()
            assert machine_of(leader).count == 50     # applied before the barrier was
            assert leader.last_applied >= index
            assert sorted(await asyncio.gather(*applies)) == list(range(1, 51))
        finally:
            await c.close()
    run(run_loop, go)


def test_busy_over_pending_requests_max_and_double_bootstrap(tmp_path, run_loop):
    config = Config(election_timeout_ms=500, heartbeat_timeout_ms=50, pending_requests_max=4)

    async def go():
        c = Cluster(tmp_path, config=config)
        await c.start()
        try:
            leader = await c.leader()
            first = [asyncio.ensure_future(leader.apply(cmd(i))) for i in range(4)]
            await asyncio.sleep(0)                   # let them submit
            with pytest.raises(BusyError):
                await leader.apply(cmd(9))
            assert sorted(await asyncio.gather(*first)) == [1, 2, 3, 4]
            assert await leader.apply(cmd(5)) == 5   # room again
            with pytest.raises(BusyError):
                await leader.bootstrap(c.configuration)
        finally:
            await c.close()
        fresh = Server(9, "127.0.0.1:9009", str(tmp_path / "9"), Counter(), FAST,
                       storage=DiskStore(str(tmp_path / "9")),
                       transport=MemoryNetwork().transport())
        os.makedirs(tmp_path / "9", exist_ok=True)
        await fresh.bootstrap(c.configuration)
        with pytest.raises(CantBootstrapError):
            await fresh.bootstrap(c.configuration)
        await fresh.close()
    run(run_loop, go)


def test_shutdown_fails_pending_and_later_requests(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        leader = await c.leader()
        others = [i for i in c.servers if i != leader.id]
        c.network.partition([leader.id], others)     # nothing commits now
        pending = asyncio.ensure_future(leader.apply(cmd(1)))
        await asyncio.sleep(0)
        await leader.close()
        with pytest.raises(ShutdownError):
            await pending
        with pytest.raises(ShutdownError):
            await leader.apply(cmd(2))
        with pytest.raises(ShutdownError):
            await leader.barrier()
        assert leader.state == State.UNAVAILABLE
        await c.close()
    run(run_loop, go)


def test_invalid_command_is_refused_before_anything_is_appended(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            last = leader.raft.log.last_index
            with pytest.raises(InvalidError):
                await leader.apply(b"12345")
            with pytest.raises(InvalidError):
                await leader.apply_many([cmd(1), b"xyz"])
            assert leader.raft.log.last_index == last
            assert await leader.apply(cmd(1)) == 1
        finally:
            await c.close()
    run(run_loop, go)


def test_raising_state_machine_fails_only_that_request(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            assert await leader.apply(cmd(1)) == 1
            with pytest.raises(ValueError, match="boom"):
                await leader.apply(b"boom0000")
            assert await leader.apply(cmd(2)) == 2          # the next entry is applied
            with pytest.raises(ValueError):
                await leader.apply_many([cmd(3), b"boom1111", cmd(4)])
            got = await leader.apply_many([cmd(5), b"boom2222"], return_exceptions=True)
            assert got[0] == 5 and isinstance(got[1], ValueError)
            await c.converge()
            assert len({machine_of(s).state() for s in c.servers.values()}) == 1
            assert leader.last_applied == leader.commit_index
        finally:
            await c.close()
    run(run_loop, go)


class SlowSnapshotCounter(Counter):
    """An async snapshot: copies the state before its first await, then waits for
    the test to let it finish."""

    release: asyncio.Event | None = None
    started: asyncio.Event | None = None

    async def snapshot(self) -> bytes:  # type: ignore[override]
        state = self.state()                    # the state at the snapshot's index
        assert self.release is not None and self.started is not None
        self.started.set()
        await self.release.wait()
        self.snapshots += 1
        import struct
        return struct.pack("<QQ", *state)


def test_async_snapshot_while_serving(tmp_path, run_loop):
    async def go():
        SlowSnapshotCounter.release = asyncio.Event()
        SlowSnapshotCounter.started = asyncio.Event()
        c = Cluster(tmp_path, machine=SlowSnapshotCounter)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply_many([cmd(i) for i in range(10)])
            taking = asyncio.ensure_future(leader.take_snapshot())
            await SlowSnapshotCounter.started.wait()
            index = leader.last_applied
            # the loop keeps serving (and applying) while the snapshot is suspended
            assert await leader.apply_many([cmd(i) for i in range(10, 20)]) == list(
                range(11, 21))
            assert not taking.done()
            SlowSnapshotCounter.release.set()
            assert await taking == index
            put = c.storages[leader.id].snapshots_put[-1]
            assert put.index == index
            import struct
            assert struct.unpack("<QQ", put.data)[0] == 10   # the state at the index
            assert leader.raft.snapshot is not None and leader.raft.snapshot.index == index
        finally:
            await c.close()
    run(run_loop, go)


def test_take_snapshot_with_nothing_new_returns_zero(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply(cmd(1))
            index = await leader.take_snapshot()
            assert index == leader.raft.snapshot.index > 0
            assert await leader.take_snapshot() == 0
        finally:
            await c.close()
    run(run_loop, go)


def test_hard_state_failure_makes_the_server_unavailable(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path, timeline=None)
        c.make(1)
        await c.servers[1].bootstrap(c.configuration)
        c.storages[1].fail_hard_state = IOError_("disk on fire")
        await c.servers[1].start()
        await c.start([2, 3])
        try:
            await c.wait(lambda: c.servers[1].state == State.UNAVAILABLE and any(
                s.state == State.LEADER for s in c.servers.values()), "1 unavailable")
            # it sent nothing in a term it could not persist
            assert c.transports[1].sent == {}
            assert c.storages[1].inner.term == 1             # nothing newer reached the disk
            leader = next(s for s in c.servers.values() if s.state == State.LEADER)
            assert await leader.apply(cmd(1)) == 1           # the other two go on
        finally:
            await c.close()
    run(run_loop, go)


def test_persist_failure_fails_the_request_and_the_leader_steps_down(tmp_path, run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            assert await leader.apply(cmd(1)) == 1
            c.storages[leader.id].fail_append = IOError_("no more disk")
            with pytest.raises(IOError_, match="no more disk"):
                await leader.apply(cmd(2))
            c.storages[leader.id].fail_append = None
            await c.wait(lambda: leader.state != State.LEADER or leader.term > 2,
                         "step down")
            new = await c.leader()
            # the failed entry may still commit: the followers stored it (libraft too)
            assert await new.apply(cmd(3)) in (2, 3)
            await c.converge()
            assert len({machine_of(s).state() for s in c.servers.values()}) == 1
        finally:
            await c.close()
    run(run_loop, go)


TRACE_SCRIPT = """
import asyncio, os, struct, sys
sys.path.insert(0, sys.argv[2])
from server_harness import Cluster, cmd
async def go():
    c = Cluster(sys.argv[1], n=1)
    await c.start()
    leader = await c.leader()
    assert await leader.apply(cmd(1)) == 1
    await c.close()
asyncio.run(asyncio.wait_for(go(), 30))
"""


def test_trace_lines_from_the_environment(tmp_path):
    """RAFTPY_TRACE=1 prints the core's trace lines, with time and server id, on stderr."""
    env = dict(os.environ, RAFTPY_TRACE="1")
    out = subprocess.run([sys.executable, "-c", TRACE_SCRIPT, str(tmp_path),
                          os.path.dirname(__file__)], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert any(re.fullmatch(r" *\d+ 1: start term=1 .*", line) for line in lines), lines
    assert any(line.endswith("1: became leader term=1") for line in lines), lines
    env.pop("RAFTPY_TRACE")
    quiet = subprocess.run([sys.executable, "-c", TRACE_SCRIPT, str(tmp_path / "q"),
                            os.path.dirname(__file__)], env=env, capture_output=True,
                           text=True, timeout=60)
    assert quiet.returncode == 0 and "became leader" not in quiet.stderr, quiet.stderr


def test_close_cancels_a_snapshot_that_never_finishes(tmp_path, run_loop):
    async def go():
        SlowSnapshotCounter.release = asyncio.Event()       # never set
        SlowSnapshotCounter.started = asyncio.Event()
        c = Cluster(tmp_path, machine=SlowSnapshotCounter)
        await c.start()
        leader = await c.leader()
        await leader.apply(cmd(1))
        taking = asyncio.ensure_future(leader.take_snapshot())
        await SlowSnapshotCounter.started.wait()
        await c.close()                                      # bounded by run()'s limit
        with pytest.raises(ShutdownError):
            await taking
        assert c.storages[leader.id].snapshots_put == []
    run(run_loop, go, limit=20)


def test_async_with_starts_and_closes(tmp_path, run_loop):
    async def go():
        path = str(tmp_path / "one")
        os.makedirs(path)
        conf = raftpy.Configuration.of((1, "127.0.0.1:9001"))
        machine = Counter()
        server = Server(1, "127.0.0.1:9001", path, machine, FAST,
                        transport=MemoryNetwork().transport())
        await server.bootstrap(conf)
        async with server as s:
            assert s is server
            while s.state != State.LEADER:
                await s.changed()
            assert await s.apply(cmd(7)) == 1
            assert s.leader == (1, "127.0.0.1:9001")
        assert server.state == State.UNAVAILABLE
        with pytest.raises(ShutdownError):
            await server.apply(cmd(8))
        async with Server(1, "127.0.0.1:9001", path, Counter(), FAST,
                          transport=MemoryNetwork().transport()) as again:
            while again.state != State.LEADER:
                await again.changed()
            assert await again.apply(cmd(8)) == 2            # replayed from the default store
    run(run_loop, go)


def test_restart_from_a_snapshot(tmp_path, run_loop):
    config = Config(election_timeout_ms=500, heartbeat_timeout_ms=50, snapshot_threshold=16,
                    snapshot_trailing=4)

    async def go():
        c = Cluster(tmp_path, config=config)
        await c.start()
        leader = await c.leader()
        for k in range(5):
            await leader.apply_many([cmd(10 * k + i) for i in range(10)])
        await c.converge()
        await c.wait(lambda: all(s.raft.snapshot is not None for s in c.servers.values()),
                     "a snapshot everywhere")
        state = machine_of(leader).state()
        await c.close()
        c2 = Cluster(tmp_path, config=config)
        await c2.start(bootstrap=False)
        try:
            assert all(machine_of(s).restores == 1 for s in c2.servers.values())
            leader = await c2.leader()
            assert await leader.apply(cmd(1000)) == state[0] + 1
            await c2.converge()
            assert len({machine_of(s).state() for s in c2.servers.values()}) == 1
        finally:
            await c2.close()
    run(run_loop, go)


def test_default_io_three_servers_over_tcp(tmp_path, run_loop):
    """The defaults: DiskStore(data_dir) and TcpTransport(config) on loopback."""
    pytest.importorskip("raftpy.io.tcp", reason="raftpy.io.tcp (branch tcp) not merged yet")

    async def go():
        ports = free_ports(3)
        members = [(i + 1, f"127.0.0.1:{port}") for i, port in enumerate(ports)]
        conf = raftpy.Configuration.of(*members)
        servers = []
        for server_id, address in members:
            path = tmp_path / str(server_id)
            path.mkdir()
            server = Server(server_id, address, path, Counter(), FAST)
            await server.bootstrap(conf)
            await server.start()
            servers.append(server)
        try:
            while not any(s.state == State.LEADER for s in servers):
                await asyncio.wait([asyncio.ensure_future(s.changed()) for s in servers],
                                   return_when=asyncio.FIRST_COMPLETED)
            leader = next(s for s in servers if s.state == State.LEADER)
            assert await leader.apply_many([cmd(i) for i in range(100)]) == list(
                range(1, 101))
            while not all(s.last_applied == leader.commit_index for s in servers):
                await asyncio.wait([asyncio.ensure_future(s.changed()) for s in servers],
                                   return_when=asyncio.FIRST_COMPLETED)
            assert len({s.state_machine.state() for s in servers}) == 1
        finally:
            for server in servers:
                await server.close()
    run(run_loop, go)


class BrokenTransport:
    """A transport with a bug: send raises once armed."""

    def __init__(self, inner):
        self.inner = inner
        self.armed = False

    async def start(self, *args):
        await self.inner.start(*args)

    def send(self, to_id, to_address, message):
        if self.armed:
            raise RuntimeError("transport bug")
        self.inner.send(to_id, to_address, message)

    async def close(self):
        await self.inner.close()


def test_an_internal_error_fails_requests_instead_of_hanging(tmp_path, run_loop, caplog):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            broken = BrokenTransport(c.transports[leader.id].inner)
            c.transports[leader.id].inner = broken
            broken.armed = True
            with pytest.raises(raftpy.RaftError, match="internal error.*transport bug"):
                await leader.apply(cmd(1))
            with pytest.raises(raftpy.RaftError, match="internal error"):
                await leader.apply(cmd(2))
        finally:
            await c.close()                                  # still closes cleanly
    run(run_loop, go)
    assert "internal error; the server stops" in caplog.text


def test_a_new_server_added_after_compaction_catches_up_by_snapshot(tmp_path, run_loop):
    config = Config(election_timeout_ms=500, heartbeat_timeout_ms=50, snapshot_threshold=16,
                    snapshot_trailing=4)

    async def go():
        c = Cluster(tmp_path, config=config)
        await c.start()
        try:
            leader = await c.leader()
            for k in range(6):
                await leader.apply_many([cmd(10 * k + i) for i in range(10)])
            await c.wait(lambda: leader.raft.log.offset > 1, "the leader's log compacted")
            fourth = c.make(4)
            await c.boot(fourth)                             # empty, never bootstrapped
            await leader.add(4, c.address(4))
            await leader.assign(4, Role.VOTER)
            await c.converge()
            assert machine_of(fourth).restores >= 1          # InstallSnapshot, then entries
            assert machine_of(fourth).state() == machine_of(leader).state()
            assert machine_of(fourth).count == 60
        finally:
            await c.close()
    run(run_loop, go)


def test_recover_a_lost_majority(tmp_path, run_loop):
    """raft_recover on the one survivor: it forces a configuration of itself and
    leads alone, with everything it had."""
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        leader = await c.leader()
        await leader.apply_many([cmd(i) for i in range(10)])
        await c.converge()
        await c.close()
        survivor = c.make(1)
        await c.boot(survivor)
        with pytest.raises(BusyError):                   # only a stopped server recovers
            await survivor.recover(c.configuration)
        await survivor.close()
        survivor = c.make(1)
        index = await survivor.recover(raftpy.Configuration.of((1, c.address(1))))
        assert index > 10
        await c.boot(survivor)
        try:
            await c.wait(lambda: survivor.state == State.LEADER, "the survivor leads")
            assert await survivor.apply(cmd(10)) == 11
            assert survivor.raft.configuration.voter_ids == (1,)
        finally:
            await survivor.close()
    run(run_loop, go)


# -- found by the outside review of the shell ---------------------------------------


class _SlowRestore(Counter):
    async def restore(self, snapshot: bytes) -> None:  # type: ignore[override]
        await asyncio.sleep(0.3)
        super().restore(snapshot)


def test_close_during_start_wins_and_leaves_nothing_running(tmp_path, run_loop):
    # close() while start() awaited an async restore: start went on after
    # close returned and left the transport listening (review F2).
    async def go():
        net = MemoryNetwork()
        address = "m1"
        conf = raftpy.Configuration.of((1, address))
        first = Server(1, address, tmp_path, Counter(), FAST, transport=net.transport())
        await first.bootstrap(conf)
        await first.start()
        while first.state != State.LEADER:
            await first.changed()
        await first.apply(cmd(1))
        assert await first.take_snapshot() > 0
        await first.close()
        transport = net.transport()
        again = Server(1, address, tmp_path, _SlowRestore(), FAST, transport=transport)
        start = asyncio.ensure_future(again.start())
        await asyncio.sleep(0.1)                  # inside restore
        await again.close()
        with pytest.raises(ShutdownError):
            await start
        assert again.state == State.UNAVAILABLE
        with pytest.raises(ShutdownError):
            await again.apply(cmd(2))
        # Nothing listens: the address is free for a new transport.
        probe = net.transport()
        await probe.start(9, address, lambda *a: None, lambda *a: None)
        await probe.close()
    run(run_loop, go)


class _FailingSnapshotPut(DiskStore):
    async def snapshot_put(self, trailing, snapshot):
        raise IOError_("disk full (injected)")


def test_a_failed_snapshot_write_is_not_a_snapshot_taken(tmp_path, run_loop):
    # The shell reported SnapshotTaken with data although snapshot_put failed:
    # the core compacted its log and take_snapshot returned the index (review F3).
    async def go():
        net = MemoryNetwork()
        config = Config(election_timeout_ms=500, heartbeat_timeout_ms=50, snapshot_trailing=0)
        s = Server(1, "m1", tmp_path, Counter(), config,
                   storage=_FailingSnapshotPut(str(tmp_path)), transport=net.transport())
        await s.bootstrap(raftpy.Configuration.of((1, "m1")))
        await s.start()
        try:
            while s.state != State.LEADER:
                await s.changed()
            for i in range(5):
                await s.apply(cmd(i))
            assert await s.take_snapshot() == 0
            assert s.raft.snapshot is None and s.raft.log.snapshot_index == 0
            assert await s.storage.snapshot_get() is None
            assert await s.apply(cmd(9)) is not None        # still serving
        finally:
            await s.close()
    run(run_loop, go)


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "wide-memoryview"])
def test_a_command_changed_after_apply_reaches_every_server_as_it_was(tmp_path, run_loop,
                                                                       kind):
    """A command is taken as its bytes at the call: a caller that reuses its
    buffer afterwards changes nothing in the log.  Server 3 is down while the
    command commits and catches up afterwards from the leader's log; it must
    apply what the others applied.  A memoryview of wide items (8-byte
    floats) is its bytes too, all of them, not one byte per item."""
    import array

    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            assert await leader.apply(cmd(1)) == 1
            down = next(i for i in c.servers if i != leader.id)
            await c.servers[down].close()
            if kind == "wide-memoryview":
                buf = array.array("d", [1.5, 2.5])
                command: bytes | bytearray | memoryview = memoryview(buf)
                original = buf.tobytes()
            else:
                buf = bytearray(cmd(7) + cmd(8))
                command = buf if kind == "bytearray" else memoryview(buf)
                original = bytes(buf)
            assert len(original) == 16
            assert await leader.apply(command) == 2            # committed by two servers
            if isinstance(buf, array.array):
                buf[0] = 9.5                                   # the caller reuses its buffer
            else:
                buf[0:1] = b"X"
            assert bytes(leader.raft.log.get(leader.raft.log.last_index).payload) == original
            await c.boot(c.make(down))                       # catches up from the leader
            await c.converge()
            states = {i: machine_of(s).state() for i, s in c.servers.items()}
            assert len(set(states.values())) == 1, states
        finally:
            await c.close()
    run(run_loop, go)


class _ViewMachine(Counter):
    """A Counter whose snapshot is a view of a buffer it keeps and reuses: the
    buffer is overwritten in the next loop iteration (as the next apply into
    a reused buffer would do)."""

    def snapshot(self) -> bytes:
        buf = bytearray(super().snapshot())
        asyncio.get_running_loop().call_soon(buf.__setitem__, slice(0, 16), b"\xff" * 16)
        return memoryview(buf)  # type: ignore[return-value]


def test_a_snapshot_view_reused_by_its_machine_is_written_as_it_was(tmp_path, run_loop):
    """The Server takes the bytes of a snapshot the machine returns as a view at
    once, not when its background write starts: the leader restarted from
    its snapshot has the state it had at the snapshot's index."""
    async def go():
        c = Cluster(tmp_path, machine=_ViewMachine)
        await c.start()
        try:
            leader = await c.leader()
            for i in range(1, 4):
                assert await leader.apply(cmd(i)) == i
            state = machine_of(leader).state()
            assert await leader.take_snapshot() > 0
            lid = leader.id
            await leader.close()
            restarted = c.make(lid)
            await c.boot(restarted)
            assert machine_of(restarted).restores == 1
            assert machine_of(restarted).state() == state
        finally:
            await c.close()
    run(run_loop, go)


def test_add_refuses_an_id_no_configuration_can_hold_and_the_server_serves_on(tmp_path,
                                                                             run_loop):
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply(cmd(1))
            for bad in (2**64, 1.5, "4"):
                with pytest.raises(raftpy.BadIdError):
                    await leader.add(bad, "127.0.0.1:9100")
            assert leader.raft.configuration == c.configuration
            assert await leader.apply(cmd(2)) == 2
        finally:
            await c.close()
    run(run_loop, go)


def test_add_refuses_an_address_the_configuration_encoding_cannot_carry(tmp_path, run_loop):
    """An address is a NUL-terminated UTF-8 string in the encoding (spec §3.3): one
    with a NUL in it decoded as a different configuration on every follower (which
    then stopped, and could not restart); a non-str or unencodable one raised in
    the leader's step."""
    async def go():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply(cmd(1))
            for bad in ("127.0.0.1\0:9100", b"127.0.0.1:9100", "\udcff:9100", None):
                with pytest.raises(InvalidError):
                    await leader.add(4, bad)
            assert leader.raft.configuration == c.configuration
            assert await leader.apply(cmd(2)) == 2
            await c.converge()
            assert all(s._error is None for s in c.servers.values())
        finally:
            await c.close()
    run(run_loop, go)


def test_removing_the_only_server_is_refused_and_it_serves_on(tmp_path, run_loop):
    """An empty configuration has no encoding (libraft asserts n > 0): the core's
    encode raised AssertionError in its step and the server stopped with an
    'internal error' for this and every later request."""
    async def go():
        c = Cluster(tmp_path, n=1)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply(cmd(1))
            with pytest.raises(InvalidError):
                await leader.remove(leader.id)
            assert leader.raft.configuration == c.configuration
            assert await leader.apply(cmd(2)) == 2
        finally:
            await c.close()
    run(run_loop, go)


def test_a_command_no_peer_can_receive_is_refused_before_it_blocks_the_log(tmp_path,
                                                                           run_loop):
    """An AppendEntries carries at least one entry, and a raftpy peer closes the
    connection on a payload over Config.message_payload_max_bytes: a command
    longer than that was appended, never reached a follower, and the cluster
    had no leader from then on (LeadershipLostError, then NotLeaderError for
    every later request, before the fix)."""
    from server_harness import TcpCluster
    config = Config(election_timeout_ms=500, heartbeat_timeout_ms=50,
                    message_payload_max_bytes=64 * 1024)

    async def go():
        c = TcpCluster(tmp_path, config=config)
        await c.start()
        try:
            leader = await c.leader()
            assert await leader.apply(cmd(1)) == 1
            with pytest.raises(raftpy.TooBigError):
                await asyncio.wait_for(leader.apply(bytes(128 * 1024)), 5)
            with pytest.raises(raftpy.TooBigError):
                await asyncio.wait_for(leader.apply_many([cmd(2), bytes(128 * 1024)]), 5)
            assert await asyncio.wait_for(leader.apply(bytes(32 * 1024)), 5) == 2
            await c.converge()
        finally:
            await c.close()
    run(run_loop, go)


class _IntSnapshotCounter(Counter):
    """A machine whose async snapshot returns its count, not bytes (a bug of its own)."""

    async def snapshot(self):  # type: ignore[override]
        return self.count


def test_an_async_snapshot_that_is_not_bytes_is_not_a_snapshot_taken(tmp_path, run_loop):
    """bytes(5) is five zero bytes: an async snapshot() returning an int was written
    as that, reported taken, and the log compacted behind it (take_snapshot
    returned its index, and a restart restored the zeros), before the fix."""
    async def go():
        config = Config(election_timeout_ms=500, heartbeat_timeout_ms=50, snapshot_trailing=0)
        c = Cluster(tmp_path, n=1, config=config, machine=_IntSnapshotCounter)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply_many([cmd(i) for i in range(5)])
            assert await leader.take_snapshot() == 0
            assert leader.raft.snapshot is None
            assert await leader.storage.snapshot_get() is None
            assert await leader.apply(cmd(9)) == 6
        finally:
            await c.close()
    run(run_loop, go)


class _Stop(BaseException):
    """Not an Exception: what a machine's apply may let out (CancelledError is one)."""


class _StoppingCounter(Counter):
    def apply(self, command: bytes) -> object:
        if command == b"stop!!!!":
            raise _Stop("stop")
        return super().apply(command)


def test_an_apply_raising_a_base_exception_fails_only_that_request(tmp_path, run_loop):
    """It escaped the apply pass: the entries after it in that pass were never
    applied on any server (last_applied counted them), and the request's
    future never resolved (apply_many hung), before the fix."""
    async def go():
        c = Cluster(tmp_path, machine=_StoppingCounter)
        await c.start()
        try:
            leader = await c.leader()
            results = await asyncio.wait_for(leader.apply_many(
                [cmd(1), b"stop!!!!", cmd(2)], return_exceptions=True), 5)
            assert results[0] == 1 and isinstance(results[1], _Stop) and results[2] == 2
            assert await asyncio.wait_for(leader.apply(cmd(3)), 5) == 3
            await c.converge()
            assert {machine_of(s).state() for s in c.servers.values()} == {
                machine_of(leader).state()}
        finally:
            await c.close()
    run(run_loop, go)


@pytest.mark.parametrize("bad", [0, -1, 2**64, 1.0, "1", True, None])
def test_a_server_id_the_wire_cannot_carry_is_refused_at_construction(tmp_path, bad):
    """Ids travel as u64 in every message and on disk: 2**64 was accepted,
    though no message or vote record can carry it; a str or None raised a
    TypeError from a comparison, a float or bool was taken."""
    with pytest.raises(InvalidError, match="server id"):
        raftpy.Server(bad, "127.0.0.1:9100", tmp_path, Counter())
    assert raftpy.Server(2**64 - 1, "127.0.0.1:9100", tmp_path, Counter()).id == 2**64 - 1


def test_entries_that_each_fit_a_peer_reach_it_however_many_are_in_flight(tmp_path, run_loop):
    """Every command fits message_payload_max_bytes, but an AppendEntries of
    several of them did not: the follower closed the connection on it, the
    leader sent the same range again, and nothing committed."""
    from server_harness import TcpCluster
    config = Config(election_timeout_ms=500, heartbeat_timeout_ms=50,
                    message_payload_max_bytes=64 * 1024)

    async def go():
        c = TcpCluster(tmp_path, config=config)
        await c.start()
        try:
            leader = await c.leader()
            assert await leader.apply(cmd(1)) == 1
            big = [bytes([i]) * (40 * 1024) for i in range(2, 12)]
            results = await asyncio.wait_for(
                asyncio.gather(*(leader.apply(b) for b in big)), 10)
            assert sorted(results) == list(range(2, 12))
            await asyncio.wait_for(c.converge(), 10)
        finally:
            await c.close()
    run(run_loop, go)
