"""DiskStore.append_nowait, the store's task-free hot path (the Server's way in):
the write is submitted before the call returns, ``done`` runs only once the
data is durable (never inside the call), in call order, and failures reach
``done`` for the failed append and every one queued behind it.

The durable writes are observed through an ``fs.Fs`` that records them
(``traces_writes``): ``write_started`` when the writer hands a write to the
kernel, ``write_durable`` when the kernel says it is durable.  The crash
states of this path are covered by tests/io/test_power_loss.py, whose
workloads go through ``append``, which is append_nowait plus a future.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from raftpy.core.types import Entry, EntryType
from raftpy.errors import InvalidError, IOError_, RaftError
from raftpy.io.disk import DiskStore
from raftpy.io.fs import Fs


def entry(i: int) -> Entry:
    return Entry(1, EntryType.COMMAND, struct.pack("<Q", i))


class Recorder(Fs):
    """Records the writer's durable writes; fails the ones numbered in ``fail``."""

    traces_writes = True

    def __init__(self, fail: frozenset[int] = frozenset()) -> None:
        self.events: list[tuple[str, int]] = []
        self.fail = fail
        self.started = 0

    def write_started(self, fd: int, buf: Any, offset: int) -> int:
        self.started += 1
        self.events.append(("started", self.started))
        if self.started in self.fail:
            raise IOError_("write: Input/output error (injected)")
        return self.started

    def write_durable(self, token: int) -> None:
        self.events.append(("durable", token))


async def fresh(path: str, fs: Fs) -> DiskStore:
    store = DiskStore(path, fs=fs, prepared_segments=1)
    await store.open()
    await store.load()
    await store.append(1, [entry(1)])      # an open segment is in use from here on
    return store


def test_submitted_at_once_reported_once_durable_in_order(data_dir, run_loop):
    async def go():
        fs = Recorder()
        store = await fresh(data_dir, fs)
        try:
            done: list[tuple[int, RaftError | None]] = []

            def reporter(i: int):
                def report(err: RaftError | None) -> None:
                    done.append((i, err))
                    fs.events.append(("done", i))
                return report
            fs.events.clear()
            store.append_nowait(2, [entry(2)], reporter(2))
            # the writer was idle: the write is with the kernel before the call returns
            assert fs.events == [("started", 2)]
            store.append_nowait(3, [entry(3)], reporter(3))
            store.append_nowait(4, [entry(4), entry(5)], reporter(4))
            assert done == []                  # never from inside the call
            assert fs.events == [("started", 2)]    # one write in flight: the rest queue
            for _ in range(2000):
                if len(done) == 3:
                    break
                await asyncio.sleep(0.001)
            assert done == [(2, None), (3, None), (4, None)]
            # each report after its data was durable; the two queued went out together
            assert fs.events == [("started", 2), ("durable", 2), ("done", 2),
                                 ("started", 3), ("durable", 3), ("done", 3), ("done", 4)]
            assert store.bytes_appended > 0
        finally:
            await store.close()
        async with DiskStore(data_dir) as again:
            loaded = await again.load()
        assert [struct.unpack("<Q", e.payload)[0] for e in loaded.entries] == [1, 2, 3, 4, 5]
    run_loop(go())


def test_a_failed_write_fails_it_and_what_queued_behind_it(data_dir, run_loop):
    async def go():
        fs = Recorder(fail=frozenset({2}))
        store = await fresh(data_dir, fs)
        try:
            done: list[tuple[int, RaftError | None]] = []
            store.append_nowait(2, [entry(2)], lambda err: done.append((2, err)))
            store.append_nowait(3, [entry(3)], lambda err: done.append((3, err)))
            assert done == []
            for _ in range(2000):
                if len(done) == 2:
                    break
                await asyncio.sleep(0.001)
            assert [i for i, _ in done] == [2, 3]
            assert all(isinstance(err, IOError_) for _, err in done), done
            # the log ends where the failed write began: 3 is refused at once, 2 taken
            with pytest.raises(InvalidError, match="next index is 2"):
                store.append_nowait(3, [entry(3)], lambda err: None)
            await store.append(2, [entry(20)])
        finally:
            await store.close()
        async with DiskStore(data_dir) as again:
            loaded = await again.load()
        assert [struct.unpack("<Q", e.payload)[0] for e in loaded.entries] == [1, 20]
    run_loop(go())


def test_a_completion_callback_that_raises_loses_nothing(data_dir, run_loop, caplog):
    async def go():
        store = await fresh(data_dir, Recorder())
        try:
            def boom(err: RaftError | None) -> None:
                raise RuntimeError("caller's bug")
            store.append_nowait(2, [entry(2)], boom)
            await store.append(3, [entry(3)])     # still written, in order, after it
        finally:
            await store.close()
        async with DiskStore(data_dir) as again:
            loaded = await again.load()
        assert len(loaded.entries) == 3
    run_loop(go())
    assert any("completion callback failed" in r.getMessage() for r in caplog.records)
