"""The spec §4.9 capture (libraft 0.18.1 client to a raw socket) as golden bytes:
every message in it, byte for byte, encoded and decoded, by raftpy.io.wire and by
the pure-Python reference; plus the 0.15 AppendEntriesResult (H = 24).  The bytes
live in tests/wire_capture.py (shared with the real-libraft tests)."""

from __future__ import annotations

import pytest
from wire_capture import (
    APPEND_ENTRIES,
    APPEND_ENTRIES_RESULT_015,
    CAPTURE,
    CONF,
    CONF_BYTES,
    HANDSHAKE,
    MESSAGES,
    masked,
    unused_ranges,
)

from raftpy import _reference_wire as ref
from raftpy.core.messages import AppendEntries, AppendEntriesResult, InstallSnapshot
from raftpy.io import wire


def plain(message):
    """A message with its entries as a tuple of bytes-payload entries (comparable)."""
    if isinstance(message, AppendEntries):
        return (message.term, message.prev_log_index, message.prev_log_term,
                message.leader_commit, message.version,
                tuple((e.term, int(e.type), bytes(e.payload)) for e in message.entries))
    if isinstance(message, InstallSnapshot):
        return (message.term, message.last_index, message.last_term, message.conf_index,
                message.conf, bytes(message.data), message.version)
    return message


def test_configuration_is_88_bytes():
    assert CONF.encode() == CONF_BYTES and len(CONF_BYTES) == 88


def test_we_send_zeros_where_libraft_leaves_bytes_uninitialised():
    assert masked(CAPTURE) == CAPTURE
    assert len(unused_ranges(CAPTURE)) == 1 + 2 + 2     # handshake, 2 AE, IS word + conf


def test_handshake_encodes_byte_for_byte():
    assert wire.encode_handshake(1, "127.0.0.1:9001") == HANDSHAKE
    assert ref.encode_handshake(1, "127.0.0.1:9001") == HANDSHAKE


@pytest.mark.parametrize("raw,message", MESSAGES, ids=[type(m).__name__ for _, m in MESSAGES])
def test_message_encodes_byte_for_byte(raw, message):
    bufs = wire.encode(message)
    assert b"".join(bufs) == raw
    assert wire.frame_size(message) == len(raw)
    assert ref.encode(message) == raw


def test_capture_decodes_in_one_chunk():
    reader = wire.Reader(1 << 20, 1 << 20)
    got = reader.feed(CAPTURE)
    assert reader.handshake == (1, "127.0.0.1:9001")
    assert [plain(m) for m in got] == [plain(m) for _, m in MESSAGES]
    handshake, ref_got, used, err = ref.decode(CAPTURE, 1 << 20, 1 << 20)
    assert err is None and used == len(CAPTURE) and handshake == (1, "127.0.0.1:9001")
    assert [plain(m) for m in ref_got] == [plain(m) for _, m in MESSAGES]


def test_capture_decodes_one_byte_at_a_time():
    reader = wire.Reader(1 << 20, 1 << 20)
    got = []
    for i in range(len(CAPTURE)):
        got += reader.feed(CAPTURE[i:i + 1])
    assert reader.handshake == (1, "127.0.0.1:9001")
    assert [plain(m) for m in got] == [plain(m) for _, m in MESSAGES]


def test_versions_set_as_the_spec_says():
    reader = wire.Reader(1 << 20, 1 << 20)
    got = reader.feed(CAPTURE)
    assert [m.version for m in got] == [2, 2, 0, 0, 1, 0, 0]


def test_libraft_015_append_entries_result():
    for decode in (lambda raw: wire.Reader(64, 64).feed(HANDSHAKE + raw),
                   lambda raw: ref.decode(HANDSHAKE + raw, 64, 64)[1]):
        (got,) = decode(APPEND_ENTRIES_RESULT_015)
        assert got == AppendEntriesResult(5, 0, 8, features=0, version=0)


def test_garbage_in_the_unused_bytes_of_entry_headers_is_ignored():
    """libraft 0.15 leaves each entry header's 3 unused bytes uninitialised (a
    real server sent 00 00 31): both decoders must read past them."""
    raw = bytearray(APPEND_ENTRIES)
    for i in range(2):
        raw[56 + 16 * i + 9:56 + 16 * i + 12] = b"\x00\x31\xff"
    expected = plain(MESSAGES[2][1])
    assert [plain(m) for m in wire.Reader(1 << 20, 1 << 20).feed(HANDSHAKE + raw)] == [expected]
    assert [plain(m) for m in ref.decode(HANDSHAKE + bytes(raw), 1 << 20, 1 << 20)[1]] == \
        [expected]
