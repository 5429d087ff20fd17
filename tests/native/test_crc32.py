"""libraft's CRC-32: known vectors, chaining, and the C code against the reference."""

import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from raftpy import _bindings, _reference


def test_known_vectors():
    for fn in (_bindings.crc32, _reference.crc32):
        assert fn(b"123456789") == 0x89A1897F
        assert fn(bytes(8)) == 0
        assert fn(b"") == 0
        assert fn(struct.pack("<Q", 123456789)) == 0x498A22CF


def test_is_not_zlib_crc32():
    assert _bindings.crc32(b"123456789") != zlib.crc32(b"123456789")


def test_spec_sample_batch_checksums():
    # Spec §3.12: the second batch of segment 2-4 has header crc 0xA57512AF
    # over its 24 header bytes and data crc 0x7E6C71FF over its 16-byte payload.
    header = struct.pack("<QQB3xI", 1, 2, 1, 16)
    assert _bindings.crc32(header) == 0xA57512AF
    assert _bindings.crc32(b"ABCDEFGHIJKLMNO\0") == 0x7E6C71FF


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700), st.integers(0, 2**32 - 1))
def test_c_matches_reference(data, init):
    assert _bindings.crc32(data, init) == _reference.crc32(data, init)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_chaining(a, b):
    assert _bindings.crc32(b, _bindings.crc32(a)) == _bindings.crc32(a + b)


def test_accepts_every_buffer_type():
    data = bytes(range(256)) * 5
    want = _reference.crc32(data)
    assert _bindings.crc32(bytearray(data)) == want
    assert _bindings.crc32(memoryview(data)[3:], _reference.crc32(data[:3])) == want
