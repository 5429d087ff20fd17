"""The Server's one timer handle following the core's deadline_ms: a deadline
that moves later keeps the armed handle (re-armed when it fires, no Tick
then), an earlier one replaces it, None cancels it; the Tick comes at the
latest deadline, once.  On both loops."""

from __future__ import annotations

import asyncio

from server_harness import run

from raftpy import Server
from raftpy.core.events import Tick
from raftpy.state_machine import StateMachine


class Nothing(StateMachine):
    def apply(self, command: bytes) -> object:
        return None

    def snapshot(self) -> bytes:
        return b""

    def restore(self, snapshot: bytes) -> None:
        pass


def server_with_ticks(tmp_path) -> tuple[Server, list[int]]:
    server = Server(1, "127.0.0.1:1", tmp_path, Nothing())
    server._loop = asyncio.get_running_loop()
    ticks: list[int] = []
    server._post = lambda event: ticks.append(event.time_ms) if isinstance(event, Tick) \
        else None       # type: ignore[method-assign]
    return server, ticks


def test_a_later_deadline_keeps_the_handle_and_the_tick_waits_for_it(tmp_path, run_loop):
    async def body():
        server, ticks = server_with_ticks(tmp_path)
        now = server._now_ms()
        server._set_timer(now + 30)
        first = server._timer
        for later in (40, 50, 60):               # as a follower's election deadline moves
            server._set_timer(now + later)
            assert server._timer is first        # no cancel, no new handle
        await asyncio.sleep(0.045)
        assert ticks == []                       # fired at +30, re-armed for +60
        assert server._timer is not None and server._timer is not first
        await asyncio.sleep(0.06)
        assert len(ticks) == 1 and ticks[0] >= now + 60
        assert server._timer is None
    run(run_loop, body)


def test_an_earlier_deadline_replaces_the_handle_and_none_cancels_it(tmp_path, run_loop):
    async def body():
        server, ticks = server_with_ticks(tmp_path)
        now = server._now_ms()
        server._set_timer(now + 500)
        first = server._timer
        server._set_timer(now + 20)
        assert server._timer is not first and first.cancelled()
        await asyncio.sleep(0.06)
        assert len(ticks) == 1 and now + 20 <= ticks[0] < now + 500
        server._set_timer(server._now_ms() + 20)
        server._set_timer(None)
        await asyncio.sleep(0.05)
        assert len(ticks) == 1 and server._timer is None
    run(run_loop, body)



async def until(condition, timeout_s: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timer did not fire"
        await asyncio.sleep(0.001)


def test_a_deadline_moved_later_then_back_earlier_ticks_at_the_last_one(tmp_path, run_loop):
    """The follower's deadline moves later with each AppendEntries and back
    earlier on a conversion (a redrawn timeout, a transfer's T): the kept
    handle must wake for the last deadline set, whether it lies before or
    after the armed one, and exactly once (no lost and no extra Tick)."""
    async def body():
        server, ticks = server_with_ticks(tmp_path)
        now = server._now_ms()
        server._set_timer(now + 30)
        first = server._timer
        server._set_timer(now + 300)
        server._set_timer(now + 150)             # earlier than 300, later than the handle
        assert server._timer is first
        await until(lambda: server._timer is not first)
        assert ticks == [] and server._timer_ms == now + 150   # re-armed for the last
        await until(lambda: bool(ticks))
        assert now + 150 <= ticks[0] < now + 300 and server._timer is None
        base = server._now_ms()
        server._set_timer(base + 200)
        second = server._timer
        server._set_timer(base + 400)
        server._set_timer(base + 20)             # before the armed handle: replaces it
        assert server._timer is not second and second.cancelled()
        await until(lambda: len(ticks) == 2)
        assert base + 20 <= ticks[1] < base + 200
        await asyncio.sleep(0.25)                # nothing left armed: no extra Tick
        assert len(ticks) == 2 and server._timer is None
    run(run_loop, body)
