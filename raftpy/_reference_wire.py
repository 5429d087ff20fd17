"""Pure-Python reference of libraft's wire format (spec §4.2-4.4), for differential tests.

Slow and obviously correct: written straight from the byte layouts, with no
buffering tricks, no views and no C, so that tests can check raftpy.io.wire
(and its C entry-descriptor codec) against it.  Not used on any runtime path.
It also covers raftpy's own four (ReadHeartbeat, ReadHeartbeatResult,
ReadIndexRequest, ReadIndexResult).
May import: the standard library, raftpy.core (values), raftpy.errors.

``decode`` takes a whole byte string and decodes as far as it can; it applies
the same checks at the same points of a frame as ``wire.Reader`` (preamble in,
header in, payload in), so for any input the two agree on the messages and on
whether the input is malformed, however the Reader's input is split.
"""

from __future__ import annotations

import struct

from raftpy.core.configuration import decode_configuration, encode_configuration
from raftpy.core.messages import (
    AppendEntries,
    AppendEntriesResult,
    InstallSnapshot,
    Message,
    ReadHeartbeat,
    ReadHeartbeatResult,
    ReadIndexRequest,
    ReadIndexResult,
    RequestVote,
    RequestVoteResult,
    TimeoutNow,
)
from raftpy.core.types import Entry
from raftpy.errors import MalformedError

__all__ = ["encode_handshake", "encode", "decode"]


def _u64s(*values: int) -> bytes:
    return b"".join(struct.pack("<Q", v) for v in values)


def _pad8(n: int) -> int:
    return -(-n // 8) * 8


def encode_handshake(server_id: int, address: str) -> bytes:
    raw = address.encode() + b"\0"
    field = raw + b"\0" * (_pad8(len(raw)) - len(raw))
    return _u64s(1, server_id, len(field)) + field


def _frame(type_: int, header: bytes, payload: bytes = b"") -> bytes:
    return _u64s(type_, len(header)) + header + payload


def encode(m: Message) -> bytes:
    """The whole frame as one byte string (0.18 header sizes)."""
    if isinstance(m, RequestVote):
        flags = int(m.disrupt_leader) + 2 * int(m.pre_vote)
        return _frame(3, _u64s(m.term, m.candidate_id, m.last_log_index, m.last_log_term,
                               flags))
    if isinstance(m, RequestVoteResult):
        return _frame(4, _u64s(m.term, int(m.vote_granted), int(m.pre_vote)))
    if isinstance(m, AppendEntriesResult):
        return _frame(2, _u64s(m.term, m.rejected, m.last_log_index, m.features))
    if isinstance(m, TimeoutNow):
        return _frame(6, _u64s(m.term, m.last_log_index, m.last_log_term))
    if isinstance(m, ReadHeartbeat):
        return _frame(0x7201, _u64s(m.term, m.read_round))
    if isinstance(m, ReadHeartbeatResult):
        return _frame(0x7202, _u64s(m.term, m.read_round))
    if isinstance(m, ReadIndexRequest):
        return _frame(0x7203, _u64s(m.term, m.request_id))
    if isinstance(m, ReadIndexResult):
        return _frame(0x7204, _u64s(m.term, m.request_id, m.read_index))
    if isinstance(m, InstallSnapshot):
        conf = encode_configuration(m.conf)
        header = (_u64s(m.term, m.last_index, m.last_term, m.conf_index, len(conf)) + conf
                  + _u64s(len(m.data), 0))
        return _frame(5, header, bytes(m.data))
    return _encode_append_entries(m)


def _encode_append_entries(m: AppendEntries) -> bytes:
    header = _u64s(m.term, m.prev_log_index, m.prev_log_term, m.leader_commit,
                   len(m.entries))
    unaligned_before = False
    for e in m.entries:
        size = len(e.payload)
        if e.type not in (1, 2, 3):
            raise MalformedError(f"entry type {e.type} is not valid")
        if size and unaligned_before:
            raise MalformedError("a non-empty entry after one not a multiple of 8 long")
        unaligned_before = unaligned_before or size % 8 != 0
        header += struct.pack("<QBBBBI", e.term, e.type, 0, 0, 0, size)
    header += _u64s(0)
    return _frame(1, header, b"".join(bytes(e.payload) for e in m.entries))


class _Short(Exception):
    """The input ends before the unit being decoded does."""


class _Cursor:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Short()
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])


def _words(header: bytes, count: int, at: int = 0) -> list[int]:
    return [int(struct.unpack_from("<Q", header, at + 8 * i)[0]) for i in range(count)]


def decode(data: bytes, header_max: int, payload_max: int, handshake: bool = True
           ) -> tuple[tuple[int, str] | None, list[Message], int, MalformedError | None]:
    """Decode data: (handshake, messages, bytes used, error or None)."""
    messages: list[Message] = []
    peer: tuple[int, str] | None = None
    used = 0
    try:
        if handshake:
            cur = _Cursor(data, 0)
            peer = _decode_handshake(cur, header_max)
            used = cur.pos
        while used < len(data):
            cur = _Cursor(data, used)
            messages.append(_decode_frame(cur, header_max, payload_max))
            used = cur.pos
    except _Short:
        pass
    except MalformedError as err:
        return peer, messages, used, err
    return peer, messages, used, None


def _decode_handshake(cur: _Cursor, header_max: int) -> tuple[int, str]:
    protocol, server_id, size = cur.u64(), cur.u64(), cur.u64()
    if protocol != 1:
        raise MalformedError(f"protocol {protocol}")
    if size > header_max:
        raise MalformedError(f"address length {size}")
    field = cur.take(size)
    if b"\0" not in field:
        raise MalformedError("address without NUL")
    try:
        return server_id, field.split(b"\0")[0].decode()
    except UnicodeDecodeError as err:
        raise MalformedError("address not UTF-8") from err


# The least header length each type needs; RequestVote, RequestVoteResult and
# AppendEntriesResult have a legacy length and a current least length.
_LEAST = {1: 40, 2: 32, 3: 40, 4: 24, 5: 48, 6: 24, 0x7201: 16, 0x7202: 16,
          0x7203: 16, 0x7204: 24}
_LEGACY = {2: 24, 3: 32, 4: 16}


def _decode_frame(cur: _Cursor, header_max: int, payload_max: int) -> Message:
    type_ = cur.u64() % 65536
    size = cur.u64()
    if size == 0:
        raise MalformedError("header length 0")
    if size > header_max:
        raise MalformedError(f"header length {size}")
    if type_ not in _LEAST:
        raise MalformedError(f"type {type_}")
    if size < _LEAST[type_] and size != _LEGACY.get(type_):
        raise MalformedError(f"type {type_}: header length {size}")
    header = cur.take(size)
    if type_ == 1:
        return _decode_append_entries(cur, header, payload_max)
    if type_ == 5:
        return _decode_install_snapshot(cur, header, payload_max)
    legacy = size == _LEGACY.get(type_)
    if type_ == 3:
        term, cand, lli, llt = _words(header, 4)
        flags = 0 if legacy else _words(header, 1, 32)[0]
        return RequestVote(term, cand, lli, llt, flags & 1 == 1, flags & 2 == 2,
                           1 if legacy else 2)
    if type_ == 4:
        term, granted = _words(header, 2)
        flags = 0 if legacy else _words(header, 1, 16)[0]
        return RequestVoteResult(term, granted != 0, flags & 1 == 1, 1 if legacy else 2)
    if type_ == 2:
        term, rejected, lli = _words(header, 3)
        features = 0 if legacy else _words(header, 1, 24)[0]
        return AppendEntriesResult(term, rejected, lli, features, 0 if legacy else 1)
    if type_ in (0x7201, 0x7202):  # raftpy's own (core/messages.py)
        term, read_round = _words(header, 2)
        kind = ReadHeartbeat if type_ == 0x7201 else ReadHeartbeatResult
        return kind(term, read_round)
    if type_ == 0x7203:
        term, request_id = _words(header, 2)
        return ReadIndexRequest(term, request_id)
    if type_ == 0x7204:
        term, request_id, read_index = _words(header, 3)
        return ReadIndexResult(term, request_id, read_index)
    term, lli, llt = _words(header, 3)
    return TimeoutNow(term, lli, llt, 0)


def _decode_append_entries(cur: _Cursor, header: bytes, payload_max: int) -> Message:
    term, prev_index, prev_term, commit, n = _words(header, 5)
    if 40 + 16 * n > len(header):
        raise MalformedError(f"{n} entries in a {len(header)}-byte header")
    metas = [struct.unpack_from("<QB3xI", header, 40 + 16 * i) for i in range(n)]
    total = sum(m[2] for m in metas)
    # libraft: the payload is the plain sum of lengths; entry i starts at the
    # sum of the earlier lengths each rounded up to 8.
    starts, offset = [], 0
    for _term, type_, length in metas:
        if type_ not in (1, 2, 3):
            raise MalformedError(f"entry type {type_}")
        if length > 0 and offset + length > total:
            raise MalformedError("entry past the payload")
        starts.append(offset)
        offset += _pad8(length)
    if total > payload_max:
        raise MalformedError(f"payload length {total}")
    payload = cur.take(total)
    entries = [Entry(t, ty, payload[s:s + ln]) for (t, ty, ln), s in zip(metas, starts,
                                                                         strict=True)]
    return AppendEntries(term, prev_index, prev_term, commit, entries, 0)


def _decode_install_snapshot(cur: _Cursor, header: bytes, payload_max: int) -> Message:
    term, last_index, last_term, conf_index, conf_len = _words(header, 5)
    if 48 + conf_len > len(header):
        raise MalformedError(f"configuration of {conf_len} bytes in a {len(header)}-byte header")
    conf = decode_configuration(header[40:40 + conf_len])
    data_len = _words(header, 1, 40 + conf_len)[0]
    if data_len > payload_max:
        raise MalformedError(f"payload length {data_len}")
    data = cur.take(data_len)
    return InstallSnapshot(term, last_index, last_term, conf_index, conf, data, 0)
