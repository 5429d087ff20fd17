"""Load rules for what a crash or an interrupted operation leaves (issue 8: A2, A3,
A4, A7), on directories built byte by byte.

Each case is a directory a power loss can leave (the power-loss checker,
tests/io/test_power_loss.py, found each of them); the load must succeed with
every acknowledged entry at its index, with auto-recovery off and on.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import struct

import pytest

from raftpy import _bindings
from raftpy.core.configuration import Configuration
from raftpy.core.types import Entry, EntryType
from raftpy.errors import CorruptError
from raftpy.io import layout
from raftpy.io.disk import DiskStore, LoadResult

CONF = Configuration.of((1, "127.0.0.1:9001"))
FORMAT = struct.pack("<Q", 1)
BLOCK = 4096


def entry(index: int, term: int = 1, words: int = 40) -> Entry:
    return Entry(term, EntryType.COMMAND, struct.pack("<Q", index) * words)


def batches(first: int, sizes: list[int], term: int = 1, words: int = 40) -> list[bytes]:
    out, i = [], first
    for n in sizes:
        out.append(bytes(_bindings.encode_batch([entry(j, term, words)
                                                 for j in range(i, i + n)])))
        i += n
    return out


def write(d: pathlib.Path, name: str, data: bytes) -> None:
    (d / name).write_bytes(data)


def closed(d: pathlib.Path, first: int, last: int, term: int = 1) -> None:
    write(d, layout.closed_name(first, last),
          FORMAT + b"".join(batches(first, [last - first + 1], term)))


def snapshot(d: pathlib.Path, term: int, index: int) -> None:
    name = layout.snapshot_name(term, index, 7)
    write(d, name + ".meta", layout.encode_snapshot_meta(CONF, 1))
    write(d, name, layout.encode_snapshot_data(b"snapshot data " * 4, False))


async def aload(d: pathlib.Path, auto: bool) -> LoadResult:
    async with DiskStore(str(d), auto_recovery=auto, prepared_segments=1,
                         zero_fill_segments=False, segment_size_bytes=8 * BLOCK) as store:
        return await store.load()


def load(d: pathlib.Path, auto: bool) -> LoadResult:
    return asyncio.run(aload(d, auto))


def indexes(r: LoadResult) -> list[int]:
    got = [struct.unpack_from("<Q", e.payload)[0] for e in r.entries]
    assert got == list(range(r.start_index, r.start_index + len(got))), "misplaced entries"
    return got


@pytest.fixture(params=[False, True], ids=["auto-recovery off", "auto-recovery on"])
def auto(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_torn_multi_batch_write_keeps_the_batches_before_the_damage(tmp_path, auto):
    """A3: one write carried batches 1..17 (672 bytes each) over three blocks;
    power loss kept its first and third block but not the second.  Batches
    1-6 (wholly in the first block) stay; the valid batches in the third
    block are the torn write's, not data (none of it was acknowledged)."""
    image = bytearray(FORMAT + b"".join(batches(1, [1] * 17, words=80)))
    image += bytes(3 * BLOCK - len(image))
    assert len(image) == 3 * BLOCK
    damaged = image[:BLOCK] + bytes(BLOCK) + image[2 * BLOCK:]
    assert _bindings.scan_segment(damaged).next_valid > 2 * BLOCK   # valid batches follow
    write(tmp_path, "open-1", bytes(damaged) + bytes(BLOCK))
    r = load(tmp_path, auto)
    assert indexes(r) == [1, 2, 3, 4, 5, 6]
    assert not layout.list_dir(str(tmp_path)).corrupt_files


def test_torn_first_write_loses_only_that_write(tmp_path, auto):
    """A3: the first write of an open segment lost its first block (the format
    word) but kept its second: nothing of it was acknowledged; the closed
    segment before it loads."""
    closed(tmp_path, 1, 3)
    image = bytearray(FORMAT + b"".join(batches(4, [1] * 10, words=80)))
    assert len(image) > BLOCK
    image[:BLOCK] = bytes(BLOCK)
    write(tmp_path, "open-1", bytes(image) + bytes(BLOCK))
    r = load(tmp_path, auto)
    assert indexes(r) == [1, 2, 3]
    assert not (tmp_path / "open-1").exists()
    assert not layout.list_dir(str(tmp_path)).corrupt_files


def beyond_the_reach(d: pathlib.Path) -> bytes:
    """open-1: batches 1, 2, damage, and a valid batch more than one write
    (layout.torn_reach) after it: what a torn write cannot explain."""
    reach = layout.torn_reach()
    head = FORMAT + b"".join(batches(1, [1, 1]))
    damaged = head + b"\xff" * 16
    filler = bytes(reach + BLOCK - len(damaged))
    tail = b"".join(batches(3, [1]))
    image = damaged + filler + tail + bytes(BLOCK)
    write(d, "open-1", image)
    return image


def test_valid_batch_beyond_the_reach_of_one_write_is_corruption(tmp_path):
    """Without auto-recovery: a CorruptError naming the damage, nothing changed."""
    image = beyond_the_reach(tmp_path)
    with pytest.raises(CorruptError, match="open-1: entries batch 3 starting at byte 712: "
                                           ".*beyond what the last write"):
        load(tmp_path, False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["open-1", "raftpy.lock"]
    assert (tmp_path / "open-1").read_bytes() == image


def test_corruption_in_an_open_segment_keeps_the_batches_before_it(tmp_path, caplog):
    """Review finding 3: with auto-recovery the durable, acknowledged batches
    before the damage are kept (cut there as for a torn tail), a copy of the
    damaged file is kept as corrupt-<ns>-open-1, and an error names file and
    offset.  Before the fix the whole open segment was moved aside: entries
    1 and 2 were lost."""
    image = beyond_the_reach(tmp_path)
    with caplog.at_level(logging.ERROR, logger="raftpy.io.disk"):
        r = load(tmp_path, True)
    assert indexes(r) == [1, 2]
    (copy,) = layout.list_dir(str(tmp_path)).corrupt_files
    assert copy.startswith("corrupt-") and copy.endswith("-open-1")
    assert (tmp_path / copy).read_bytes() == image
    assert [s.name for s in layout.list_dir(str(tmp_path)).segments] == [
        layout.closed_name(1, 2)]
    assert "open segment open-1: damage at byte 712" in caplog.text
    assert copy in caplog.text
    assert indexes(load(tmp_path, True)) == [1, 2]       # and so it stays


def test_a_torn_libraft_write_larger_than_the_reach_keeps_the_acknowledged_batches(tmp_path):
    """Review finding 3: libraft's writer puts every request queued meanwhile
    into one write, with no cap: acknowledged entries 1..2 in block 0, then
    one write of 96 batches of 64 KiB (about 6 MiB) whose second block never
    reached the disk.  The valid batches after the hole lie beyond our torn
    reach, so this is judged corruption; libraft cuts at the first damage
    (spec §3.7 step 3), and auto-recovery now keeps 1..2 too (before: moved
    the whole segment aside and loaded nothing)."""
    image = bytearray(FORMAT + b"".join(batches(1, [2], words=125)))
    for k in range(96):
        image += bytes(_bindings.encode_batch([entry(3 + k, words=8192)]))
    image += bytes(-len(image) % BLOCK)
    image[BLOCK:2 * BLOCK] = bytes(BLOCK)
    write(tmp_path, "open-1", bytes(image) + bytes((8 << 20) - len(image)))
    with pytest.raises(CorruptError, match="beyond what the last write"):
        load(tmp_path, False)
    assert indexes(load(tmp_path, True)) == [1, 2]


def test_corruption_in_an_open_segment_sets_later_open_segments_aside(tmp_path):
    """Review finding 3: the damaged open-1 is cut at the damage; open-2's
    entries cannot be placed (open segments do not record their first index,
    and what followed the damage is lost), so it is moved aside too."""
    beyond_the_reach(tmp_path)
    write(tmp_path, "open-2", FORMAT + b"".join(batches(50, [2])) + bytes(BLOCK))
    r = load(tmp_path, True)
    assert indexes(r) == [1, 2]
    moved = layout.list_dir(str(tmp_path)).corrupt_files
    assert len(moved) == 2 and any(n.endswith("-open-2") for n in moved)


def big_first_write(d: pathlib.Path) -> None:
    """Closed 1..3, then open-1 whose first write was ONE batch of 6 MiB (a batch
    larger than write_max_bytes is written alone), torn: its first block, with
    the format word, never reached the disk; the rest did."""
    closed(d, 1, 3)
    image = bytearray(FORMAT + b"".join(batches(4, [1], words=(6 << 20) // 8)))
    assert len(image) > layout.torn_reach()
    image[:BLOCK] = bytes(BLOCK)
    write(d, "open-1", bytes(image) + bytes(-len(image) % BLOCK))


def test_torn_first_write_of_one_batch_larger_than_the_reach(tmp_path, auto):
    """Review finding 2: the store has one write in flight at a time, and a
    segment's later writes (and those into later segments) start only once its
    first write, which carries the format word, is durable: format word 0 in
    the last open segment holding data means its first write never completed,
    whatever its length.  Before the fix load failed ("unexpected format
    version 0") or auto-recovery moved the segment aside."""
    big_first_write(tmp_path)
    r = load(tmp_path, auto)
    assert indexes(r) == [1, 2, 3]
    assert not (tmp_path / "open-1").exists()
    assert not layout.list_dir(str(tmp_path)).corrupt_files


def test_format_word_0_before_an_open_segment_holding_data_is_corruption(tmp_path):
    """Review finding 2: the first write of open-1 cannot have been torn while
    open-2 was written after it: corruption (libraft's auto-recovery rule:
    open-1 and every later segment are moved aside)."""
    big_first_write(tmp_path)
    write(tmp_path, "open-2", FORMAT + b"".join(batches(5, [2])) + bytes(BLOCK))
    with pytest.raises(CorruptError, match="format version 0.*open-2 after it holds data"):
        load(tmp_path, False)
    assert (tmp_path / "open-1").exists()
    assert indexes(load(tmp_path, True)) == [1, 2, 3]
    assert len(layout.list_dir(str(tmp_path)).corrupt_files) == 2


def test_entries_that_contradict_the_snapshot_are_dropped(tmp_path, auto):
    """A4: an installation of snapshot (term 3, index 5) cut short left the old
    log 1..8 (term 1): its entry 5 has term 1.  The log restarts after the
    snapshot, durably: an open segment appended later loads at 6."""
    closed(tmp_path, 1, 8, term=1)
    snapshot(tmp_path, 3, 5)
    r = load(tmp_path, auto)
    assert r.snapshot is not None and r.snapshot.index == 5
    assert (r.start_index, r.entries) == (6, [])
    assert not layout.list_dir(str(tmp_path)).segments
    write(tmp_path, "open-1", FORMAT + b"".join(batches(6, [2], term=3)) + bytes(BLOCK))
    assert indexes(load(tmp_path, auto)) == [6, 7]


def test_entries_that_agree_with_the_snapshot_stay(tmp_path, auto):
    closed(tmp_path, 1, 8, term=3)
    snapshot(tmp_path, 3, 5)
    assert indexes(load(tmp_path, auto)) == list(range(1, 9))


def test_log_behind_the_snapshot_is_dropped_and_open_segments_follow_it(tmp_path, auto):
    """A2: a snapshot at 30 taken while the store held 1..20 (a leader applies what
    followers committed); the log is covered by the snapshot: libraft refuses
    to load this ("behind last snapshot"), we start after the snapshot."""
    closed(tmp_path, 1, 12)
    write(tmp_path, "open-1", FORMAT + b"".join(batches(13, [8])) + bytes(BLOCK))
    snapshot(tmp_path, 1, 30)
    r = load(tmp_path, auto)
    assert (r.start_index, r.entries) == (31, [])
    assert not layout.list_dir(str(tmp_path)).segments


def test_segments_passed_over_are_deleted_so_later_open_segments_land_right(tmp_path, auto):
    """A2: closed 1-50 behind snapshot 100 and nothing else: libraft's filter
    ignores it but leaves it; an open segment written after the load (entries
    101..) would then be placed after it, at 51.  The load deletes it."""
    closed(tmp_path, 1, 50)
    snapshot(tmp_path, 1, 100)
    r = load(tmp_path, auto)
    assert (r.start_index, r.entries) == (101, [])
    write(tmp_path, "open-1", FORMAT + b"".join(batches(101, [3])) + bytes(BLOCK))
    assert indexes(load(tmp_path, auto)) == [101, 102, 103]


def test_one_zero_byte_open_segment_is_never_written(tmp_path, auto):
    """A7: killed while emulating preallocation (one zero byte per block)."""
    closed(tmp_path, 1, 2)
    write(tmp_path, "open-1", b"\0")
    assert indexes(load(tmp_path, auto)) == [1, 2]
    assert not (tmp_path / "open-1").exists()


def test_no_retry_message_when_auto_recovery_moves_nothing(tmp_path, caplog):
    """A7: corruption in a closed segment that is not the last: libraft moves
    nothing aside, so there is nothing to retry (and nothing to say so)."""
    closed(tmp_path, 1, 2)
    closed(tmp_path, 3, 4)
    data = bytearray((tmp_path / layout.closed_name(1, 2)).read_bytes())
    data[40] ^= 1
    write(tmp_path, layout.closed_name(1, 2), bytes(data))
    with caplog.at_level(logging.WARNING), pytest.raises(CorruptError):
        load(tmp_path, True)
    assert "retrying" not in caplog.text


# ------------------------------------------- barriers and the snapshot (A2, A7)

def e(i: int, term: int = 1, words: int = 30) -> Entry:
    return Entry(term, EntryType.COMMAND, struct.pack("<Q", i) * words)


def install(store: DiskStore, snap) -> asyncio.Future:
    """snapshot_install (before issue 8 it was snapshot_put with trailing 0)."""
    fn = getattr(store, "snapshot_install", None)
    return fn(snap) if fn is not None else store.snapshot_put(0, snap)


async def copy_and_load(src: pathlib.Path, dst: pathlib.Path) -> LoadResult:
    """What a SIGKILL leaves: the files as they are (all acknowledged data durable)."""
    import shutil
    shutil.copytree(src, dst)
    (dst / "raftpy.lock").unlink()
    return await aload(dst, False)


def test_snapshot_ahead_of_the_durable_log_keeps_open_segments_in_place(tmp_path):
    """A2: a leader's snapshot at last_applied runs ahead of its last_stored: the
    snapshot is called while the appends it covers are still in flight, with a
    small trailing count.  Killed then, the directory must load every entry at
    its index (before the fix the snapshot went to disk first, and the open
    segment holding 1..N was placed after the snapshot's index)."""
    data = tmp_path / "data"
    data.mkdir()

    async def go() -> None:
        store = DiskStore(str(data), segment_size_bytes=4 * BLOCK, prepared_segments=1)
        await store.open()
        await store.load()
        # Small entries: the whole log fits in the first open segment.
        jobs = [asyncio.ensure_future(store.append(i, [e(i, words=1)])) for i in range(1, 41)]
        await asyncio.sleep(0)
        jobs.append(asyncio.ensure_future(store.snapshot_put(
            1, Snapshot(1, 40, CONF, 1, b"state at 40"))))
        jobs += [asyncio.ensure_future(store.append(i, [e(i, words=1)])) for i in range(41, 61)]
        await asyncio.gather(*jobs)
        r = await copy_and_load(data, tmp_path / "copy")
        assert r.snapshot is not None and r.snapshot.index == 40
        assert indexes(r)[-1] == 60
        assert r.start_index <= 41
        await store.close()

    from raftpy.io.disk import Snapshot
    asyncio.run(go())


def test_truncate_racing_an_installation(tmp_path):
    """A2: truncate(20) and an installation at 25 called together (a follower told
    of a conflict, then sent a snapshot), appends 26..28 behind both: they run
    in call order; before the fix both ran at once, the truncation leaked a
    FileNotFoundError, and its rewritten segment survived the installation."""
    from raftpy.io.disk import Snapshot

    async def go() -> LoadResult:
        # 4 KiB segments of 15 entries: 1..120 in eight segments.
        store = DiskStore(str(tmp_path), segment_size_bytes=BLOCK, prepared_segments=1)
        await store.open()
        await store.load()
        for i in range(1, 121, 5):
            await store.append(i, [e(j) for j in range(i, i + 5)])
        jobs = [asyncio.ensure_future(store.truncate(20)),
                asyncio.ensure_future(install(store, Snapshot(2, 25, CONF, 1, b"leader's"))),
                asyncio.ensure_future(store.append(26, [e(j, 2) for j in (26, 27, 28)]))]
        await asyncio.gather(*jobs)
        await store.close()
        return await aload(tmp_path, False)

    r = asyncio.run(go())
    assert r.snapshot is not None and r.snapshot.index == 25
    assert (r.start_index, indexes(r)) == (26, [26, 27, 28])
    assert [s.name for s in layout.list_dir(str(tmp_path)).segments] == [
        layout.closed_name(26, 28)]


def test_a_failed_finalize_leaves_later_segments_open_and_stops_appends(tmp_path):
    """A7: closing open-1 fails (rename: EIO); appends already in open-2 are
    durable.  The store refuses later appends with the error, and open-2 is
    not closed (closed 'N-M' before open-1 would make load place open-1 after
    it): the directory loads every acknowledged entry at its index."""
    import errno
    import os

    from raftpy.errors import IOError_
    from raftpy.io.fs import Fs

    class FailingRename(Fs):
        failed = False

        def rename(self, src: str, dst: str) -> None:
            if not self.failed and os.path.basename(src) == "open-1":
                self.failed = True
                raise OSError(errno.EIO, "injected")
            os.rename(src, dst)

    async def go() -> list[int]:
        store = DiskStore(str(tmp_path), segment_size_bytes=2 * BLOCK, prepared_segments=2,
                          fs=FailingRename())
        await store.open()
        await store.load()
        acked = []
        with pytest.raises(IOError_, match="injected"):
            for i in range(1, 200):
                await store.append(i, [e(i)])
                acked.append(i)
        await store.close()
        return acked

    acked = asyncio.run(go())
    assert len(acked) > 10
    r = load(tmp_path, False)
    assert indexes(r)[:len(acked)] == acked


def test_an_append_after_a_failed_write_is_refused_not_misplaced(tmp_path):
    """A5: the write of 10..12 fails (13..14, queued behind it, fail too); the
    caller, not knowing yet, appends 15..16.  Before the fix the store had
    rolled its index back to 10 and wrote them as 10..11."""
    from raftpy.errors import InvalidError, IOError_, RaftError
    from raftpy.io.fs import Fs

    class FailTenth(Fs):
        traces_writes = True
        writes = 0

        def write_started(self, fd: int, buf: object, offset: int) -> int:
            self.writes += 1
            if self.writes == 10:
                raise IOError_("injected write error")
            return 0

    async def call_append(store: DiskStore, first: int, entries: list[Entry]) -> None:
        try:
            await store.append(first, entries)
        except TypeError:                       # before issue 8: append(entries)
            await store.append(entries)

    async def go() -> str:
        store = DiskStore(str(tmp_path), segment_size_bytes=4 * BLOCK, prepared_segments=1,
                          fs=FailTenth())
        await store.open()
        await store.load()
        for i in range(1, 10):
            await call_append(store, i, [e(i)])
        failing = [asyncio.ensure_future(call_append(store, 10, [e(i) for i in (10, 11, 12)])),
                   asyncio.ensure_future(call_append(store, 13, [e(13), e(14)]))]
        done = await asyncio.gather(*failing, return_exceptions=True)
        assert all(isinstance(d, RaftError) for d in done), done
        outcome = "written"
        try:
            await call_append(store, 15, [e(15), e(16)])
        except InvalidError as err:
            outcome = str(err)
        await store.close()
        return outcome

    outcome = asyncio.run(go())
    r = load(tmp_path, False)
    indexes(r)        # every entry at the index it was meant for
    assert outcome == "cannot append at 15: the log's next index is 10"
    assert r.start_index + len(r.entries) - 1 == 9


def test_truncate_keeps_more_entries_than_one_batch_may_hold(tmp_path):
    """A6: the kept part of the truncated segment has 262,148 entries, more than
    a batch may hold (262,144): it is rewritten as several batches.  Before the
    fix the truncation failed with TooBigError (the core had truncated in
    memory, the disk had not)."""
    limit = _bindings.MAX_BATCH_ENTRIES
    empty = Entry(1, EntryType.COMMAND, b"")

    async def go() -> LoadResult:
        async with DiskStore(str(tmp_path), segment_size_bytes=16 << 20) as store:
            await store.load()
            await store.append(1, [empty] * 200_000)
            await store.append(200_001, [empty] * (limit + 6 - 200_000))
            await store.close()
        async with DiskStore(str(tmp_path), segment_size_bytes=16 << 20) as store:
            await store.load()
            await store.truncate(limit + 5)
        async with DiskStore(str(tmp_path)) as store:
            return await store.load()

    r = asyncio.run(go())
    assert (r.start_index, len(r.entries)) == (1, limit + 4)
    (seg,) = layout.list_dir(str(tmp_path)).segments
    assert (seg.first, seg.last) == (1, limit + 4)
    assert _bindings.scan_segment((tmp_path / seg.name).read_bytes()).n_batches == 2


def test_a_short_metadata_write_is_an_error(tmp_path):
    """A7: pwrite of the 32 metadata bytes returns less: set_term fails (it was
    acknowledged before) and the store keeps the term it had."""
    import os

    from raftpy.errors import NoSpaceError
    from raftpy.io.fs import Fs

    class Short(Fs):
        short = False

        def pwrite(self, fd: int, data: bytes, offset: int) -> int:
            if self.short:
                return os.pwrite(fd, bytes(data)[:16], offset)
            return os.pwrite(fd, data, offset)

    async def go() -> None:
        fs = Short()
        async with DiskStore(str(tmp_path), fs=fs) as store:
            await store.load()
            await store.set_term(3)
            fs.short = True
            with pytest.raises(NoSpaceError, match="short write: 16 bytes instead of 32"):
                await store.set_term(4)
            assert store.term == 3

    asyncio.run(go())
