"""raftpy.io.wire: round trips of every message type under any chunk split, agreement
with the pure-Python reference, every WireError case, limits checked before
allocation, and payloads as views (no per-entry copies)."""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftpy import _reference_wire as ref
from raftpy.core.configuration import Configuration, Role
from raftpy.core.messages import (
    AppendEntries,
    AppendEntriesResult,
    InstallSnapshot,
    RequestVote,
    RequestVoteResult,
    TimeoutNow,
)
from raftpy.core.types import Entry
from raftpy.errors import MalformedError
from raftpy.io import wire
from raftpy.io.wire import Reader, WireError

HS = wire.encode_handshake(7, "127.0.0.1:9007")
BIG = 1 << 30

u64 = st.integers(0, 2**64 - 1)
aligned = st.integers(0, 12).map(lambda k: 8 * k).flatmap(
    lambda n: st.binary(min_size=n, max_size=n))
entry = st.builds(Entry, u64, st.integers(1, 3), aligned)


@st.composite
def entries_st(draw):
    """Entries, mostly 8-aligned; an unaligned one only where libraft reads it right
    (followed by empty entries only)."""
    out = draw(st.lists(entry, max_size=20))
    if out and draw(st.booleans()):
        k = draw(st.integers(0, len(out) - 1))
        out[k] = Entry(out[k].term, out[k].type, draw(st.binary(min_size=1, max_size=30)))
        out[k + 1:] = [Entry(e.term, e.type, b"") for e in out[k + 1:]]
    return out


confs = st.lists(st.tuples(st.integers(1, 2**64 - 1), st.sampled_from(list(Role))),
                 min_size=1, max_size=5, unique_by=lambda t: t[0]).map(
    lambda servers: Configuration.of(*[(i, f"10.0.0.{k}:{i % 65536}", r)
                                       for k, (i, r) in enumerate(servers)]))

messages = st.one_of(
    st.builds(RequestVote, u64, u64, u64, u64, st.booleans(), st.booleans()),
    st.builds(RequestVoteResult, u64, st.booleans(), st.booleans()),
    st.builds(AppendEntries, u64, u64, u64, u64, entries_st()),
    st.builds(AppendEntriesResult, u64, u64, u64, u64),
    st.builds(InstallSnapshot, u64, u64, u64, u64, confs, st.binary(max_size=200)),
    st.builds(TimeoutNow, u64, u64, u64),
)


def plain(m):
    if isinstance(m, AppendEntries):
        return ("AE", m.term, m.prev_log_index, m.prev_log_term, m.leader_commit, m.version,
                tuple((e.term, int(e.type), bytes(e.payload)) for e in m.entries))
    if isinstance(m, InstallSnapshot):
        return ("IS", m.term, m.last_index, m.last_term, m.conf_index, m.conf,
                bytes(m.data), m.version)
    return m


def split(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def feed_all(reader, chunks):
    out = []
    for chunk in chunks:
        out += reader.feed(chunk)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=8))
def test_round_trip_any_split(msgs, cuts):
    stream = HS + b"".join(b"".join(wire.encode(m)) for m in msgs)
    assert len(stream) == len(HS) + sum(map(wire.frame_size, msgs))
    assert stream == HS + b"".join(map(ref.encode, msgs))
    got = feed_all(Reader(1 << 20, 1 << 20), split(stream, cuts))
    assert [plain(m) for m in got] == [plain(m) for m in msgs]
    handshake, ref_got, used, err = ref.decode(stream, 1 << 20, 1 << 20)
    assert err is None and used == len(stream) and handshake == (7, "127.0.0.1:9007")
    assert [plain(m) for m in ref_got] == [plain(m) for m in msgs]


def test_one_byte_at_a_time_and_handshake_first():
    msgs = [AppendEntries(3, 1, 1, 1, [Entry(3, 1, b"x" * 8), Entry(3, 3, b"y" * 16)]),
            RequestVoteResult(3, True), InstallSnapshot(3, 9, 2, 1, Configuration.of(
                (1, "a:1")), b"snap" * 10)]
    stream = HS + b"".join(b"".join(wire.encode(m)) for m in msgs)
    reader = Reader(1 << 20, 1 << 20)
    got = []
    for i in range(len(stream)):
        got += reader.feed(stream[i:i + 1])
        if i < len(HS) - 1:
            assert reader.handshake is None
        else:
            assert reader.handshake == (7, "127.0.0.1:9007")
    assert [plain(m) for m in got] == [plain(m) for m in msgs]


def test_encode_returns_payload_buffers_uncopied():
    payloads = [b"a" * 8, bytes(16), memoryview(b"c" * 24)]
    bufs = wire.encode(AppendEntries(1, 0, 0, 0, [Entry(1, 1, p) for p in payloads]))
    assert len(bufs) == 4 and all(b is p for b, p in zip(bufs[1:], payloads, strict=True))
    data = b"s" * 100
    bufs = wire.encode(InstallSnapshot(1, 2, 1, 1, Configuration.of((1, "a:1")), data))
    assert bufs[-1] is data


def test_payloads_are_views_of_the_chunk():
    msg = AppendEntries(2, 0, 0, 0, [Entry(2, 1, bytes([i]) * 8) for i in range(50)])
    frame = b"".join(wire.encode(msg))
    chunk = HS + frame + frame
    reader = Reader(1 << 20, 1 << 20)
    got = reader.feed(chunk)
    assert len(got) == 2
    for m in got:
        for e in m.entries:
            assert isinstance(e.payload, memoryview) and e.payload.obj is chunk
            assert e.payload.readonly


def test_spanning_frame_is_joined_once_and_sliced():
    msg = AppendEntries(2, 0, 0, 0, [Entry(2, 1, bytes([i]) * 8) for i in range(10)])
    frame = b"".join(wire.encode(msg))
    reader = Reader(1 << 20, 1 << 20)
    assert reader.feed(HS + frame[:30]) == []
    (got,) = reader.feed(frame[30:])
    owners = {id(e.payload.obj) for e in got.entries}
    assert len(owners) == 1
    assert plain(got) == plain(msg)


def test_trickled_bytes_cost_about_what_was_sent():
    """A frame fed one byte at a time is held in one owned buffer, not one view
    per byte (about 200 bytes each)."""
    import tracemalloc

    msg = InstallSnapshot(1, 2, 1, 1, Configuration.of((1, "a:1")), bytes(60000))
    frame = b"".join(wire.encode(msg))
    chunks = [frame[i:i + 1] for i in range(len(frame) - 1)]
    reader = Reader(1 << 20, 1 << 20)
    reader.feed(HS)
    tracemalloc.start()
    try:
        for chunk in chunks:
            reader.feed(chunk)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 4 * len(frame), held
    (got,) = reader.feed(frame[-1:])
    assert plain(got) == plain(msg)


def test_mixed_piece_sizes_reassemble():
    msg = AppendEntries(1, 0, 0, 0, [Entry(1, 1, bytes([i % 256]) * 4096) for i in range(8)])
    frame = b"".join(wire.encode(msg))
    sizes = [1, 5000, 3, 2, 9000, 1, 1, 4095, 4096, 7]
    chunks, pos = [], 0
    for k in sizes * 10:
        chunks.append(frame[pos:pos + k])
        pos += k
    chunks.append(frame[pos:])
    got = feed_all(Reader(1 << 20, 1 << 20), [HS] + chunks)
    assert [plain(m) for m in got] == [plain(msg)]


def test_bytearray_chunk_gives_read_only_views():
    frame = b"".join(wire.encode(AppendEntries(1, 0, 0, 0, [Entry(1, 1, b"q" * 8)])))
    (got,) = Reader(64, 64).feed(bytearray(HS + frame))
    assert got.entries[0].payload.readonly


def test_high_type_bits_ignored():
    raw = bytearray(b"".join(wire.encode(TimeoutNow(1, 2, 3))))
    raw[2:8] = b"\xff" * 6
    (got,) = Reader(64, 64).feed(HS + bytes(raw))
    assert got == TimeoutNow(1, 2, 3)
    assert ref.decode(HS + bytes(raw), 64, 64)[1] == [got]


def test_legacy_and_longer_headers():
    cases = [
        (3, struct.pack("<4Q", 5, 1, 7, 4), RequestVote(5, 1, 7, 4, False, False, 1)),
        (3, struct.pack("<6Q", 5, 1, 7, 4, 2, 99), RequestVote(5, 1, 7, 4, False, True, 2)),
        (4, struct.pack("<2Q", 5, 1), RequestVoteResult(5, True, False, 1)),
        (4, struct.pack("<2Q", 5, 7) + struct.pack("<Q", 1) + b"extra!!!",
         RequestVoteResult(5, True, True, 2)),
        (2, struct.pack("<3Q", 5, 3, 8), AppendEntriesResult(5, 3, 8, 0, 0)),
        (2, struct.pack("<5Q", 5, 3, 8, 1, 42), AppendEntriesResult(5, 3, 8, 1, 1)),
        (6, struct.pack("<4Q", 5, 9, 4, 1), TimeoutNow(5, 9, 4)),
    ]
    for type_, header, expected in cases:
        raw = HS + struct.pack("<QQ", type_, len(header)) + header
        assert Reader(64, 64).feed(raw) == [expected]
        assert ref.decode(raw, 64, 64)[1] == [expected]


def test_append_entries_header_longer_than_needed():
    header = struct.pack("<5Q", 1, 0, 0, 0, 1) + struct.pack("<QB3xI", 1, 1, 8) + bytes(24)
    raw = HS + struct.pack("<QQ", 1, len(header)) + header + b"p" * 8
    (got,) = Reader(1024, 1024).feed(raw)
    assert plain(got) == ("AE", 1, 0, 0, 0, 0, ((1, 1, b"p" * 8),))


def test_unaligned_last_entry_decoded_as_libraft_does():
    msg = AppendEntries(1, 0, 0, 0, [Entry(1, 1, b"x" * 8), Entry(1, 1, b"abc"),
                                     Entry(1, 2, b"")])
    raw = b"".join(wire.encode(msg))
    assert len(raw) == 16 + 48 + 48 + 11          # no padding on the wire
    (got,) = Reader(1024, 1024).feed(HS + raw)
    assert plain(got) == plain(msg)


# ------------------------------------------------------------------- errors

def frame(type_, header, payload=b""):
    return struct.pack("<QQ", type_, len(header)) + header + payload


def ae_header(descs, n=None, extra=8):
    body = struct.pack("<5Q", 1, 0, 0, 0, len(descs) if n is None else n)
    body += b"".join(struct.pack("<QB3xI", *d) for d in descs)
    return body + bytes(extra)


CONF1 = Configuration.of((1, "a:1")).encode()

BAD = {
    "protocol": struct.pack("<3Q", 2, 1, 8) + b"a:1\0\0\0\0\0",
    "address too long": struct.pack("<3Q", 1, 1, 4104),
    "address without NUL": struct.pack("<3Q", 1, 1, 8) + b"12345678",
    "address length 0": struct.pack("<3Q", 1, 1, 0),
    "address not UTF-8": struct.pack("<3Q", 1, 1, 8) + b"\xff\xfe\0\0\0\0\0\0",
    "zero header length": HS + struct.pack("<QQ", 3, 0),
    "unknown type 0": HS + frame(0, bytes(8)),
    "unknown type 7": HS + frame(7, bytes(24)),
    "unknown type low bits": HS + frame(0x10007, bytes(24)),
    "header over the limit": HS + struct.pack("<QQ", 1, 4097),
    "RequestVote 24": HS + frame(3, bytes(24)),
    "RequestVote 36": HS + frame(3, bytes(36)),
    "RequestVoteResult 8": HS + frame(4, bytes(8)),
    "RequestVoteResult 20": HS + frame(4, bytes(20)),
    "AppendEntriesResult 16": HS + frame(2, bytes(16)),
    "AppendEntriesResult 28": HS + frame(2, bytes(28)),
    "TimeoutNow 16": HS + frame(6, bytes(16)),
    "AppendEntries 32": HS + frame(1, bytes(32)),
    "InstallSnapshot 40": HS + frame(5, bytes(40)),
    "entry count vs header": HS + frame(1, ae_header([(1, 1, 8)], n=2)),
    "entry count huge": HS + frame(1, ae_header([], n=2**63)),
    "entry type 0": HS + frame(1, ae_header([(1, 0, 8)]), bytes(8)),
    "entry type 4": HS + frame(1, ae_header([(1, 1, 8), (1, 4, 8)]), bytes(16)),
    "entry past the payload": HS + frame(1, ae_header([(1, 1, 4), (1, 1, 8)]), bytes(12)),
    "AppendEntries payload over the limit": HS + frame(1, ae_header([(1, 1, 2**32 - 8)])),
    "configuration past the header": HS + frame(5, struct.pack("<5Q", 1, 1, 1, 1, 64)
                                                + bytes(16)),
    "configuration malformed": HS + frame(5, struct.pack("<5Q", 1, 1, 1, 1, 16)
                                          + b"\x02" + bytes(15) + bytes(16)),
    "snapshot over the limit": HS + frame(5, struct.pack("<5Q", 1, 1, 1, 1, len(CONF1))
                                          + CONF1 + struct.pack("<2Q", 2**60, 0)),
}


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_input_raises_and_kills_the_reader(name):
    data = BAD[name]
    reader = Reader(4096, 1 << 20)
    with pytest.raises(WireError) as info:
        reader.feed(data)
    assert isinstance(info.value, MalformedError) and info.value.code == 6
    assert "stream byte" in str(info.value)
    with pytest.raises(WireError, match="already failed"):
        reader.feed(b"")
    # Split down to single bytes: the same error, at the latest on the last byte.
    reader = Reader(4096, 1 << 20)
    with pytest.raises(WireError):
        for i in range(len(data)):
            reader.feed(data[i:i + 1])
    _, _, _, err = ref.decode(data, 4096, 1 << 20)
    assert isinstance(err, MalformedError), name


def test_error_keeps_the_messages_before_it():
    good = b"".join(wire.encode(TimeoutNow(1, 2, 3)))
    with pytest.raises(WireError) as info:
        Reader(64, 64).feed(HS + good + good + frame(9, bytes(8)))
    assert info.value.messages == [TimeoutNow(1, 2, 3)] * 2
    assert f"stream byte {len(HS) + 2 * len(good)}" in str(info.value)


@pytest.mark.parametrize("header", [
    ae_header([(1, 1, 2**32 - 8)] * 2**8),
    struct.pack("<5Q", 1, 1, 1, 1, len(CONF1)) + CONF1 + struct.pack("<2Q", 2**60, 0),
], ids=["AppendEntries 2**40 bytes", "InstallSnapshot 2**60 bytes"])
def test_oversized_declared_payload_raises_at_once_without_allocating(header):
    reader = Reader(1 << 20, BIG)
    start = time.perf_counter()
    with pytest.raises(WireError, match="exceeds the limit"):
        reader.feed(HS + frame(1 if len(header) > 300 else 5, header))
    assert time.perf_counter() - start < 0.5


def test_huge_header_length_raises_at_once():
    start = time.perf_counter()
    with pytest.raises(WireError, match="exceeds the limit"):
        Reader(1 << 20, BIG).feed(HS + struct.pack("<QQ", 1, 2**60))
    with pytest.raises(WireError, match="exceeds the limit"):
        Reader(1 << 20, BIG).feed(struct.pack("<3Q", 1, 1, 2**62))
    assert time.perf_counter() - start < 0.5


def test_payload_under_the_limit_accumulates_only_what_arrives():
    """A 512 MiB claim under a 1 GiB limit: nothing is reserved up front."""
    header = struct.pack("<5Q", 1, 1, 1, 1, len(CONF1)) + CONF1 + struct.pack("<2Q", 1 << 29, 0)
    reader = Reader(1 << 20, BIG)
    assert reader.feed(HS + frame(5, header) + b"x" * 100) == []
    assert reader._pending < 4096


@pytest.mark.parametrize("msg", [
    AppendEntries(1, 0, 0, 0, [Entry(1, 4, b"")]),
    AppendEntries(1, 0, 0, 0, [Entry(1, 1, b"abc"), Entry(1, 1, b"x" * 8)]),
    RequestVote(2**64, 0, 0, 0),
    TimeoutNow(-1, 0, 0),
], ids=["bad entry type", "unaligned then non-empty", "term 2**64", "negative"])
def test_encode_refuses_what_the_wire_cannot_carry(msg):
    with pytest.raises(WireError):
        wire.encode(msg)


def test_encode_handshake_refuses_nul_and_big_ids():
    with pytest.raises(WireError):
        wire.encode_handshake(1, "a\0b")
    with pytest.raises(WireError):
        wire.encode_handshake(2**64, "a:1")
