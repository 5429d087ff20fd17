"""What a failed segment write leaves, and what the store does next (issue 8 review:
findings 1 and 6).

A failed write may still have put its data on disk: fdatasync reports EIO
after the pwrite reached the page cache, a write comes back short, an AIO
write fails after some of its blocks landed.  The store fails that append
and those queued behind it, rolls its next index back to the failed one,
and cuts the failed segment back to what was durable (ftruncate + fsync, or
unlink + directory fsync when nothing in it was).  The caller re-issues
other entries at that index (the core does after PersistFailed, first asking
for truncate(index)).

Each test injects the failure through an ``fs.Fs`` whose ``write_started``
really writes the data and then raises, and makes the cut-back slow; it
copies the directory at the moment the re-issued append is acknowledged
(the page cache is one state a power loss may leave on disk) and loads the
copy.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import struct
import threading
from typing import Any

import pytest

from raftpy.core.types import Entry, EntryType
from raftpy.errors import InvalidError, IOError_, NoSpaceError, RaftError
from raftpy.io import layout
from raftpy.io.disk import DiskStore, LoadResult
from raftpy.io.fs import Fs

BLOCK = 4096


def entry(index: int, tag: int) -> Entry:
    return Entry(1, EntryType.COMMAND, struct.pack("<QQ", index, tag) * 12)


class FailingWrites(Fs):
    """Fails chosen durable writes after (part of) their data reached the file,
    and holds the cut-back of the failed segment (ftruncate or unlink of it)
    for up to ``hold_s``, or until ``release`` is set."""

    traces_writes = True

    def __init__(self, fail: set[int], landed_blocks: int | None = None,
                 hold_s: float = 0.5) -> None:
        self.fail = fail                    # 1-based numbers of the writes that fail
        self.landed_blocks = landed_blocks  # None: all of it (EIO after the data landed)
        self.hold_s = hold_s
        self.writes = 0
        self.failed_paths: set[str] = set()
        self.fd_paths: dict[int, str] = {}
        self.release = threading.Event()

    def open(self, path: str, flags: int, mode: int = 0o777, **kw: Any) -> int:  # type: ignore[override]
        fd = os.open(path, flags, mode, **kw)
        self.fd_paths[fd] = path
        return fd

    def write_started(self, fd: int, buf: Any, offset: int) -> int:
        self.writes += 1
        if self.writes not in self.fail:
            return 0
        view = memoryview(buf)
        n = len(view) if self.landed_blocks is None else self.landed_blocks * BLOCK
        os.pwrite(fd, view[:n], offset)
        self.failed_paths.add(self.fd_paths[fd])
        if self.landed_blocks is None:
            raise IOError_("write: Input/output error (injected, after the data landed)")
        raise NoSpaceError(f"short write: {n} bytes instead of {len(view)} (injected)")

    def _hold(self, path: str) -> None:
        if path in self.failed_paths:
            self.release.wait(self.hold_s)

    def ftruncate(self, fd: int, length: int) -> None:  # type: ignore[override]
        self._hold(self.fd_paths.get(fd, ""))
        os.ftruncate(fd, length)

    def unlink(self, path: str) -> None:  # type: ignore[override]
        self._hold(path)
        os.unlink(path)


def copy_of(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    shutil.copytree(src, dst)
    (dst / "raftpy.lock").unlink()
    return dst


async def load(path: pathlib.Path) -> LoadResult:
    async with DiskStore(str(path), auto_recovery=False, prepared_segments=1) as store:
        return await store.load()


def tags(r: LoadResult) -> list[tuple[int, int]]:
    return [struct.unpack_from("<QQ", e.payload) for e in r.entries]


@pytest.mark.parametrize("landed", [None, 1], ids=["eio-after-data-landed", "short-write"])
@pytest.mark.parametrize("first_write", [False, True],
                         ids=["later-write-of-its-segment", "first-write-of-its-segment"])
def test_reissued_append_is_not_acknowledged_before_the_failed_segment_is_cut_back(
        tmp_path, landed, first_write):
    """Finding 1: entries 1..3 durable; the write of 4..5 fails after its data
    landed; 4..5 are re-issued with other content (tag 2) and acknowledged.
    A power loss then must load tag 2 at 4..5.  Before the fix the re-issued
    append went into the next segment at once, while the cut-back ran in the
    background: the copy taken at its acknowledgement held the failed batch
    in open-1 and loaded the failed (never acknowledged) entries at 4..5 with
    the acknowledged ones pushed to 6..7.  With first_write the failed write
    is the first of a fresh segment (cut back by unlinking it)."""
    data = tmp_path / "data"
    data.mkdir()
    fs = FailingWrites({3}, landed)

    async def go() -> pathlib.Path:
        # 8 KiB segments: with first_write, a large entry 3 fills open-1, and
        # the third write (of 4..5) is the first of open-2.
        store = DiskStore(str(data), segment_size_bytes=2 * BLOCK, prepared_segments=2,
                          use_aio=False, fs=fs)
        await store.open()
        await store.load()
        await store.append(1, [entry(1, 1), entry(2, 1)])
        big = Entry(1, EntryType.COMMAND, struct.pack("<QQ", 3, 1) * 470)
        await store.append(3, [big if first_write else entry(3, 1)])
        with pytest.raises(RaftError, match="injected"):
            await store.append(4, [entry(4, 1), entry(5, 1)])
        assert store.next_index == 4
        await store.append(4, [entry(4, 2), entry(5, 2)])
        crash = copy_of(data, tmp_path / "crash")     # what the disk may hold now
        fs.release.set()
        await store.close()
        return crash

    crash = asyncio.run(go())
    r = asyncio.run(load(crash))
    assert (r.start_index, tags(r)) == (1, [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)])
    assert not layout.list_dir(str(crash)).corrupt_files


def test_a_failed_cut_back_stops_the_store(tmp_path):
    """Finding 1: when cutting the failed segment back fails too, nothing more
    is appended (the failed data may stay on disk where a later append would
    be loaded from): appends get an error saying so, and the directory loads
    the durable entries."""

    class CutBackFails(FailingWrites):
        def ftruncate(self, fd: int, length: int) -> None:  # type: ignore[override]
            if self.fd_paths.get(fd) in self.failed_paths:
                raise OSError(5, "Input/output error (injected cut-back)")
            os.ftruncate(fd, length)

    fs = CutBackFails({2})

    async def go() -> None:
        store = DiskStore(str(tmp_path), segment_size_bytes=2 * BLOCK, use_aio=False, fs=fs)
        await store.open()
        await store.load()
        await store.append(1, [entry(1, 1)])
        with pytest.raises(IOError_, match="injected"):
            await store.append(2, [entry(2, 1)])
        with pytest.raises(IOError_, match="cut back open-1 after a failed write"):
            await store.append(2, [entry(2, 2)])
        with pytest.raises(IOError_, match="cut back open-1 after a failed write"):
            await store.append(2, [entry(2, 2)])
        await store.close()

    asyncio.run(go())
    r = asyncio.run(load(tmp_path))
    assert tags(r)[:1] == [(1, 1)]


def test_truncate_at_the_next_index_after_a_failed_write_is_a_no_op(tmp_path):
    """Finding 6: after the write of 4..5 failed the store's next index is 4; the
    core answers PersistFailed with truncate(4).  It deletes nothing and
    succeeds (before: InvalidError "cannot truncate at 4: entries end at 3");
    appends go on at 4."""
    fs = FailingWrites({2}, hold_s=0.0)

    async def go() -> None:
        store = DiskStore(str(tmp_path), segment_size_bytes=2 * BLOCK, use_aio=False, fs=fs)
        await store.open()
        await store.load()
        await store.append(1, [entry(i, 1) for i in (1, 2, 3)])
        with pytest.raises(IOError_, match="injected"):
            await store.append(4, [entry(4, 1), entry(5, 1)])
        await store.truncate(4)
        assert store.next_index == 4
        await store.append(4, [entry(4, 2)])
        await store.truncate(5)             # also without a failure: deletes nothing
        with pytest.raises(InvalidError, match="cannot truncate at 6: entries end at 4"):
            await store.truncate(6)
        await store.append(5, [entry(5, 2)])
        await store.close()

    asyncio.run(go())
    r = asyncio.run(load(tmp_path))
    assert tags(r) == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]
