"""How DiskStore.load reads segments: each in one C call (large ones into
anonymous mappings, csrc/image.c), in a reader thread ahead of the one
decoded (_bindings.read_image, disk.py _load_segments).

The payloads it returns must stay read-only and valid for as long as they are
referenced (the store closed or not); damage in a large segment is reported as
for a small one, naming the file; no reader thread outlives a load.
"""

from __future__ import annotations

import gc
import os
import struct
import threading

import pytest

from raftpy import _bindings
from raftpy.core.types import Entry, EntryType
from raftpy.errors import CorruptError, IOError_
from raftpy.io.disk import DiskStore

SEGMENT_BYTES = 2 << 20           # closed segments of about 2 MiB: the mapping path
PAYLOAD_BYTES = 4096
BATCHES = 1400                    # about 5.5 MiB: two closed segments and an open one


def payload(i: int) -> bytes:
    return struct.pack("<Q", i) * (PAYLOAD_BYTES // 8)


async def fill(path: str) -> None:
    store = DiskStore(path, segment_size_bytes=SEGMENT_BYTES)
    await store.open()
    await store.load()
    for i in range(1, BATCHES + 1):
        await store.append(i, [Entry(3, EntryType.COMMAND, payload(i))])
    await store.close()


async def load(path: str, **kw: object) -> list[Entry]:
    store = DiskStore(path, segment_size_bytes=SEGMENT_BYTES, **kw)  # type: ignore[arg-type]
    await store.open()
    try:
        return (await store.load()).entries
    finally:
        await store.close()


def closed_segments(path: str) -> list[str]:
    return sorted(n for n in os.listdir(path) if n[0].isdigit())


def load_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("raftpy-load")]


def test_large_segments_load_as_read_only_views_that_outlive_the_store(data_dir, run_loop):
    run_loop(fill(data_dir))
    big = [n for n in closed_segments(data_dir)
           if os.path.getsize(os.path.join(data_dir, n)) >= _bindings.IMAGE_MAP_MIN_BYTES]
    assert len(big) >= 2, f"expected closed segments of at least 1 MiB, got {big}"
    entries = run_loop(load(data_dir))
    assert [e.payload == payload(i) for i, e in enumerate(entries, 1)] == [True] * BATCHES
    assert {(e.term, e.type) for e in entries} == {(3, EntryType.COMMAND)}
    first = entries[0].payload
    assert isinstance(first, memoryview) and first.readonly
    with pytest.raises(TypeError):
        first[0] = 1                              # type: ignore[index]
    assert not load_threads()
    # The store is closed; the payloads (slices of its mappings) still hold
    # their bytes after a collection.
    keep = [entries[0], entries[len(entries) // 2], entries[-1]]
    del entries, first
    gc.collect()
    assert [bytes(e.payload) for e in keep] == [payload(1), payload(BATCHES // 2 + 1),
                                                payload(BATCHES)]


@pytest.mark.parametrize("recovery", [False, True])
def test_damage_inside_a_large_closed_segment_names_it_and_changes_nothing(
        data_dir, run_loop, recovery):
    run_loop(fill(data_dir))
    victim = closed_segments(data_dir)[0]
    path = os.path.join(data_dir, victim)
    with open(path, "r+b") as f:                  # a payload byte, mid-file
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    before = sorted(os.listdir(data_dir))
    with pytest.raises(CorruptError, match=f"{victim}.*checksum"):
        run_loop(load(data_dir, auto_recovery=recovery))
    # Not the last closed segment: libraft moves nothing aside, neither do we.
    assert sorted(os.listdir(data_dir)) == before
    assert not load_threads()


def test_a_large_closed_segment_cut_short_is_corrupt(data_dir, run_loop):
    run_loop(fill(data_dir))
    victim = closed_segments(data_dir)[0]
    path = os.path.join(data_dir, victim)
    os.truncate(path, os.path.getsize(path) - 100)
    with pytest.raises(CorruptError, match=victim):
        run_loop(load(data_dir, auto_recovery=False))
    assert not load_threads()


def test_read_image_reads_what_the_file_holds(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"s" * 1000)
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * (_bindings.IMAGE_MAP_MIN_BYTES // 256 + 3))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    image = _bindings.read_image(str(small))
    assert isinstance(image, memoryview) and image.readonly and image == b"s" * 1000
    image = _bindings.read_image(str(big))
    assert isinstance(image, memoryview) and image.readonly
    assert bytes(image) == big.read_bytes()
    assert _bindings.read_image(str(empty)) == b""
    with pytest.raises(IOError_, match="read missing: No such file"):
        _bindings.read_image(str(tmp_path / "missing"))


def _same_scan(a: _bindings.SegmentScan, b: _bindings.SegmentScan) -> None:
    assert (a.n_batches, a.end, a.outcome, a.status, a.error_offset, a.next_valid) == (
        b.n_batches, b.end, b.outcome, b.status, b.error_offset, b.next_valid)
    assert str(a.error) == str(b.error)
    assert [(e.term, e.type, bytes(e.payload)) for e in a.entries] == [
        (e.term, e.type, bytes(e.payload)) for e in b.entries]


@pytest.mark.parametrize("damage", [False, True])
def test_read_and_prescan_walks_as_scan_segment_does(tmp_path, damage):
    """Load's one-call read and walk gives what scan_segment gives on the same
    bytes, also when the walk needs more calls than the first (3000 entries,
    arrays for 1024) and when a batch in the middle is damaged."""
    image = bytearray((1).to_bytes(8, "little"))
    for i in range(3000):
        image += _bindings.encode_batch([Entry(i % 5 + 1, EntryType.COMMAND,
                                               struct.pack("<Q", i))])
    if damage:
        image[len(image) // 2] ^= 0xFF
    path = tmp_path / "0000000000000001-0000000000003000"
    path.write_bytes(bytes(image))
    data, walked = _bindings.read_and_prescan(str(path), 0, 4096)
    assert isinstance(data, memoryview) and data.readonly and data == bytes(image)
    got, want = walked.scan(), _bindings.scan_segment(bytes(image))
    _same_scan(got, want)
    assert len(got.entries) == (3000 if not damage else len(want.entries)) > 1024
    assert all(e.payload.readonly for e in got.entries)
    with pytest.raises(IOError_, match="read gone: No such file"):
        _bindings.read_and_prescan(str(tmp_path / "gone"), 0, 4096)
