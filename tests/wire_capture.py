"""The spec §4.9 capture (libraft 0.18.1 client to a raw socket) as golden bytes,
shared by tests/io/test_wire_golden.py (raftpy's encoders and decoders) and
tests/interop/test_wire_libraft.py (real libraft sending and receiving them).

Real libraft 0.15.0 sends exactly these bytes (with the 0.15 AppendEntriesResult
of 24 header bytes), the configuration of 88 bytes included; the bytes libraft
leaves uninitialised are listed by ``unused_ranges``.
"""

from __future__ import annotations

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


def capture(libraft_015: bool = False) -> bytes:
    """The whole stream; with libraft_015, its AppendEntriesResult of H = 24."""
    aer = APPEND_ENTRIES_RESULT_015 if libraft_015 else APPEND_ENTRIES_RESULT
    return HANDSHAKE + b"".join(aer if raw is APPEND_ENTRIES_RESULT else raw
                                for raw, _ in MESSAGES)


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 8], "little")


def handshake_unused(stream: bytes) -> range:
    """The handshake's address padding (past its NUL): uninitialised in libraft."""
    size = 24 + _u64(stream, 16)
    return range(stream.index(b"\0", 24, size) + 1, size)


def frame_end(stream: bytes, pos: int) -> int | None:
    """End offset of the frame at pos (its payload included), None if the
    stream does not hold it whole yet."""
    if len(stream) < pos + 16:
        return None
    type_, h = _u64(stream, pos), _u64(stream, pos + 8)
    end = pos + 16 + h
    if len(stream) < end:
        return None
    if type_ == 1:
        n = _u64(stream, pos + 48)
        end += sum(int.from_bytes(stream[pos + 56 + 16 * i + 12:pos + 56 + 16 * i + 16],
                                  "little") for i in range(n))
    elif type_ == 5:
        end += _u64(stream, end - 16)
    return end if len(stream) >= end else None


def _configuration_end(stream: bytes, at: int) -> int:
    """Where the encoding of the configuration at ``at`` ends, before its padding
    (spec §3.3: version byte, u64 count, then id, NUL-terminated address, role)."""
    pos = at + 9
    for _ in range(_u64(stream, at + 1)):
        pos = stream.index(b"\0", pos + 8) + 2
    return pos


def frame_unused(stream: bytes, pos: int, entries: bool = True) -> list[range]:
    """The bytes of the frame at pos that libraft leaves uninitialised: the
    unused trailing word of AppendEntries and InstallSnapshot headers, the
    padding of InstallSnapshot's configuration and (with entries) the 3 unused
    bytes of each AppendEntries entry header (libraft's uvEncodeBatchHeader
    skips them: a real 0.15 server sent garbage there)."""
    type_, end = _u64(stream, pos), pos + 16 + _u64(stream, pos + 8)
    out = []
    if type_ == 1 and entries:
        out += [range(pos + 56 + 16 * i + 9, pos + 56 + 16 * i + 12)
                for i in range(_u64(stream, pos + 48))]
    if type_ in (1, 5):
        out.append(range(end - 8, end))
    if type_ == 5:
        out.append(range(_configuration_end(stream, pos + 56), pos + 56 + _u64(stream, pos + 48)))
    return out


def unused_ranges(stream: bytes) -> list[range]:
    """Offsets in a stream (a handshake, then frames) that libraft leaves
    uninitialised: the handshake's address padding and each frame's
    (``frame_unused``, but for the entry headers' unused bytes: the capture
    has zeros there, and the golden tests keep them checked)."""
    out = [handshake_unused(stream)]
    pos = 24 + _u64(stream, 16)
    while pos < len(stream):
        end = frame_end(stream, pos)
        assert end is not None, f"a truncated frame at byte {pos}"
        out += frame_unused(stream, pos, entries=False)
        pos = end
    return out


def masked(stream: bytes) -> bytes:
    """stream with the uninitialised bytes zeroed."""
    out = bytearray(stream)
    for r in unused_ranges(stream):
        out[r.start:r.stop] = bytes(len(r))
    return bytes(out)
