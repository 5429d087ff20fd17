"""The spec §4.9 capture (libraft 0.18.1 client to a raw socket) as golden bytes:
every message in it, byte for byte, encoded and decoded, by raftpy.io.wire and by
the pure-Python reference; plus the 0.15 AppendEntriesResult (H = 24)."""

from __future__ import annotations

import pytest

from raftpy import _reference_wire as ref
from raftpy.core.configuration import Configuration
from raftpy.core.messages import (
    AppendEntries,
    AppendEntriesResult,
    InstallSnapshot,
    RequestVote,
    RequestVoteResult,
    TimeoutNow,
)
from raftpy.core.types import Entry, EntryType
from raftpy.io import wire


def w(*values: int) -> str:
    """u64 LE words as hex, the capture's "05 | 06 ..." notation."""
    return "".join(v.to_bytes(8, "little").hex() for v in values)


HANDSHAKE = bytes.fromhex(
    "0100000000000000" "0100000000000000" "1000000000000000"
    "3132372e302e302e313a393030310000")            # "127.0.0.1:9001", NUL, 1 pad byte

REQUEST_VOTE = bytes.fromhex(w(3, 40, 5, 1, 7, 4, 0b11))
REQUEST_VOTE_RESULT = bytes.fromhex(w(4, 24, 5, 1, 1))
APPEND_ENTRIES = bytes.fromhex(
    w(1, 80, 5, 6, 4, 6, 2)
    + "0500000000000000" "01000000" "08000000"      # term 5, COMMAND, 3 zero bytes, 8 B
    + "0500000000000000" "03000000" "10000000"      # term 5, CHANGE, 16 B
    + w(0)                                          # the unused trailing word
    + "aa" * 8) + b"0123456789abcde\0"
HEARTBEAT = bytes.fromhex(w(1, 48, 5, 6, 4, 6, 0, 0))
APPEND_ENTRIES_RESULT = bytes.fromhex(w(2, 32, 5, 0, 8, 0))
APPEND_ENTRIES_RESULT_015 = bytes.fromhex(w(2, 24, 5, 0, 8))
# The capture gives the configuration only as "88 bytes": three voters at
# 127.0.0.1:9001..9003 is an 88-byte configuration (pad8(9 + 3 x 24)); its
# bytes are spec §3.3's encoding (ours, checked against libraft's on disk).
CONF = Configuration.of((1, "127.0.0.1:9001"), (2, "127.0.0.1:9002"), (3, "127.0.0.1:9003"))
CONF_BYTES = bytes.fromhex(
    "01" "0300000000000000"
    "0100000000000000" + b"127.0.0.1:9001".hex() + "00" "01"
    "0200000000000000" + b"127.0.0.1:9002".hex() + "00" "01"
    "0300000000000000" + b"127.0.0.1:9003".hex() + "00" "01" + "00" * 7)
INSTALL_SNAPSHOT = (bytes.fromhex(w(5, 144, 5, 9, 4, 1, 88)) + CONF_BYTES
                    + bytes.fromhex(w(24, 0)) + b"snapshot-payload-bytes!\0")
TIMEOUT_NOW = bytes.fromhex(w(6, 24, 5, 9, 4))

MESSAGES = [
    (REQUEST_VOTE, RequestVote(5, 1, 7, 4, disrupt_leader=True, pre_vote=True)),
    (REQUEST_VOTE_RESULT, RequestVoteResult(5, True, pre_vote=True)),
    (APPEND_ENTRIES, AppendEntries(5, 6, 4, 6, [
        Entry(5, EntryType.COMMAND, b"\xaa" * 8),
        Entry(5, EntryType.CHANGE, b"0123456789abcde\0")])),
    (HEARTBEAT, AppendEntries(5, 6, 4, 6, [])),
    (APPEND_ENTRIES_RESULT, AppendEntriesResult(5, 0, 8)),
    (INSTALL_SNAPSHOT, InstallSnapshot(5, 9, 4, 1, CONF, b"snapshot-payload-bytes!\0")),
    (TIMEOUT_NOW, TimeoutNow(5, 9, 4)),
]
CAPTURE = HANDSHAKE + b"".join(raw for raw, _ in MESSAGES)


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
