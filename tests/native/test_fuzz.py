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
