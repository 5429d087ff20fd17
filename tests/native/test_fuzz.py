"""Fuzzing the decoders: random and mutated inputs never crash the C code and
never yield entries the pure-Python reference would not yield."""

import struct

from raftpy import _bindings, _reference
from raftpy._bindings import ScanOutcome
from raftpy.core.types import Entry
from raftpy.errors import RaftError

ROUNDS = 3000


def plain(entries):
    return [(e.term, e.type, bytes(e.payload)) for e in entries]


def valid_segment(rng):
    out = bytearray(struct.pack("<Q", 1))
    for _ in range(rng.randrange(1, 5)):
        entries = [Entry(rng.randrange(1, 5), rng.randrange(1, 4),
                         rng.randbytes(8 * rng.randrange(0, 6)))
                   for _ in range(rng.randrange(1, 5))]
        out += _bindings.encode_batch(entries)
    return bytes(out)


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(4)
        if kind == 0 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:
            del data[rng.randrange(len(data)):]
        elif kind == 2:
            data += rng.randbytes(rng.randrange(1, 40))
        elif data:
            pos = rng.randrange(len(data))
            data[pos:pos + 8] = rng.randbytes(8)
    return bytes(data)


def check_against_reference(data):
    scan = _bindings.scan_segment(data)
    ref_entries, ref_end, ref_outcome, ref_err = _reference.scan_segment(data)
    assert plain(scan.entries) == plain(ref_entries)
    if ref_outcome == "clean":
        assert scan.outcome == ScanOutcome.CLEAN and scan.end == ref_end
    elif ref_outcome in ("bad_tail", "zero_tail"):
        assert scan.end == ref_end and type(scan.error) is type(ref_err)
    try:
        entries, _ = _bindings.decode_batches(data, 8) if len(data) >= 8 else ([], 0)
    except RaftError:
        return
    assert plain(entries) == plain(_reference.decode_batches(data, 8)[0])


def test_mutated_segments(seeded_random):
    rng = seeded_random
    for _ in range(ROUNDS):
        check_against_reference(mutate(rng, valid_segment(rng)))


def test_random_bytes(seeded_random):
    rng = seeded_random
    for _ in range(ROUNDS):
        data = struct.pack("<Q", 1) + rng.randbytes(rng.randrange(0, 200))
        check_against_reference(data)
        _bindings.scan_segment(rng.randbytes(rng.randrange(0, 64)))


# ------------------------------------------------------------------- wire

WIRE_ROUNDS = 1500


def wire_stream(rng):
    """A handshake and a few well-formed frames of every type."""
    from raftpy.core.configuration import Configuration
    from raftpy.core.messages import (
        AppendEntries,
        AppendEntriesResult,
        InstallSnapshot,
        RequestVote,
        RequestVoteResult,
        TimeoutNow,
    )
    from raftpy.io import wire

    def u():
        return rng.choice([0, 1, 5, rng.randrange(2**64)])

    makers = [
        lambda: RequestVote(u(), u(), u(), u(), rng.random() < 0.5, rng.random() < 0.5),
        lambda: RequestVoteResult(u(), rng.random() < 0.5, rng.random() < 0.5),
        lambda: AppendEntriesResult(u(), u(), u(), u()),
        lambda: TimeoutNow(u(), u(), u()),
        lambda: InstallSnapshot(u(), u(), u(), u(), Configuration.of(
            *[(i, f"h{i}:1") for i in range(1, rng.randrange(2, 4))]),
            rng.randbytes(rng.randrange(0, 40))),
        lambda: AppendEntries(u(), u(), u(), u(), [
            Entry(u(), rng.randrange(1, 4), rng.randbytes(8 * rng.randrange(0, 4)))
            for _ in range(rng.randrange(0, 5))]),
    ]
    out = wire.encode_handshake(rng.randrange(1, 9), f"127.0.0.{rng.randrange(1, 9)}:900")
    for _ in range(rng.randrange(1, 5)):
        out += b"".join(wire.encode(rng.choice(makers)()))
    return out


def wire_plain(messages):
    from raftpy.core.messages import AppendEntries, InstallSnapshot

    out = []
    for m in messages:
        if isinstance(m, AppendEntries):
            m = (m.term, m.prev_log_index, m.prev_log_term, m.leader_commit,
                 plain(m.entries))
        elif isinstance(m, InstallSnapshot):
            m = (m.term, m.last_index, m.last_term, m.conf_index, m.conf, bytes(m.data))
        out.append(m)
    return out


def check_wire_against_reference(rng, data):
    """The C-backed Reader, fed data in random pieces, and the pure-Python
    reference agree on every message and on whether the input is malformed."""
    from raftpy import _reference_wire
    from raftpy.io.wire import Reader, WireError

    header_max, payload_max = rng.choice([(4096, 4096), (64, 64), (1 << 20, 32)])
    reader = Reader(header_max, payload_max)
    got, error = [], None
    pos = 0
    while pos < len(data) and error is None:
        step = rng.choice([1, 2, 7, 16, 100, len(data)])
        try:
            got += reader.feed(data[pos:pos + step])
        except WireError as err:
            got += err.messages
            error = err
        pos += step
    handshake, ref_got, _, ref_err = _reference_wire.decode(data, header_max, payload_max)
    assert wire_plain(got) == wire_plain(ref_got)
    assert (error is None) == (ref_err is None), (error, ref_err)
    if error is None:
        assert reader.handshake == handshake


def test_wire_mutated_streams(seeded_random):
    rng = seeded_random
    for _ in range(WIRE_ROUNDS):
        check_wire_against_reference(rng, mutate(rng, wire_stream(rng)))


def test_wire_random_bytes_after_a_handshake(seeded_random):
    from raftpy.io import wire

    rng = seeded_random
    for _ in range(WIRE_ROUNDS):
        head = wire.encode_handshake(1, "a:1")
        frame = struct.pack("<QQ", rng.randrange(0, 8), rng.choice([0, 8, 16, 24, 32, 40,
                                                                    48, 64, 200]))
        check_wire_against_reference(rng, head + frame + rng.randbytes(rng.randrange(0, 120)))


def test_wire_random_entry_descriptors(seeded_random):
    """AppendEntries headers with random types and lengths (aligned or not) and
    about as many payload bytes as they announce, then another frame."""
    from raftpy.core.messages import TimeoutNow
    from raftpy.io import wire

    rng = seeded_random
    tail = b"".join(wire.encode(TimeoutNow(1, 2, 3)))
    for _ in range(WIRE_ROUNDS):
        n = rng.randrange(0, 5)
        descs = [(rng.randrange(4), rng.choice([1, 1, 1, 2, 3, 0, 4, 255]),
                  rng.choice([0, 8, 16, rng.randrange(0, 25)])) for _ in range(n)]
        header = struct.pack("<5Q", 1, 2, 3, 4, n) + b"".join(
            struct.pack("<QB3xI", *d) for d in descs) + bytes(rng.choice([0, 8, 8, 13]))
        size = sum(d[2] for d in descs) + rng.choice([0, 0, 0, -1, 1])
        data = (wire.encode_handshake(1, "a:1") + struct.pack("<QQ", 1, len(header)) + header
                + rng.randbytes(max(size, 0)) + tail)
        check_wire_against_reference(rng, data)
