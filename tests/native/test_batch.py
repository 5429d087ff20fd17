"""Batch encoding and decoding in libraft's layout (spec §3.5)."""

import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftpy import _bindings, _reference
from raftpy._bindings import ScanOutcome
from raftpy.core.types import Entry, EntryType
from raftpy.errors import CorruptError, InvalidError, IOError_, MalformedError, RaftError

# Spec §3.12: the two batches of segment 0000000000000002-0000000000000004.
GOLDEN_BATCH_1 = bytes.fromhex(
    "5779a198a3be85fc" "0200000000000000"
    "0200000000000000" "0100000008000000"
    "0200000000000000" "0200000008000000"
    "1111111111111111" "2222222222222222")
GOLDEN_BATCH_2 = bytes.fromhex(
    "af1275a5ff716c7e" "0100000000000000"
    "0200000000000000" "0100000010000000") + b"ABCDEFGHIJKLMNO\0"


def plain(entries):
    return [(e.term, e.type, bytes(e.payload)) for e in entries]


payloads = st.integers(0, 40).map(lambda k: k * 8).flatmap(
    lambda n: st.binary(min_size=n, max_size=n))
entries_st = st.lists(st.builds(Entry, st.integers(0, 2**64 - 1), st.integers(1, 3), payloads),
                      min_size=1, max_size=40)


def test_golden_batches_encode_byte_for_byte():
    b1 = _bindings.encode_batch([Entry(2, EntryType.COMMAND, b"\x11" * 8),
                                 Entry(2, EntryType.BARRIER, b"\x22" * 8)])
    b2 = _bindings.encode_batch_uniform(2, EntryType.COMMAND, [b"ABCDEFGHIJKLMNO\0"])
    assert bytes(b1) == GOLDEN_BATCH_1
    assert bytes(b2) == GOLDEN_BATCH_2


def test_golden_batches_decode():
    entries, end = _bindings.decode_batches(GOLDEN_BATCH_1 + GOLDEN_BATCH_2)
    assert end == len(GOLDEN_BATCH_1) + len(GOLDEN_BATCH_2)
    assert plain(entries) == [(2, 1, b"\x11" * 8), (2, 2, b"\x22" * 8),
                              (2, 1, b"ABCDEFGHIJKLMNO\0")]


@settings(max_examples=200, deadline=None)
@given(entries_st)
def test_round_trip_and_reference_agree(entries):
    encoded = bytes(_bindings.encode_batch(entries))
    assert encoded == _reference.encode_batch(entries)
    decoded, end = _bindings.decode_batches(encoded)
    assert end == len(encoded)
    assert plain(decoded) == plain(entries)
    assert plain(_reference.decode_batches(encoded)[0]) == plain(entries)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(1, 3), st.lists(payloads, min_size=1,
                                                                max_size=30))
def test_uniform_encoding_equals_general(term, type_, datas):
    general = _bindings.encode_batch([Entry(term, type_, d) for d in datas])
    assert _bindings.encode_batch_uniform(term, type_, datas) == general


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(1, 3), payloads, st.integers(0, 24))
def test_one_entry_takes_the_one_call_path_and_encodes_as_the_reference(term, type_,
                                                                        payload, offset):
    # One entry with a bytes or memoryview payload goes through one C call
    # (_bindings._encode), a bytearray the general way: all the same bytes.
    want = _reference.encode_batch([Entry(term, type_, payload)])
    framed = b"\xee" * 8 + payload + b"\xee" * 8
    for p in (payload, bytearray(payload), memoryview(payload),
              memoryview(framed)[8:8 + len(payload)]):
        assert bytes(_bindings.encode_batch([Entry(term, type_, p)])) == want
        assert bytes(_bindings.encode_batch_uniform(term, type_, [p])) == want
        out = bytearray(offset + len(want) + 8)
        assert _bindings.encode_batch_into(out, offset, [Entry(term, type_, p)]) == len(want)
        assert bytes(out[offset:offset + len(want)]) == want
        assert not any(out[:offset]) and not any(out[offset + len(want):])
    with pytest.raises(InvalidError, match="buffer too small"):
        _bindings.encode_batch_into(bytearray(len(want) - 1), 0, [Entry(term, type_, payload)])


def test_encode_into_offset():
    buf = bytearray(200)
    n = _bindings.encode_batch_into(buf, 8, [Entry(2, 1, b"\x11" * 8), Entry(2, 2, b"\x22" * 8)])
    assert n == len(GOLDEN_BATCH_1)
    assert bytes(buf[8:8 + n]) == GOLDEN_BATCH_1
    assert not any(buf[:8]) and not any(buf[8 + n:])
    with pytest.raises(InvalidError, match="buffer too small"):
        _bindings.encode_batch_into(bytearray(30), 0, [Entry(1, 1, b"")])


def test_payloads_are_views_not_copies():
    data = bytes(GOLDEN_BATCH_1)
    entries, _ = _bindings.decode_batches(data)
    assert isinstance(entries[0].payload, memoryview)
    assert entries[0].payload.obj is data


@pytest.mark.parametrize("length", [1, 7, 9, 12, 4095])
def test_unaligned_payload_rejected(length):
    with pytest.raises(InvalidError, match="8-byte aligned"):
        _bindings.encode_batch([Entry(1, 1, b"\0" * 8), Entry(1, 1, b"x" * length)])
    with pytest.raises(InvalidError, match="8-byte aligned"):
        _reference.encode_batch([Entry(1, 1, b"x" * length)])


def test_bad_arguments_rejected():
    with pytest.raises(InvalidError, match="at least one entry"):
        _bindings.encode_batch([])
    with pytest.raises(InvalidError, match="entry type 4"):
        _bindings.encode_batch([Entry(1, 4, b"")])
    with pytest.raises(InvalidError, match="entry type 0"):
        _bindings.encode_batch_uniform(1, 0, [b""])
    with pytest.raises(InvalidError, match="outside buffer"):
        _bindings.decode_batches(GOLDEN_BATCH_1, offset=len(GOLDEN_BATCH_1) + 1)


def test_zero_length_payloads():
    entries = [Entry(5, 2, b""), Entry(5, 1, b"12345678"), Entry(6, 3, b"")]
    decoded, _ = _bindings.decode_batches(_bindings.encode_batch(entries))
    assert plain(decoded) == plain(entries)


def test_large_batch_grows_output_arrays():
    entries = [Entry(i, 1, struct.pack("<Q", i)) for i in range(5000)]
    decoded, _ = _bindings.decode_batches(bytes(_bindings.encode_batch(entries)))
    assert plain(decoded) == plain(entries)


def test_max_batches_limit():
    data = GOLDEN_BATCH_1 + GOLDEN_BATCH_2
    entries, end = _bindings.decode_batches(data, max_batches=1)
    assert end == len(GOLDEN_BATCH_1) and len(entries) == 2


def _expect(data, cls, text):
    with pytest.raises(cls, match=text):
        _bindings.decode_batches(data)
    with pytest.raises(cls):
        _reference.decode_batches(data)


def test_every_truncation_is_a_short_read():
    for cut in range(1, len(GOLDEN_BATCH_1)):
        _expect(GOLDEN_BATCH_1[:cut], IOError_, "short read")


def test_every_bit_flip_is_detected():
    """No single bit flip anywhere in a batch decodes to wrong entries."""
    for pos in range(len(GOLDEN_BATCH_1)):
        for bit in range(8):
            data = bytearray(GOLDEN_BATCH_1)
            data[pos] ^= 1 << bit
            with pytest.raises(RaftError):
                _bindings.decode_batches(bytes(data))


def _forge(header: bytes, data: bytes) -> bytes:
    """A batch with valid checksums around whatever header and data we give."""
    return struct.pack("<II", _reference.crc32(header), _reference.crc32(data)) + header + data


def test_specific_damage_messages():
    _expect(_forge(struct.pack("<Q", 0), b""), CorruptError, "entries count in preamble is zero")
    _expect(struct.pack("<IIQ", 0, 0, 262145) + bytes(64), CorruptError,
            "entries count 262145 in preamble is too high")
    _expect(_forge(struct.pack("<QQB3xI", 1, 1, 9, 8), bytes(8)), MalformedError,
            "entry type 9 is not valid")
    _expect(_forge(struct.pack("<QQB3xI", 1, 1, 1, 12), bytes(12)), MalformedError,
            "not a multiple of 8")
    bad_header = bytearray(GOLDEN_BATCH_1)
    bad_header[0] ^= 1
    _expect(bytes(bad_header), CorruptError, "header checksum mismatch")
    bad_data = bytearray(GOLDEN_BATCH_1)
    bad_data[-1] ^= 0x80
    _expect(bytes(bad_data), CorruptError, "batch 1 starting at byte 0: data checksum mismatch")
    second_bad = bytearray(GOLDEN_BATCH_1 + GOLDEN_BATCH_2)
    second_bad[-1] ^= 1
    _expect(bytes(second_bad), CorruptError, f"batch 2 starting at byte {len(GOLDEN_BATCH_1)}")


# ------------------------------------------------------- issue 8, A7

@pytest.mark.parametrize("entries,what", [
    ([Entry(-1, 1, b"")], "term -1 is outside"),
    ([Entry(1 << 64, 1, b"")], "term 18446744073709551616 is outside"),
    ([Entry(1, 1, b""), Entry(1, 256, b"")], "entry 2: entry type 256 is not valid"),
    ([Entry(1, -1, b"")], "entry type -1 is not valid"),
])
def test_encode_refuses_terms_and_types_out_of_range_with_a_raft_error(entries, what):
    with pytest.raises(InvalidError, match=what):
        _bindings.encode_batch(entries)


def test_encode_uniform_refuses_out_of_range_with_a_raft_error():
    with pytest.raises(InvalidError, match="term -1"):
        _bindings.encode_batch_uniform(-1, 1, [b""])
    with pytest.raises(InvalidError, match="type 300"):
        _bindings.encode_batch_uniform(1, 300, [b""])


def test_decode_batches_stops_at_max_batches_across_array_refills():
    """Three batches of 600 entries: the output arrays (1024) fill after each;
    the limit holds across the refills (it reset there: 3 decoded for 2)."""
    data = b"".join(bytes(_bindings.encode_batch([Entry(1, 1, b"")] * 600)) for _ in range(3))
    for limit, n in ((1, 600), (2, 1200), (3, 1800), (0, 1800)):
        entries, end = _bindings.decode_batches(data, 0, max_batches=limit)
        assert len(entries) == n and end == (len(data) // 3) * (n // 600)


def test_find_batch_work_is_bounded_on_adversarial_payloads():
    """After damage, the scanner looks for a valid batch; a payload of 32-byte
    units (count 262,144, a term, a plausible first entry header) makes every
    unit look like the start of a 4 MiB batch header, each to be checksummed
    (measured on the code before issue 8: about 76 s of CPU for these 8 MiB,
    on every load).  The search gives up and calls it corruption."""
    unit = struct.pack("<QQQQ", 262144, 7, 1, 0)
    data = struct.pack("<Q", 1) + b"\xff" * 24 + unit * (256 * 1024)
    t0 = time.monotonic()
    scan = _bindings.scan_segment(data)
    assert time.monotonic() - t0 < 5
    assert scan.outcome == ScanOutcome.CORRUPT and "too many batch-like" in str(scan.error)
