"""BlockingServer: real Servers (DiskStore, TcpTransport on loopback) driven from plain
threads, each on its own loop thread, on uvloop and on the plain asyncio loop.
Many threads, timeouts, close from another thread, errors after close; every test
bounded (each blocking call has a timeout, each thread is joined with one)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

import pytest
from server_harness import FAST, Counter, cmd, free_ports

from raftpy import (
    BlockingServer,
    Configuration,
    InvalidError,
    NotFoundError,
    NotLeaderError,
    Server,
    ShutdownError,
    State,
)
from raftpy.io.tcp import TcpTransport

CALL_S = 20.0


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request):
    return request.param



def wait_until(bs: BlockingServer, predicate: Callable[[Server], bool], what: str,
               timeout_s: float = CALL_S) -> None:
    """Wait on bs's loop, woken by each batch it carries out (no polling)."""
    async def until(server: Server) -> None:
        while not predicate(server):
            await server.changed()
    try:
        bs.call(until, timeout_s, what)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def make_cluster(tmp_path, loop_kind: str, n: int) -> list[BlockingServer]:
    ports = free_ports(n)
    conf = Configuration.of(*[(i + 1, f"127.0.0.1:{p}") for i, p in enumerate(ports)])
    servers = []
    try:
        for i, port in enumerate(ports, start=1):
            path = os.path.join(tmp_path, str(i))
            os.makedirs(path)
            bs = BlockingServer(i, f"127.0.0.1:{port}", path, Counter(), FAST,
                                transport=TcpTransport(FAST), loop=loop_kind,
                                default_timeout_s=CALL_S)
            servers.append(bs)
            bs.bootstrap(conf)
            bs.start()
    except BaseException:
        close_all(servers)
        raise
    return servers


def leader_of(servers: list[BlockingServer]) -> BlockingServer:
    deadline = time.monotonic() + CALL_S
    for bs in servers:           # each waits for its own view: one leader, agreed
        wait_until(bs, lambda s: s.leader[0] != 0, f"server {bs.server.id} knows a leader",
                   max(0.1, deadline - time.monotonic()))
    ids = {bs.leader[0] for bs in servers}
    assert len(ids) == 1, ids
    leader = servers[ids.pop() - 1]
    wait_until(leader, lambda s: s.state == State.LEADER, "leader's state")
    return leader


def close_all(servers: list[BlockingServer]) -> None:
    for bs in servers:
        bs.close()


def run_threads(n: int, target: Callable[[int], None], timeout_s: float = 60) -> None:
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)
    threads = [threading.Thread(target=wrapped, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "threads still running"
    if errors:
        raise errors[0]


def test_many_threads_apply_batched_on_a_cluster(tmp_path, loop_kind):
    servers = make_cluster(tmp_path, loop_kind, 3)
    try:
        leader = leader_of(servers)
        threads, each = 8, 150
        results: list[list[int]] = [[] for _ in range(threads)]

        def client(i: int) -> None:
            for k in range(each):
                results[i].append(leader.apply(cmd(k), timeout_s=CALL_S))
        run_threads(threads, client)
        flat = sorted(v for r in results for v in r)
        assert flat == list(range(1, threads * each + 1))     # each count exactly once
        assert all(r == sorted(r) for r in results)           # in order per thread
        print(f"{threads * each} applies in {leader.batches} batches")
        assert leader.batches < threads * each, "applies from threads were not batched"
        assert leader.apply_many([cmd(1), cmd(2)]) == [threads * each + 1, threads * each + 2]
        index = leader.barrier()
        assert index >= threads * each + 2
        for bs in servers:
            wait_until(bs, lambda s, i=index: s.last_applied >= i, "convergence")
        states = {bs.server.state_machine.state() for bs in servers}
        assert len(states) == 1
        m = leader.metrics()
        assert m.state == "LEADER" and m.entries_appended >= threads * each
        assert leader.term == m.term and leader.commit_index >= index
    finally:
        close_all(servers)


def test_follower_names_the_leader_and_quorum_loss_times_out(tmp_path, loop_kind):
    servers = make_cluster(tmp_path, loop_kind, 3)
    try:
        leader = leader_of(servers)
        follower = next(bs for bs in servers if bs is not leader)
        with pytest.raises(NotLeaderError) as info:
            follower.apply(cmd(1))
        assert info.value.leader_id == leader.server.id
        for bs in servers:
            if bs is not leader:
                bs.close()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"apply: no result within 0.3 s"):
            leader.apply(cmd(2), timeout_s=0.3)
        assert time.monotonic() - started < 5
        with pytest.raises(TimeoutError, match=r"barrier: no answer within 0.3 s"):
            leader.barrier(timeout_s=0.3)
    finally:
        close_all(servers)


def test_single_server_operations_and_context_manager(tmp_path, loop_kind):
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    bs = BlockingServer(1, address, tmp_path, Counter(), FAST, loop=loop_kind,
                        transport=TcpTransport(FAST), default_timeout_s=CALL_S)
    bs.bootstrap(Configuration.of((1, address)))
    with bs:
        wait_until(bs, lambda s: s.state == State.LEADER, "self-election")
        assert bs.apply(cmd(1)) == 1
        with pytest.raises(InvalidError, match="multiple of 8"):
            bs.apply(b"short")
        with pytest.raises(ValueError, match="boom"):     # the state machine raised
            bs.apply(b"boom" + bytes(4))
        assert bs.apply(cmd(2)) == 2                      # the server goes on
        assert bs.take_snapshot() >= 3
        assert bs.metrics().snapshots_taken == 1
        with pytest.raises(NotFoundError, match="no other voting server"):
            bs.transfer(0)                                # errors cross the thread
        assert bs.leader == (1, address)
    assert bs.closed and bs.state == State.UNAVAILABLE
    bs.close()                                            # again: nothing happens
    for call in (lambda: bs.apply(cmd(3)), bs.barrier, bs.metrics, bs.start,
                 lambda: bs.apply_many([cmd(3)])):
        with pytest.raises(ShutdownError, match="closed"):
            call()


def test_close_from_another_thread_fails_waiting_applies(tmp_path, loop_kind):
    servers = make_cluster(tmp_path, loop_kind, 3)
    try:
        leader = leader_of(servers)
        for bs in servers:                  # no quorum: applies wait
            if bs is not leader:
                bs.close()
        outcomes: list[BaseException | object] = []
        started = threading.Barrier(5)

        def client(i: int) -> None:
            started.wait(CALL_S)
            try:
                outcomes.append(leader.apply(cmd(i), timeout_s=CALL_S))
            except BaseException as exc:
                outcomes.append(exc)

        def closer(_: int) -> None:
            started.wait(CALL_S)
            wait_until(leader, lambda s: len(s._requests) >= 1, "applies pending")
            leader.close()
        run_threads(5, lambda i: closer(i) if i == 4 else client(i))
        assert len(outcomes) == 4
        assert all(isinstance(o, ShutdownError) for o in outcomes), outcomes
        with pytest.raises(ShutdownError):
            leader.apply(cmd(9))
    finally:
        close_all(servers)


def test_blocking_call_from_the_loop_thread_is_refused(tmp_path, loop_kind):
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    with BlockingServer(1, address, tmp_path, Counter(), FAST, loop=loop_kind,
                        default_timeout_s=CALL_S) as bs:
        async def nested(server: Server) -> None:
            bs.apply(cmd(1))
        with pytest.raises(RuntimeError, match="own loop thread"):
            bs.call(nested)


def test_bad_loop_kind():
    with pytest.raises(ValueError, match="loop is"):
        BlockingServer(1, "127.0.0.1:1", "/nonexistent", Counter(), loop="trio")


def test_close_cancels_tasks_left_on_the_loop(tmp_path, loop_kind):
    port = free_ports(1)[0]
    bs = BlockingServer(1, f"127.0.0.1:{port}", tmp_path, Counter(), FAST, loop=loop_kind,
                        default_timeout_s=CALL_S)
    bs.start()

    async def spawn(server: Server) -> asyncio.Task[None]:
        return asyncio.ensure_future(asyncio.sleep(3600))   # never awaited by anyone
    task = bs.call(spawn)
    with pytest.raises(TimeoutError, match=r"slow: no answer within 0.2 s"):
        bs.call(lambda s: asyncio.sleep(3600), 0.2, "slow")
    bs.close()
    assert task.cancelled()
