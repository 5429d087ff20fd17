"""DiskStore behaviour: the files it writes and what it loads back (spec §3)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import struct

import pytest

from raftpy import _bindings
from raftpy.core.configuration import Configuration, Role
from raftpy.core.types import Entry, EntryType
from raftpy.errors import (
    BusyError,
    CantBootstrapError,
    InvalidError,
    NotFoundError,
    RaftError,
    ShutdownError,
)
from raftpy.io import layout
from raftpy.io.disk import DiskStore, Snapshot

CONF = Configuration.of((1, "127.0.0.1:9001"), (2, "127.0.0.1:9002"),
                        (3, "127.0.0.1:9003", Role.STANDBY))


def entry(i: int, term: int = 2, size: int = 8) -> Entry:
    return Entry(term, EntryType.COMMAND, struct.pack("<Q", i) * (size // 8))


def payload_index(e: Entry) -> int:
    return struct.unpack_from("<Q", e.payload)[0]


def names(path):
    return sorted(n for n in os.listdir(path) if n != "raftpy.lock")


async def fresh(path, **kw) -> DiskStore:
    store = DiskStore(path, **kw)
    await store.open()
    await store.load()
    return store


async def reload(path, **kw):
    async with DiskStore(path, **kw) as store:
        return await store.load()


def test_bootstrap_writes_libraft_files(data_dir, run_loop):
    async def go():
        async with DiskStore(data_dir) as store:
            await store.bootstrap(CONF)
            with pytest.raises(CantBootstrapError):
                await store.bootstrap(CONF)
            await store.set_term(2)
            await store.set_vote(1)
    run_loop(go())
    # Spec §3.12: metadata1 holds version 3 (the vote), metadata2 version 2.
    assert pathlib.Path(data_dir, "metadata1").read_bytes() == struct.pack("<4Q", 1, 3, 2, 1)
    assert pathlib.Path(data_dir, "metadata2").read_bytes() == struct.pack("<4Q", 1, 2, 2, 0)
    seg = pathlib.Path(data_dir, "0000000000000001-0000000000000001").read_bytes()
    assert len(seg) == 128
    scan = _bindings.scan_segment(seg)
    assert scan.outcome == _bindings.ScanOutcome.CLEAN
    (e,) = scan.entries
    assert (e.term, e.type) == (1, EntryType.CHANGE)
    assert Configuration.decode(e.payload) == CONF
    assert names(data_dir) == ["0000000000000001-0000000000000001", "metadata1", "metadata2"]


def test_append_close_and_reload(data_dir, run_loop):
    async def go():
        store = await fresh(data_dir)
        await store.bootstrap(CONF)
        await store.set_term(2)
        await asyncio.gather(*(store.append(k, [entry(i) for i in range(k, k + 5)])
                               for k in range(2, 502, 5)))
        assert store.next_index == 502
        await store.close()
        return await reload(data_dir)
    result = run_loop(go())
    assert (result.term, result.voted_for, result.start_index) == (2, 0, 1)
    assert result.entries[0].type == EntryType.CHANGE
    assert [payload_index(e) for e in result.entries[1:]] == list(range(2, 502))
    assert names(data_dir) == ["0000000000000001-0000000000000001",
                               "0000000000000002-0000000000000501", "metadata1", "metadata2"]


def test_segments_roll_over_at_the_segment_size(data_dir, run_loop):
    size = 16 * 1024

    async def go():
        store = await fresh(data_dir, segment_size_bytes=size)
        for k in range(1, 2001, 40):
            await store.append(k, [entry(i, size=64) for i in range(k, k + 40)])
        await store.append(2001, [entry(3000, size=40 * 1024)])      # bigger than a segment
        await store.close()
        return await reload(data_dir, segment_size_bytes=size)
    result = run_loop(go())
    assert [payload_index(e) for e in result.entries] == list(range(1, 2001)) + [3000]
    segs = [n for n in names(data_dir) if not n.startswith("metadata")]
    assert len(segs) >= 2000 * 80 // size
    for name in segs[:-1]:
        assert os.path.getsize(os.path.join(data_dir, name)) <= size
    assert segs[-1] == layout.closed_name(2001, 2001)
    first_last = [tuple(map(int, n.split("-"))) for n in segs]
    assert all(a[1] + 1 == b[0] for a, b in zip(first_last, first_last[1:], strict=False))


def test_open_segments_are_preallocated_and_spares_removed_on_close(data_dir, run_loop):
    async def go():
        store = await fresh(data_dir, segment_size_bytes=64 * 1024)
        await store.append(1, [entry(1)])
        # Spares are prepared in worker threads: a listing taken meanwhile can
        # see one created but not yet fallocated (size 0).  Wait for them.
        await asyncio.gather(*(prep.ready for prep in store._prepared))
        opened = sorted(n for n in os.listdir(data_dir) if n.startswith("open-"))
        sizes = [os.path.getsize(os.path.join(data_dir, n)) for n in opened]
        await store.close()
        return opened, sizes
    opened, sizes = run_loop(go())
    assert opened[0] == "open-1" and len(opened) >= 2
    assert set(sizes) == {64 * 1024}
    assert names(data_dir) == ["0000000000000001-0000000000000001"]


@pytest.mark.parametrize("cut", ["middle", "boundary", "open", "everything"])
def test_truncate(data_dir, run_loop, cut):
    size = 8 * 1024

    async def go():
        store = await fresh(data_dir, segment_size_bytes=size)
        for k in range(1, 301, 10):
            await store.append(k, [entry(i, size=64) for i in range(k, k + 10)])
        # 10 batches of 816 bytes fill an 8 KiB segment: segments hold 1-100,
        # 101-200, and 201-300 is still open.
        index = {"middle": 104, "boundary": 201, "open": 295, "everything": 1}[cut]
        await store.truncate(index)
        assert store.next_index == index
        await store.append(index, [entry(1000 + i, term=3) for i in range(5)])
        await store.close()
        return index, await reload(data_dir, segment_size_bytes=size)
    index, result = run_loop(go())
    got = [payload_index(e) for e in result.entries]
    assert got == list(range(1, index)) + list(range(1000, 1005))
    assert [e.term for e in result.entries[index - 1:]] == [3] * 5


def test_appends_wait_behind_a_truncate(data_dir, run_loop):
    async def go():
        store = await fresh(data_dir)
        await store.append(1, [entry(i) for i in range(1, 11)])
        early = asyncio.ensure_future(store.append(11, [entry(11)]))
        await asyncio.sleep(0)
        cut = asyncio.ensure_future(store.truncate(6))
        await asyncio.sleep(0)
        late = asyncio.ensure_future(store.append(6, [entry(600)]))
        await asyncio.gather(early, cut, late)
        await store.close()
        return await reload(data_dir)
    result = run_loop(go())
    assert [payload_index(e) for e in result.entries] == [1, 2, 3, 4, 5, 600]


def test_bad_truncate_and_append_arguments(data_dir, run_loop):
    async def go():
        store = await fresh(data_dir)
        await store.truncate(1)          # deletes nothing: the log ends at 0
        await store.append(1, [entry(1)])
        for bad in (0, 3, 7):
            with pytest.raises(InvalidError):
                await store.truncate(bad)
        with pytest.raises(InvalidError, match="nothing to append"):
            await store.append(2, [])
        with pytest.raises(InvalidError, match="8-byte aligned"):
            await store.append(2, [Entry(1, 1, b"12345")])
        await store.append(2, [entry(2)])              # still usable, indexes unchanged
        assert store.next_index == 3
        await store.close()
        with pytest.raises(ShutdownError):
            await store.append(3, [entry(3)])
        return await reload(data_dir)
    assert [payload_index(e) for e in run_loop(go()).entries] == [1, 2]


def test_wrong_construction_and_order(data_dir, run_loop):
    with pytest.raises(InvalidError, match="multiple of 4096"):
        DiskStore(data_dir, segment_size_bytes=5000)

    async def go():
        store = DiskStore(data_dir)
        with pytest.raises(InvalidError, match="open the store first"):
            await store.append(1, [entry(1)])
        await store.open()
        with pytest.raises(InvalidError, match="load the store"):
            await store.append(1, [entry(1)])
        await store.load()
        with pytest.raises(InvalidError, match="already loaded"):
            await store.load()
        await store.close()
        with pytest.raises(NotFoundError, match="does not exist"):
            await DiskStore(os.path.join(data_dir, "nope")).open()
    run_loop(go())


def test_one_process_per_directory(data_dir, run_loop):
    async def go():
        async with DiskStore(data_dir):
            with pytest.raises(BusyError, match="in use by another process"):
                await DiskStore(data_dir).open()
        async with DiskStore(data_dir):       # released on close
            pass
    run_loop(go())


def snapshot(index, term=2, data=b"state-of-the-machine-at-some-ind"):
    return Snapshot(term, index, CONF, 1, data)


def test_snapshot_put_get_and_compression(data_dir, run_loop):
    async def go(compress):
        store = await fresh(data_dir, snapshot_compression=compress)
        first = store.next_index          # the second round appends after the first
        await store.append(first, [entry(i) for i in range(first, first + 20)])
        await store.snapshot_put(5, snapshot(10, data=b"abcdefgh" * 1000))
        got = await store.snapshot_get()
        await store.close()
        return got
    for compress in (True, False):
        got = run_loop(go(compress))
        assert (got.term, got.index, got.configuration, got.configuration_index) == (2, 10,
                                                                                    CONF, 1)
        assert got.data == b"abcdefgh" * 1000
        (snap,) = layout.list_dir(data_dir).snapshots
        raw = pathlib.Path(data_dir, snap.name).read_bytes()
        assert raw.startswith(layout.LZ4_MAGIC) == compress
        if compress:
            assert raw[4] & 0x0C == 0x0C      # content size and content checksum present
        os.unlink(os.path.join(data_dir, snap.name))
        os.unlink(os.path.join(data_dir, snap.meta_name))


def test_snapshot_retention_keeps_two_and_trailing_segments(data_dir, run_loop):
    size = 8 * 1024

    async def go():
        store = await fresh(data_dir, segment_size_bytes=size)
        for k in range(1, 1001, 20):
            await store.append(k, [entry(i, size=64) for i in range(k, k + 20)])
        before = [s for s in layout.list_dir(data_dir).segments if not s.is_open]
        for index in (300, 600, 900):
            await store.snapshot_put(128, snapshot(index))
        await store.close()
        return before, await reload(data_dir, segment_size_bytes=size)
    before, result = run_loop(go())
    listing = layout.list_dir(data_dir)
    assert [s.index for s in listing.snapshots] == [600, 900]
    retain = 900 - 128 + 1
    kept = [s for s in listing.segments]
    # Whole segments only: the first kept one is the first whose last >= retain.
    expected_first = next(s.first for s in before if s.last >= retain)
    assert kept[0].first == expected_first
    assert result.snapshot.index == 900 and result.start_index == expected_first
    assert [payload_index(e) for e in result.entries] == list(range(expected_first, 1001))


def test_snapshot_install_replaces_the_log(data_dir, run_loop):
    async def go():
        store = await fresh(data_dir, segment_size_bytes=8192)
        for k in range(1, 401, 20):
            await store.append(k, [entry(i, size=64) for i in range(k, k + 20)])
        await store.snapshot_install(snapshot(5000, term=7))
        assert store.next_index == 5001
        await store.append(5001, [entry(5001, term=7)])
        await store.close()
        return await reload(data_dir)
    result = run_loop(go())
    assert result.snapshot.index == 5000 and result.start_index == 5001
    assert [payload_index(e) for e in result.entries] == [5001]


def test_appends_go_on_while_a_snapshot_is_written(data_dir, run_loop):
    async def go():
        store = await fresh(data_dir, segment_size_bytes=8192)
        await store.append(1, [entry(i, size=64) for i in range(1, 101)])
        snap = asyncio.ensure_future(store.snapshot_put(10, snapshot(90, data=os.urandom(1 << 20))))
        for k in range(101, 601, 10):
            await store.append(k, [entry(i, size=64) for i in range(k, k + 10)])
        await snap
        await store.close()
        return await reload(data_dir)
    result = run_loop(go())
    assert result.snapshot.index == 90
    got = [payload_index(e) for e in result.entries]
    assert got == list(range(result.start_index, 601))
    assert result.start_index <= 81


def test_maintenance_at_open_removes_tmp_and_orphans(data_dir, run_loop):
    for name in ("tmp-0000000000000001-0000000000000001", "snapshot-1-2-3",
                 "snapshot-1-5-6.meta", "unrelated-file"):
        pathlib.Path(data_dir, name).write_bytes(b"x" * 8)

    async def go():
        async with DiskStore(data_dir) as store:
            await store.load()
    run_loop(go())
    assert names(data_dir) == ["unrelated-file"]


def test_recover_appends_a_configuration_entry_with_term_1(data_dir, run_loop):
    new_conf = Configuration.of((1, "127.0.0.1:9001"))

    async def go():
        store = await fresh(data_dir)
        await store.bootstrap(CONF)
        await store.set_term(5)
        await store.append(2, [entry(i, term=5) for i in range(2, 6)])
        await store.close()
        async with DiskStore(data_dir) as store:
            assert await store.recover(new_conf) == 6
        return await reload(data_dir)
    result = run_loop(go())
    last = result.entries[-1]
    assert len(result.entries) == 6 and (last.term, last.type) == (1, EntryType.CHANGE)
    assert Configuration.decode(last.payload) == new_conf
    assert "0000000000000006-0000000000000006" in names(data_dir)


def test_recover_refuses_a_configuration_without_voters(data_dir, run_loop):
    async def go():
        store = await fresh(data_dir)
        await store.bootstrap(CONF)
        await store.close()
        async with DiskStore(data_dir) as store:
            with pytest.raises(InvalidError, match="no voter"):
                await store.recover(Configuration.of((1, "127.0.0.1:9001", Role.SPARE)))
        return await reload(data_dir)
    assert len(run_loop(go()).entries) == 1      # nothing was written


def test_threads_and_aio_write_the_same_bytes(data_dir, run_loop):
    async def go(use_aio, sub):
        os.mkdir(sub)
        store = await fresh(sub, use_aio=use_aio, segment_size_bytes=16384)
        await store.bootstrap(CONF)
        for k in range(2, 402, 8):
            await store.append(k, [entry(i, size=24) for i in range(k, k + 8)])
        await store.close()
        return {n: pathlib.Path(sub, n).read_bytes() for n in names(sub)}
    a = run_loop(go(True, os.path.join(data_dir, "a")))
    b = run_loop(go(False, os.path.join(data_dir, "b")))
    assert a == b


def test_disk_store_implements_the_storage_interface():
    from raftpy.io.interfaces import Storage
    assert isinstance(DiskStore("."), Storage)


def test_malformed_batch_in_an_open_segment_is_not_a_torn_tail(data_dir, run_loop):
    """A bad type under a matching header checksum was written so: never cut off silently."""
    from raftpy import _reference
    from raftpy.errors import MalformedError
    header = struct.pack("<QQB3xI", 1, 1, 9, 8)
    bad = struct.pack("<II", _reference.crc32(header), _reference.crc32(bytes(8))) + header
    good = bytes(_bindings.encode_batch([entry(1)]))
    pathlib.Path(data_dir, "open-1").write_bytes(
        struct.pack("<Q", 1) + good + bad + bytes(8) + bytes(4096))

    async def go():
        async with DiskStore(data_dir, auto_recovery=False) as store:
            with pytest.raises(MalformedError, match="entry type 9 is not valid"):
                await store.load()
    run_loop(go())
    assert "open-1" in names(data_dir)


def test_close_writes_out_queued_appends_across_segments(data_dir, run_loop):
    """close() while appends are queued: they are written, rolling over segments."""
    async def go():
        store = await fresh(data_dir, segment_size_bytes=8192, prepared_segments=1)
        appends = [asyncio.ensure_future(store.append(i, [entry(i, size=512)]))
                   for i in range(1, 101)]
        await asyncio.sleep(0)
        await store.close()
        await asyncio.gather(*appends)
        return await reload(data_dir)
    assert [payload_index(e) for e in run_loop(go()).entries] == list(range(1, 101))


def test_truncate_into_a_damaged_closed_segment_is_refused_and_changes_nothing(
        data_dir, run_loop):
    """Review finding 5: entries 1..10 (one batch) and 11..12 closed, then a bit
    of the last payload of 1..10 flips; truncate(8) must read 1..7 to rewrite them: it raises a
    CorruptError naming the file and leaves every file as it was (before the
    fix: AssertionError, and under -O a closed segment 1-7 holding the wrong
    number of entries)."""
    from raftpy.errors import CorruptError

    async def go():
        store = await fresh(data_dir, segment_size_bytes=8192)
        await store.append(1, [entry(i) for i in range(1, 11)])
        await store.close()
        store = await fresh(data_dir, segment_size_bytes=8192)
        await store.append(11, [entry(i) for i in range(11, 13)])
        await store.close()
        store = await fresh(data_dir, segment_size_bytes=8192)
        seg = layout.closed_name(1, 10)
        path = pathlib.Path(data_dir, seg)
        data = bytearray(path.read_bytes())
        data[-3] ^= 1
        path.write_bytes(bytes(data))
        before = {n: pathlib.Path(data_dir, n).read_bytes() for n in names(data_dir)
                  if not n.startswith("open-")}
        with pytest.raises(CorruptError, match=f"truncate at 8: closed segment {seg}: "
                                               f".*data checksum mismatch"):
            await store.truncate(8)
        after = {n: pathlib.Path(data_dir, n).read_bytes() for n in names(data_dir)
                 if not n.startswith("open-")}
        assert after == before
        await store.close()

    run_loop(go())


def test_listing_skips_a_snapshot_deleted_while_it_is_listed(tmp_path):
    """Review finding 4: list_dir sized each snapshot data file after listing the
    directory; a file deleted in between (retention in a live store, read by
    ``raftpy inspect`` or snapshot_get) raised a bare FileNotFoundError.  A
    dangling link stands for the file deleted between the two calls."""
    meta = layout.encode_snapshot_meta(CONF, 1)
    (tmp_path / "snapshot-1-5-7.meta").write_bytes(meta)
    (tmp_path / "snapshot-1-5-7").symlink_to(tmp_path / "gone")
    (tmp_path / "snapshot-1-6-8.meta").write_bytes(meta)
    (tmp_path / "snapshot-1-6-8").write_bytes(b"data")
    assert [s.name for s in layout.list_dir(str(tmp_path)).snapshots] == ["snapshot-1-6-8"]


def test_snapshot_get_is_not_broken_by_retention_running_beside_it(data_dir, run_loop):
    """Review finding 4: snapshot_get listed the directory and read the latest
    snapshot without the directory lock; two snapshot_puts between the two
    steps (retention keeps two) deleted the one it had listed, and it failed
    ("read snapshot-1-2-...: No such file or directory").  It now takes the
    lock: the puts wait, the get returns what it listed, then the puts go on."""
    import threading

    class Paused(DiskStore):
        """Holds the first snapshot read after listing, up to 1 s or until released."""

        listed = threading.Event()
        release = threading.Event()
        pause = False

        def _read_snapshot(self, snap):
            if self.pause:
                self.pause = False
                self.listed.set()
                self.release.wait(1.0)
            return super()._read_snapshot(snap)

    def snap(i):
        return Snapshot(2, i, CONF, 1, f"state at {i}".encode())

    async def go():
        store = Paused(data_dir, snapshot_compression=False)
        await store.open()
        await store.load()
        await store.append(1, [entry(i) for i in range(1, 11)])
        for i in (1, 2):
            await store.snapshot_put(100, snap(i))
        store.pause = True
        get = asyncio.ensure_future(store.snapshot_get())
        await asyncio.get_running_loop().run_in_executor(None, store.listed.wait)

        async def puts():
            for i in (3, 4):
                await store.snapshot_put(100, snap(i))
        both = asyncio.ensure_future(puts())
        await asyncio.wait([both], timeout=0.5)     # done: they ran beside the get
        store.release.set()
        got = await get
        await both
        assert (got.index, got.data) == (2, b"state at 2")
        latest = await store.snapshot_get()
        assert latest.index == 4
        await store.close()

    run_loop(go())


def test_segments_closed_early_shrink_the_zero_fill_and_writes_past_it_load(data_dir,
                                                                           run_loop):
    """Each snapshot closes the open segment.  Once the last few closed segments
    used little, new segments are zero-filled only at their start (twice the
    most used, in MiB; the rest reserved), and a segment then written far past
    its zeroed start loads back whole."""
    from extents import unwritten_from  # tests/io is on sys.path
    size = 8 << 20

    async def go():
        store = await fresh(data_dir, segment_size_bytes=size)
        assert store.caps is not None
        if not store.caps.fallocate:
            pytest.skip(f"{data_dir}: no fallocate here, so segments are zero-filled whole")
        index = store.next_index
        for _ in range(8):                  # small segments, each closed by a snapshot
            await store.append(index, [entry(i) for i in range(index, index + 10)])
            index += 10
            await store.snapshot_put(1000, snapshot(index - 1))
        opens = [n for n in names(data_dir) if n.startswith("open-")]
        partly = [unwritten_from(os.path.join(data_dir, n)) for n in opens]
        # Now a write far past the zeroed start (1 MiB): 3 MiB of entries.
        big = [entry(i, size=1024) for i in range(index, index + 3072)]
        for k in range(0, len(big), 256):
            await store.append(index + k, big[k:k + 256])
        await store.close()
        return partly, index, await reload(data_dir, segment_size_bytes=size)
    partly, index, result = run_loop(go())
    assert (1 << 20) in partly, partly       # a prepared segment zeroed only in its first MiB
    got = [payload_index(e) for e in result.entries]
    assert got == list(range(result.start_index, index + 3072))
    assert all(bytes(e.payload) == entry(payload_index(e), size=len(e.payload)).payload
               for e in result.entries)


def test_append_takes_every_byte_of_a_wide_or_strided_view(data_dir, run_loop):
    """A payload is bytes or a buffer; a view of 8-byte floats has len() 2 for its
    16 bytes and a strided view cannot be joined: both were refused ("buffer too
    small: batch needs 48 bytes, 34 left", a TypeError) instead of appended."""
    import array
    wide = memoryview(array.array("d", [1.0, 2.0]))
    strided = memoryview(bytes(range(32)))[::2]
    narrow = memoryview(bytearray(b"n" * 8))

    async def go():
        store = await fresh(data_dir)
        await store.append(1, [Entry(1, EntryType.COMMAND, wide)])
        await store.append(2, [Entry(1, EntryType.COMMAND, strided)])
        await store.append(3, [Entry(1, EntryType.COMMAND, wide), Entry(1, EntryType.COMMAND,
                                                                        strided), entry(5)])
        await store.append(6, [Entry(1, EntryType.COMMAND, narrow), entry(7)])
        with pytest.raises(InvalidError):
            await store.append(8, [Entry(1, EntryType.COMMAND, "not bytes")])
        assert store.next_index == 8
        await store.close()
        return await reload(data_dir)
    got = [bytes(e.payload) for e in run_loop(go()).entries]
    assert got == [wide.tobytes(), strided.tobytes(), wide.tobytes(), strided.tobytes(),
                   entry(5).payload, b"n" * 8, entry(7).payload]


@pytest.mark.parametrize("how", ["put", "install"])
def test_an_empty_snapshot_is_refused_and_the_log_kept(data_dir, run_loop, how):
    """Load skips a snapshot whose data file is empty (libraft's rule, spec §3.7).
    Uncompressed, an empty snapshot was written anyway, the segments it covered
    deleted, and the reload found neither: no entries and no snapshot, and
    auto-recovery moved the rest of the log aside as corrupt."""
    async def go():
        store = await fresh(data_dir, snapshot_compression=False)
        await store.bootstrap(CONF)
        await store.append(2, [entry(i) for i in range(2, 10)])
        with pytest.raises(RaftError, match="empty"):
            if how == "put":
                await store.snapshot_put(0, snapshot(7, data=b""))
            else:
                await store.snapshot_install(snapshot(7, data=b""))
        await store.close()
        return await reload(data_dir)
    result = run_loop(go())
    assert result.snapshot is None and result.start_index == 1
    assert [payload_index(e) for e in result.entries[1:]] == list(range(2, 10))


def test_bootstrap_and_recover_refuse_a_configuration_that_would_not_load(data_dir, run_loop):
    """A Configuration built from Server values skips add()'s checks: one with a NUL
    in an address or id 0 was written, and every load then failed on it
    (MalformedError) while bootstrap refused to run again (term 1): a directory
    no one could start.  An empty one failed with a bare AssertionError."""
    from raftpy.core.configuration import Server as Member
    bad = [Configuration(), Configuration((Member(1, "a\0b"),)),
           Configuration((Member(0, "a"),))]

    async def go():
        async with DiskStore(data_dir) as store:
            for conf in bad:
                with pytest.raises(InvalidError):
                    await store.bootstrap(conf)
            assert store.term == 0
            await store.bootstrap(CONF)
        async with DiskStore(data_dir) as store:
            with pytest.raises(InvalidError):
                await store.recover(Configuration((Member(1, "a\0b"),)))
        return await reload(data_dir)
    result = run_loop(go())
    assert [Configuration.decode(e.payload) for e in result.entries] == [CONF]


def test_an_append_of_more_entries_than_a_batch_holds_is_written_as_several(data_dir,
                                                                            run_loop):
    """A batch holds at most MAX_BATCH_ENTRIES (every loader refuses more), and one
    append was one batch: a leader's Update of more entries (apply_many of
    300,000 commands, or proposals of one loop iteration) failed its write with
    TooBigError, and the leader stepped down, before the fix."""
    n = _bindings.MAX_BATCH_ENTRIES + 3
    payload = b"e" * 8

    async def go():
        store = await fresh(data_dir)
        await store.append(1, [Entry(1, EntryType.COMMAND, payload)] * n)
        await store.append(n + 1, [entry(n + 1)])
        await store.close()
        return await reload(data_dir)
    result = run_loop(go())
    assert len(result.entries) == n + 1
    assert all(bytes(e.payload) == payload for e in result.entries[:n])
    assert payload_index(result.entries[n]) == n + 1


@pytest.mark.parametrize("bad", [5.0, "5", True])
def test_truncate_at_an_index_that_is_not_an_int_is_refused_and_changes_nothing(
        data_dir, run_loop, bad):
    """truncate(5.0) passed the range checks and set a float next index, so the
    next append's index was a float."""
    async def go():
        store = await fresh(data_dir)
        await store.bootstrap(CONF)
        await store.append(2, [entry(i) for i in range(2, 8)])
        with pytest.raises(InvalidError, match="an index is an int"):
            await store.truncate(bad)
        await store.append(8, [entry(8)])
        await store.close()
        return await reload(data_dir)
    result = run_loop(go())
    assert [payload_index(e) for e in result.entries[1:]] == list(range(2, 9))


def test_a_failed_snapshot_put_does_not_keep_its_entries_from_truncation(data_dir, run_loop):
    """A put that failed still counted as a snapshot for truncate: entries up to
    its index were refused as 'in a snapshot' though no snapshot held them."""
    import errno

    from raftpy.errors import IOError_
    from raftpy.io.fs import Fs

    class FailingMetaRename(Fs):
        failed = False

        def rename(self, src: str, dst: str) -> None:
            if not self.failed and dst.endswith(".meta"):
                self.failed = True
                raise OSError(errno.EIO, "injected")
            os.rename(src, dst)

    async def go():
        store = DiskStore(data_dir, fs=FailingMetaRename())
        await store.open()
        await store.load()
        await store.bootstrap(CONF)
        await store.append(2, [entry(i) for i in range(2, 10)])
        with pytest.raises(IOError_, match="injected"):
            await store.snapshot_put(0, snapshot(7))
        await store.truncate(6)
        await store.append(6, [entry(i, term=3) for i in range(6, 8)])
        await store.close()
        return await reload(data_dir)
    result = run_loop(go())
    assert result.snapshot is None
    assert [(e.term, payload_index(e)) for e in result.entries[1:]] == (
        [(2, i) for i in range(2, 6)] + [(3, 6), (3, 7)])
