"""The C AppendEntries descriptor codec (csrc/wire.c via _bindings) against the
pure-Python reference (raftpy._reference_wire): same bytes, same refusals,
same decoded entries, for aligned, unaligned, empty and invalid entries."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftpy import _bindings, _reference_wire
from raftpy.core.messages import AppendEntries
from raftpy.core.types import Entry
from raftpy.errors import InvalidError, MalformedError

lengths = st.one_of(st.integers(0, 4).map(lambda k: 8 * k), st.integers(0, 20))
entries = st.lists(st.builds(Entry, st.integers(0, 2**64 - 1),
                             st.sampled_from([1, 2, 3, 1, 1, 0, 4, 255]),
                             lengths.flatmap(lambda n: st.binary(min_size=n, max_size=n))),
                   max_size=12)


def plain(es):
    return [(e.term, int(e.type), bytes(e.payload)) for e in es]


@settings(max_examples=400, deadline=None)
@given(entries, st.integers(0, 2**64 - 1))
def test_encode_matches_reference_or_both_refuse(es, term):
    msg = AppendEntries(term, 2, 3, 4, es)
    try:
        expected = _reference_wire.encode(msg)
    except MalformedError:
        with pytest.raises(InvalidError):
            _bindings.encode_append_entries(term, 2, 3, 4, es)
        return
    head, payloads = _bindings.encode_append_entries(term, 2, 3, 4, es)
    assert all(p is e.payload for p, e in zip(payloads, es, strict=True))
    assert bytes(head) + b"".join(payloads) == expected


@settings(max_examples=400, deadline=None)
@given(entries, st.integers(0, 64), st.integers(-3, 3))
def test_decode_matches_reference(es, extra, short):
    """Descriptors written by hand (so invalid ones reach the decoder), with a
    payload of about the announced size."""
    descs = b"".join(struct.pack("<QB3xI", e.term, e.type, len(e.payload)) for e in es)
    header = struct.pack("<5Q", 1, 2, 3, 4, len(es)) + descs + bytes(8)
    total = sum(len(e.payload) for e in es)
    payload = b"".join(bytes(e.payload) for e in es)[:max(total + short, 0)]
    payload += bytes(max(total + short - len(payload), 0))
    buf = memoryview(header + payload + bytes(extra))
    # The reference sees the same bytes up to the end of this frame only.
    frame = struct.pack("<QQ", 1, len(header)) + header + (payload + bytes(extra))[:total]
    _, ref_msgs, _, ref_err = _reference_wire.decode(frame, 1 << 20, 1 << 20, handshake=False)
    try:
        size, got = _bindings.EntryDecoder().decode(buf, 40, len(es), len(header), 1 << 20)
    except MalformedError:
        assert ref_err is not None
        return
    assert size == total and ref_err is None
    if len(payload) + extra < total:
        assert got is None and ref_msgs == []
    else:
        assert got is not None
        assert plain(got) == plain(ref_msgs[0].entries)


def test_decoder_reuses_and_grows_its_arrays():
    dec = _bindings.EntryDecoder()
    for n in (1, 100, 3, 70000, 5):
        header = struct.pack("<5Q", 1, 2, 3, 4, n) + struct.pack("<QB3xI", 9, 1, 8) * n
        buf = memoryview(header + b"z" * 8 * n)
        size, got = dec.decode(buf, 40, n, len(header), 1 << 30)
        assert size == 8 * n and len(got) == n and bytes(got[-1].payload) == b"z" * 8


def test_decoder_refuses_more_descriptors_than_the_buffer_holds():
    with pytest.raises(MalformedError, match="do not fit"):
        _bindings.EntryDecoder().decode(memoryview(bytes(100)), 40, 2**40, 100, 1 << 20)


def test_encode_error_names_the_entry():
    cases = [
        ([Entry(1, 1, b""), Entry(1, 7, b"")], "entry 2 of 2: entry type 7"),
        ([Entry(-1, 1, b"")], "entry 1 of 1: term -1"),
        ([Entry(1, 1, b"abc"), Entry(1, 1, b"")], None),
        ([Entry(1, 1, b"abc"), Entry(1, 1, b"12345678")], "entry 2 of 2 .8 bytes. follows"),
        ([Entry(1, 256, b"")], "entry 1 of 1: entry type 256"),
    ]
    for es, match in cases:
        if match is None:
            _bindings.encode_append_entries(1, 0, 0, 0, es)
        else:
            with pytest.raises(InvalidError, match=match):
                _bindings.encode_append_entries(1, 0, 0, 0, es)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(Entry, st.integers(0, 2**64 - 1), st.sampled_from([1, 2, 3, 0, 4]),
                          lengths.flatmap(lambda n: st.binary(min_size=n, max_size=n))),
                min_size=1, max_size=_bindings._SMALL_AE_MAX),
       st.integers(0, 2**64 - 1))
def test_the_small_path_writes_what_c_writes(es, term):
    """Up to _SMALL_AE_MAX entries are packed in Python (no cffi set-up); the same
    bytes as rp_encode_append_entries, and whatever C refuses the small path leaves to C."""
    small = _bindings._small_append_entries(term, 2**64 - 1, 3, 4, es)
    old = _bindings._SMALL_AE_MAX
    _bindings._SMALL_AE_MAX = 0
    try:
        try:
            head, payloads = _bindings.encode_append_entries(term, 2**64 - 1, 3, 4, es)
        except InvalidError:
            assert small is None
            return
    finally:
        _bindings._SMALL_AE_MAX = old
    assert small is not None
    assert bytes(small[0]) == bytes(head)
    assert all(a is b for a, b in zip(small[1], payloads, strict=True))
