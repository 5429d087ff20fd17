"""Segment scanning: how a segment image ends (spec §3.5, §3.7, quirk 14)."""

import struct

from raftpy import _bindings, _reference
from raftpy._bindings import ScanOutcome, Status
from raftpy.core.types import Entry
from raftpy.errors import CorruptError, IOError_

FORMAT = struct.pack("<Q", 1)


def batch(first, n, size=8, term=1):
    return bytes(_bindings.encode_batch(
        [Entry(term, 1, struct.pack("<Q", first + i) * (size // 8)) for i in range(n)]))


def indexes(entries):
    return [struct.unpack_from("<Q", e.payload)[0] for e in entries]


def segment(*batches):
    return FORMAT + b"".join(batches)


def test_clean_segment():
    seg = segment(batch(1, 3), batch(4, 2), batch(6, 1))
    scan = _bindings.scan_segment(seg)
    assert scan.outcome == ScanOutcome.CLEAN and scan.error is None
    assert scan.end == len(seg) and scan.n_batches == 3
    assert indexes(scan.entries) == [1, 2, 3, 4, 5, 6]
    ref_entries, ref_end, ref_outcome, _ = _reference.scan_segment(seg)
    assert (indexes(ref_entries), ref_end, ref_outcome) == ([1, 2, 3, 4, 5, 6], len(seg), "clean")


def test_preallocated_open_segment_has_zero_tail():
    good = segment(batch(1, 3), batch(4, 2))
    scan = _bindings.scan_segment(good + bytes(8192))
    assert scan.outcome == ScanOutcome.ZERO_TAIL
    assert scan.end == len(good) and indexes(scan.entries) == [1, 2, 3, 4, 5]
    assert isinstance(scan.error, CorruptError)
    # Fewer than 16 zero bytes left: still a zero tail, not damage.
    assert _bindings.scan_segment(good + bytes(8)).outcome == ScanOutcome.ZERO_TAIL


def test_never_written_open_segment_is_empty():
    assert _bindings.scan_segment(bytes(1 << 16)).outcome == ScanOutcome.EMPTY
    scan = _bindings.scan_segment(b"")
    assert scan.outcome == ScanOutcome.EMPTY and "file is empty" in str(scan.error)


def test_torn_last_write():
    """A crash during the last write: its batch is cut short or half-written."""
    good = segment(batch(1, 3), batch(4, 2))
    last = batch(6, 4, size=64)
    torn = bytearray(last)
    torn[40:] = b"\xab" * (len(torn) - 40)            # only part of it reached the disk
    scan = _bindings.scan_segment(good + bytes(torn) + bytes(4096))
    assert scan.outcome == ScanOutcome.TORN_TAIL
    assert scan.end == len(good) and indexes(scan.entries) == [1, 2, 3, 4, 5]
    assert scan.next_valid == -1


def test_corruption_in_the_middle_is_not_a_torn_tail():
    first, second, third = batch(1, 3), batch(4, 2), batch(6, 2)
    damaged = bytearray(segment(first, second, third))
    damaged[8 + len(first) + 30] ^= 0x04               # a bit flip inside batch 2
    scan = _bindings.scan_segment(bytes(damaged) + bytes(4096))
    assert scan.outcome == ScanOutcome.CORRUPT
    assert scan.end == 8 + len(first) and indexes(scan.entries) == [1, 2, 3]
    assert scan.next_valid == 8 + len(first) + len(second)
    assert scan.status == Status.HEADER_CRC
    assert "entries batch 2 starting at byte" in str(scan.error)


def test_bad_format_word():
    scan = _bindings.scan_segment(struct.pack("<Q", 2) + batch(1, 1))
    assert scan.outcome == ScanOutcome.CORRUPT
    assert str(scan.error) == "unexpected format version 2"
    scan = _bindings.scan_segment(struct.pack("<Q", 0) + batch(1, 1))
    assert scan.outcome == ScanOutcome.CORRUPT and "format version 0" in str(scan.error)


def test_too_small_file():
    scan = _bindings.scan_segment(b"\x01\x00\x00")
    assert scan.outcome == ScanOutcome.CORRUPT
    assert isinstance(scan.error, IOError_) and "file has only 3 bytes" in str(scan.error)


def test_file_ends_inside_a_batch():
    good = segment(batch(1, 2))
    scan = _bindings.scan_segment(good + batch(3, 2)[:-3])
    assert scan.status == Status.SHORT and isinstance(scan.error, IOError_)
    assert indexes(scan.entries) == [1, 2] and scan.end == len(good)


def test_many_batches_cross_output_array_refills():
    batches = [batch(1 + 10 * i, 10) for i in range(300)]   # 3000 entries > 1024 arrays
    scan = _bindings.scan_segment(segment(*batches))
    assert scan.outcome == ScanOutcome.CLEAN
    assert indexes(scan.entries) == list(range(1, 3001))


def with_garbage_in_unused_bytes(raw: bytes) -> bytes:
    """A batch as libraft 0.15 may write it: its first entry header's 3 unused
    bytes left uninitialised (uvEncodeBatchHeader skips them), the header crc
    computed over what is there."""
    out = bytearray(raw)
    out[8 + 8 + 9:8 + 8 + 12] = b"\x00\x31\x7f"
    header_len = 8 + 16 * struct.unpack_from("<Q", out, 8)[0]
    struct.pack_into("<I", out, 0, _bindings.crc32(bytes(out[8:8 + header_len])))
    return bytes(out)


def test_a_valid_batch_with_garbage_in_its_unused_bytes_after_damage_means_corruption():
    """The search for a valid batch after damage (torn tail or corruption?)
    must see libraft's batches whose unused entry-header bytes are not zero:
    it took them for no batch, so damage before them read as a torn tail and
    the load would have cut the valid entries after it (found against real
    libraft 0.15, whose AppendEntries carried such bytes)."""
    first, second = batch(1, 3), batch(4, 2)
    third = with_garbage_in_unused_bytes(batch(6, 2))
    assert _bindings.scan_segment(segment(third)).outcome == ScanOutcome.CLEAN
    damaged = bytearray(segment(first, second, third))
    damaged[8 + len(first) + 30] ^= 0x04               # a bit flip inside batch 2
    scan = _bindings.scan_segment(bytes(damaged) + bytes(4096))
    assert scan.outcome == ScanOutcome.CORRUPT, scan.outcome
    assert scan.next_valid == 8 + len(first) + len(second)
