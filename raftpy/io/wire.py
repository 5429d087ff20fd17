"""libraft's wire format (spec §4.2-4.4): the handshake, message framing, the six headers.

May import: the standard library, raftpy.core (values), raftpy._bindings, raftpy.errors.

Sending: ``encode_handshake`` once per outbound connection, then ``encode``
per message; ``encode`` returns the frame as a list of buffers for
``transport.writelines``: one header buffer, then the entry payloads (empty
ones included) or the snapshot data exactly as the message holds them (no
concatenation copy).  It always sends libraft 0.18's header sizes
(RequestVote 40, RequestVoteResult 24, AppendEntriesResult 32 bytes),
whatever ``version`` the message says.  Four more types are raftpy's own:
ReadHeartbeat and ReadHeartbeatResult (0x7201/0x7202, header 16 bytes: term,
round), ReadIndexRequest (0x7203, 16 bytes: term, id) and ReadIndexResult
(0x7204, 24 bytes: term, id, read index).  They go only to raftpy peers
(the feature rules are in raftpy/core/messages.py); libraft never sees them.

Receiving: one ``Reader`` per accepted connection.  ``feed(chunk)`` returns
the messages the chunk completes; the handshake comes first and is consumed
into ``Reader.handshake``.  Rules it keeps:

- Every length read from the stream is checked against a limit before any
  byte it announces is awaited: a header against ``header_max_bytes`` (also
  the limit of the handshake's address), a payload against
  ``payload_max_bytes``.  Bytes are only ever accumulated as they arrive, so
  a hostile length costs nothing.
- A frame wholly inside one chunk is decoded in place: entry payloads and
  snapshot data are memoryview slices of the chunk.  Only a frame that spans
  chunks is joined into one new buffer (one copy) and sliced from there
  (its pieces under 4 KiB are copied as they come, see ``Reader._add``).
  Hence the rule for callers: a chunk given to ``feed`` must never be
  mutated afterwards (the messages, and a partial frame, keep views of it).
  asyncio's ``data_received`` hands over a fresh ``bytes`` each time.  The
  other side of zero copy: one live payload view keeps its whole chunk (or
  joined frame) alive; whoever keeps entries for long (a log held in memory)
  holds those buffers.
- Checks happen at three points of a frame, whatever the chunk boundaries:
  when its 16-byte preamble is in (zero header length, unknown type, header
  over the limit or too short for the type), when its header is in (entry
  count vs header length, entry types, entry lengths vs payload, the
  snapshot's configuration, payload over the limit), and when its payload
  is in (the message is built).
- Receivers accept libraft 0.15's and 0.18's header sizes and ignore bytes
  past the fields they read; ``version`` is set from the header length as
  spec §4.4 says.  Unlike libraft we check that the header holds every field
  we read (libraft reads past the buffer instead).
- Any malformed input raises ``WireError`` naming what and at which stream
  byte; its ``messages`` holds the messages this chunk completed before the
  damage (nothing is lost).  The Reader is dead afterwards: the caller
  closes the connection.

AppendEntries payload layout (spec §4.4): the payload is Σ data_length bytes
(that is how libraft frames it), and libraft locates entry i at the running
sum of pad8 of the earlier lengths.  With lengths that are multiples of 8 the
two agree (the only case libraft's senders produce).  Otherwise the last
non-empty entry after an unaligned one always ends past the payload, where
libraft reads out of bounds: we reject exactly those frames, and for every
frame we accept, libraft's padded offsets equal the plain running sums.  The
encoder refuses to produce such a frame (WireError).
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable

from raftpy import _bindings
from raftpy.core.configuration import Configuration, decode_configuration, encode_configuration
from raftpy.core.messages import (
    AppendEntries,
    AppendEntriesResult,
    InstallSnapshot,
    Message,
    MessageType,
    ReadHeartbeat,
    ReadHeartbeatResult,
    ReadIndexRequest,
    ReadIndexResult,
    RequestVote,
    RequestVoteResult,
    TimeoutNow,
)
from raftpy.errors import InvalidError, MalformedError

__all__ = ["WireError", "encode_handshake", "encode", "frame_size", "Reader", "PROTOCOL",
           "HANDSHAKE_SIZE", "PREAMBLE_SIZE"]

PROTOCOL = 1
HANDSHAKE_SIZE = 24             # protocol, server id, address length
PREAMBLE_SIZE = 16              # type word, header length
_TYPE_MASK = 0xFFFF             # 0.18 reads only the low 16 bits of the type word
_COPY_BELOW = 4096              # partial-frame pieces smaller than this are copied

_HANDSHAKE = struct.Struct("<QQQ")
_PREAMBLE = struct.Struct("<QQ")
_W2 = struct.Struct("<2Q")
_W3 = struct.Struct("<3Q")
_W4 = struct.Struct("<4Q")
_W5 = struct.Struct("<5Q")
_U64 = struct.Struct("<Q")
_RV = struct.Struct("<7Q")      # type, H, term, candidate, last index, last term, flags
_RVR = struct.Struct("<5Q")     # type, H, term, granted, flags
_AER = struct.Struct("<6Q")     # type, H, term, rejected, last index, features
_TN = struct.Struct("<5Q")      # type, H, term, last index, last term
_RH = struct.Struct("<4Q")      # raftpy's ReadHeartbeat(Result): type, H, term, round
_RIR = struct.Struct("<5Q")     # raftpy's ReadIndexResult: type, H, term, id, read index
_IS = struct.Struct("<7Q")      # type, H, term, last index, last term, conf index, C
_IS_TAIL = struct.Struct("<2Q")  # data length, unused word
_HEARTBEAT = struct.Struct("<8Q")  # AppendEntries with n = 0: type, H, 4 fields, n, unused

# Header sizes sent (0.18) and the fixed part of the variable ones.
RV_HEADER = 40
RVR_HEADER = 24
AER_HEADER = 32
TN_HEADER = 24
RH_HEADER = 16                  # raftpy's ReadHeartbeat(Result), ReadIndexRequest
RIR_HEADER = 24                 # raftpy's ReadIndexResult
AE_FIXED = 48                   # 5 words + the unused trailing word; + 16 per entry
IS_FIXED = 56                   # 5 words + data length + unused word; + configuration


class WireError(MalformedError):
    """A malformed handshake or frame (libraft's RAFT_MALFORMED): close the connection.

    ``messages`` holds what the failing ``feed`` call decoded before the damage."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.messages: list[Message] = []


def _pad8(n: int) -> int:
    return (n + 7) & ~7


# ------------------------------------------------------------------ sending

def encode_handshake(server_id: int, address: str) -> bytes:
    """The 24-byte preamble and the NUL-terminated, zero-padded address (spec §4.2)."""
    raw = address.encode()
    if b"\0" in raw:
        raise WireError(f"handshake: address {address!r} contains a NUL byte")
    length = _pad8(len(raw) + 1)
    try:
        head = _HANDSHAKE.pack(PROTOCOL, server_id, length)
    except struct.error as err:
        raise WireError(f"handshake: server id {server_id} does not fit a u64") from err
    return head + raw + bytes(length - len(raw))


def _flags_rv(m: RequestVote) -> int:
    return (1 if m.disrupt_leader else 0) | (2 if m.pre_vote else 0)


def _enc_rv(m: RequestVote) -> list[bytes | memoryview]:
    return [_RV.pack(MessageType.REQUEST_VOTE, RV_HEADER, m.term, m.candidate_id,
                     m.last_log_index, m.last_log_term, _flags_rv(m))]


def _enc_rvr(m: RequestVoteResult) -> list[bytes | memoryview]:
    return [_RVR.pack(MessageType.REQUEST_VOTE_RESULT, RVR_HEADER, m.term,
                      1 if m.vote_granted else 0, 1 if m.pre_vote else 0)]


def _enc_aer(m: AppendEntriesResult) -> list[bytes | memoryview]:
    return [_AER.pack(MessageType.APPEND_ENTRIES_RESULT, AER_HEADER, m.term, m.rejected,
                      m.last_log_index, m.features)]


def _enc_tn(m: TimeoutNow) -> list[bytes | memoryview]:
    return [_TN.pack(MessageType.TIMEOUT_NOW, TN_HEADER, m.term, m.last_log_index,
                     m.last_log_term)]


def _enc_rh(m: ReadHeartbeat) -> list[bytes | memoryview]:
    return [_RH.pack(MessageType.READ_HEARTBEAT, RH_HEADER, m.term, m.read_round)]


def _enc_rhr(m: ReadHeartbeatResult) -> list[bytes | memoryview]:
    return [_RH.pack(MessageType.READ_HEARTBEAT_RESULT, RH_HEADER, m.term, m.read_round)]


def _enc_rireq(m: ReadIndexRequest) -> list[bytes | memoryview]:
    return [_RH.pack(MessageType.READ_INDEX_REQUEST, RH_HEADER, m.term, m.request_id)]


def _enc_rires(m: ReadIndexResult) -> list[bytes | memoryview]:
    return [_RIR.pack(MessageType.READ_INDEX_RESULT, RIR_HEADER, m.term, m.request_id,
                      m.read_index)]


def _enc_is(m: InstallSnapshot) -> list[bytes | memoryview]:
    conf = encode_configuration(m.conf)
    head = _IS.pack(MessageType.INSTALL_SNAPSHOT, IS_FIXED + len(conf), m.term, m.last_index,
                    m.last_term, m.conf_index, len(conf))
    tail = _IS_TAIL.pack(len(m.data), 0)
    out: list[bytes | memoryview] = [b"".join((head, conf, tail))]
    if len(m.data):
        out.append(m.data)
    return out


def _enc_ae(m: AppendEntries) -> list[bytes | memoryview]:
    if not m.entries:
        return [_HEARTBEAT.pack(MessageType.APPEND_ENTRIES, AE_FIXED, m.term, m.prev_log_index,
                                m.prev_log_term, m.leader_commit, 0, 0)]
    head, payloads = _bindings.encode_append_entries(
        m.term, m.prev_log_index, m.prev_log_term, m.leader_commit, m.entries)
    return [head, *payloads]


_ENCODERS: dict[type, Callable[[Message], list[bytes | memoryview]]] = {
    RequestVote: _enc_rv,          # type: ignore[dict-item]
    RequestVoteResult: _enc_rvr,   # type: ignore[dict-item]
    AppendEntriesResult: _enc_aer,  # type: ignore[dict-item]
    TimeoutNow: _enc_tn,           # type: ignore[dict-item]
    InstallSnapshot: _enc_is,      # type: ignore[dict-item]
    AppendEntries: _enc_ae,        # type: ignore[dict-item]
    ReadHeartbeat: _enc_rh,        # type: ignore[dict-item]
    ReadHeartbeatResult: _enc_rhr,  # type: ignore[dict-item]
    ReadIndexRequest: _enc_rireq,  # type: ignore[dict-item]
    ReadIndexResult: _enc_rires,   # type: ignore[dict-item]
}


def encode(message: Message) -> list[bytes | memoryview]:
    """The whole frame of message as buffers for writelines (0.18 header sizes).

    Raises WireError for a message the wire cannot carry: a field outside
    0..2^64-1, an entry type outside 1..3, an entry of 2^32 bytes or more, or
    an entry length that is not a multiple of 8 followed by a non-empty entry
    (libraft's receiver would read it from the wrong offset)."""
    try:
        return _ENCODERS[type(message)](message)
    except struct.error as err:
        raise WireError(f"{type(message).__name__}: a field does not fit a u64: {err}") from err
    except (MalformedError, InvalidError) as err:
        raise WireError(f"{type(message).__name__}: {err}") from err


def configuration_size(conf: Configuration) -> int:
    """Size of encode_configuration(conf) without encoding it (spec §3.3)."""
    return _pad8(9 + sum(10 + len(s.address.encode()) for s in conf.servers))


_PAYLOAD = operator.itemgetter(2)     # Entry.payload, without a Python frame per entry


def frame_size(message: Message) -> int:
    """Total bytes encode(message) produces."""
    if isinstance(message, AppendEntries):
        return (PREAMBLE_SIZE + AE_FIXED + 16 * len(message.entries)
                + sum(map(len, map(_PAYLOAD, message.entries))))
    if isinstance(message, InstallSnapshot):
        return PREAMBLE_SIZE + IS_FIXED + configuration_size(message.conf) + len(message.data)
    return PREAMBLE_SIZE + _SENT_HEADER[type(message)]


_SENT_HEADER: dict[type, int] = {RequestVote: RV_HEADER, RequestVoteResult: RVR_HEADER,
                                 AppendEntriesResult: AER_HEADER, TimeoutNow: TN_HEADER,
                                 ReadHeartbeat: RH_HEADER, ReadHeartbeatResult: RH_HEADER,
                                 ReadIndexRequest: RH_HEADER, ReadIndexResult: RIR_HEADER}


# ---------------------------------------------------------------- receiving

Buffer = bytes | memoryview


def _check_rv(h: int) -> None:
    if h != 32 and h < 40:
        raise WireError(f"RequestVote header of {h} bytes: 32 (v1) or at least 40 (v2) "
                        f"expected")


def _check_rvr(h: int) -> None:
    if h != 16 and h < 24:
        raise WireError(f"RequestVoteResult header of {h} bytes: 16 (v1) or at least 24 (v2) "
                        f"expected")


def _check_aer(h: int) -> None:
    if h != 24 and h < 32:
        raise WireError(f"AppendEntriesResult header of {h} bytes: 24 (v0) or at least 32 (v1) "
                        f"expected")


def _check_min(name: str, least: int) -> Callable[[int], None]:
    def check(h: int) -> None:
        if h < least:
            raise WireError(f"{name} header of {h} bytes: at least {least} expected")
    return check


def _dec_rv(buf: Buffer, at: int, h: int) -> Message:
    term, cand, lli, llt = _W4.unpack_from(buf, at)
    if h == 32:
        return RequestVote(term, cand, lli, llt, False, False, 1)
    (flags,) = _U64.unpack_from(buf, at + 32)
    return RequestVote(term, cand, lli, llt, bool(flags & 1), bool(flags & 2), 2)


def _dec_rvr(buf: Buffer, at: int, h: int) -> Message:
    term, granted = _W2.unpack_from(buf, at)
    if h == 16:
        return RequestVoteResult(term, granted != 0, False, 1)
    (flags,) = _U64.unpack_from(buf, at + 16)
    return RequestVoteResult(term, granted != 0, bool(flags & 1), 2)


def _dec_aer(buf: Buffer, at: int, h: int) -> Message:
    term, rejected, lli = _W3.unpack_from(buf, at)
    if h == 24:
        return AppendEntriesResult(term, rejected, lli, 0, 0)
    (features,) = _U64.unpack_from(buf, at + 24)
    return AppendEntriesResult(term, rejected, lli, features, 1)


def _dec_tn(buf: Buffer, at: int, h: int) -> Message:
    term, lli, llt = _W3.unpack_from(buf, at)
    return TimeoutNow(term, lli, llt, 0)


def _dec_rh(buf: Buffer, at: int, h: int) -> Message:
    term, read_round = _W2.unpack_from(buf, at)
    return ReadHeartbeat(term, read_round)


def _dec_rhr(buf: Buffer, at: int, h: int) -> Message:
    term, read_round = _W2.unpack_from(buf, at)
    return ReadHeartbeatResult(term, read_round)


def _dec_rireq(buf: Buffer, at: int, h: int) -> Message:
    term, request_id = _W2.unpack_from(buf, at)
    return ReadIndexRequest(term, request_id)


def _dec_rires(buf: Buffer, at: int, h: int) -> Message:
    term, request_id, read_index = _W3.unpack_from(buf, at)
    return ReadIndexResult(term, request_id, read_index)


# Fixed-size headers: type -> (length check, decoder).  AppendEntries and
# InstallSnapshot carry a payload and are handled by the Reader itself.
_FIXED: dict[int, tuple[Callable[[int], None], Callable[[Buffer, int, int], Message]]] = {
    MessageType.REQUEST_VOTE: (_check_rv, _dec_rv),
    MessageType.REQUEST_VOTE_RESULT: (_check_rvr, _dec_rvr),
    MessageType.APPEND_ENTRIES_RESULT: (_check_aer, _dec_aer),
    MessageType.TIMEOUT_NOW: (_check_min("TimeoutNow", 24), _dec_tn),
    MessageType.READ_HEARTBEAT: (_check_min("ReadHeartbeat", RH_HEADER), _dec_rh),
    MessageType.READ_HEARTBEAT_RESULT: (_check_min("ReadHeartbeatResult", RH_HEADER),
                                        _dec_rhr),
    MessageType.READ_INDEX_REQUEST: (_check_min("ReadIndexRequest", RH_HEADER), _dec_rireq),
    MessageType.READ_INDEX_RESULT: (_check_min("ReadIndexResult", RIR_HEADER), _dec_rires),
}


class Reader:
    """Decodes one inbound connection: the handshake, then a stream of frames."""

    def __init__(self, header_max_bytes: int, payload_max_bytes: int) -> None:
        assert header_max_bytes > 0 and payload_max_bytes >= 0
        self.handshake: tuple[int, str] | None = None
        self._header_max = header_max_bytes
        self._payload_max = payload_max_bytes
        self._decoder = _bindings.EntryDecoder()
        # A unit (handshake or frame) that spans chunks: views of its bytes so
        # far, how many, and how many it needs at least (known so far).
        self._pieces: list[memoryview | bytearray] = []
        self._tail: bytearray | None = None     # the owned last piece small ones go into
        self._pending = 0
        self._want = 0
        self._fed = 0               # stream bytes fed before the current chunk
        self._at = 0                # stream offset of the unit being decoded
        self._dead: WireError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Decode what data completes; data must not be mutated afterwards."""
        if self._dead is not None:
            raise WireError(f"reader already failed: {self._dead}")
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if not view.readonly:
            view = view.toreadonly()
        out: list[Message] = []
        try:
            rest = self._resume(view, out) if self._pending else view
            self._scan(rest, self._fed + len(view) - len(rest), out)
        except WireError as err:
            dead = WireError(f"stream byte {self._at}: {err}")
            dead.messages = out
            self._dead = dead
            raise dead from err
        self._fed += len(view)
        return out

    @property
    def buffered_bytes(self) -> int:
        """Bytes of a handshake or frame begun but not complete (0 at a boundary):
        an end of stream now truncates it (the transport's "EOF mid-frame")."""
        return self._pending

    def _scan(self, view: memoryview, base: int, out: list[Message]) -> None:
        """Decode the units that lie wholly in view; stash the partial one."""
        pos, end = 0, len(view)
        while pos < end:
            self._at = base + pos
            got = self._step(view, pos, out)
            if got < 0:
                self._pieces, self._tail, self._pending = [], None, 0
                self._add(view[pos:])
                self._want = -got
                return
            pos = got

    def _resume(self, view: memoryview, out: list[Message]) -> memoryview:
        """Complete the unit in progress from the start of view; return the rest."""
        while True:
            take = min(len(view), self._want - self._pending)
            if take:
                self._add(view[:take])
                view = view[take:]
            if self._pending < self._want:
                return view
            pieces = self._pieces
            one = pieces[0]
            buf = one if len(pieces) == 1 and isinstance(one, memoryview) \
                else memoryview(b"".join(pieces))
            got = self._step(buf, 0, out)
            self._tail = None
            if got >= 0:
                assert got == len(buf), (got, len(buf))
                self._pieces, self._pending, self._want = [], 0, 0
                return view
            self._pieces, self._want = [buf], -got

    def _add(self, piece: memoryview) -> None:
        """Keep piece for the unit in progress.  Small pieces are copied into one
        owned buffer: a view costs about 200 bytes, so a peer trickling its bytes
        one by one would otherwise make us hold 200 times what it sent (and a
        small view would keep its whole chunk alive)."""
        if len(piece) < _COPY_BELOW:
            if self._tail is None:
                self._tail = bytearray()
                self._pieces.append(self._tail)
            self._tail += piece
        else:
            self._pieces.append(piece)
            self._tail = None
        self._pending += len(piece)

    def _step(self, buf: memoryview, pos: int, out: list[Message]) -> int:
        """Decode the unit at pos: its end, or minus the bytes it needs from pos."""
        if self.handshake is None:
            return self._handshake(buf, pos)
        return self._frame(buf, pos, out)

    def _handshake(self, buf: memoryview, pos: int) -> int:
        if len(buf) - pos < HANDSHAKE_SIZE:
            return -HANDSHAKE_SIZE
        protocol, server_id, length = _HANDSHAKE.unpack_from(buf, pos)
        length = int(length)
        if protocol != PROTOCOL:
            raise WireError(f"handshake: protocol {protocol}, expected {PROTOCOL}")
        if length > self._header_max:
            raise WireError(f"handshake: address length {length} exceeds the limit of "
                            f"{self._header_max} bytes")
        end = pos + HANDSHAKE_SIZE + length
        if len(buf) < end:
            return -(HANDSHAKE_SIZE + length)
        raw = bytes(buf[pos + HANDSHAKE_SIZE:end])
        nul = raw.find(0)
        if nul < 0:
            raise WireError(f"handshake: address field of {length} bytes has no NUL")
        try:
            address = raw[:nul].decode()
        except UnicodeDecodeError as err:
            raise WireError(f"handshake: address is not UTF-8: {err}") from None
        self.handshake = (server_id, address)
        return end

    def _frame(self, buf: memoryview, pos: int, out: list[Message]) -> int:
        avail = len(buf) - pos
        if avail < PREAMBLE_SIZE:
            return -PREAMBLE_SIZE
        word, h = _PREAMBLE.unpack_from(buf, pos)
        h = int(h)
        kind = word & _TYPE_MASK
        if h == 0:
            raise WireError(f"message type {kind}: header length 0")
        if h > self._header_max:
            raise WireError(f"message type {kind}: header of {h} bytes exceeds the limit of "
                            f"{self._header_max} bytes")
        fixed = _FIXED.get(kind)
        if fixed is not None:
            fixed[0](h)
            if avail < PREAMBLE_SIZE + h:
                return -(PREAMBLE_SIZE + h)
            out.append(fixed[1](buf, pos + PREAMBLE_SIZE, h))
            return pos + PREAMBLE_SIZE + h
        carrier = _CARRIERS.get(kind)
        if carrier is None:
            raise WireError(f"unknown message type {kind} (type word {word:#x})")
        carrier[0](h)
        if avail < PREAMBLE_SIZE + h:
            return -(PREAMBLE_SIZE + h)
        return carrier[1](self, buf, pos, h, out)

    def _payload_limit(self, name: str, size: int) -> None:
        if size > self._payload_max:
            raise WireError(f"{name}: payload of {size} bytes exceeds the limit of "
                            f"{self._payload_max} bytes")

    def _append_entries(self, buf: memoryview, pos: int, h: int, out: list[Message]) -> int:
        at = pos + PREAMBLE_SIZE
        term, prev_index, prev_term, commit, n = _W5.unpack_from(buf, at)
        n = int(n)
        if n > (h - 40) // 16:
            raise WireError(f"AppendEntries: {n} entries need a header of at least "
                            f"{40 + 16 * n} bytes, got {h}")
        payload_at = at + h
        try:
            size, entries = self._decoder.decode(buf, at + 40, n, payload_at, self._payload_max)
        except MalformedError as err:
            raise WireError(f"AppendEntries: {err}") from None
        if entries is None:
            return -(payload_at - pos + size)
        out.append(AppendEntries(term, prev_index, prev_term, commit, entries, 0))
        return payload_at + size

    def _install_snapshot(self, buf: memoryview, pos: int, h: int, out: list[Message]) -> int:
        at = pos + PREAMBLE_SIZE
        term, last_index, last_term, conf_index, conf_len = _W5.unpack_from(buf, at)
        conf_len = int(conf_len)
        if conf_len > h - 48:
            raise WireError(f"InstallSnapshot: a configuration of {conf_len} bytes needs a "
                            f"header of at least {48 + conf_len} bytes, got {h}")
        try:
            conf = decode_configuration(buf[at + 40:at + 40 + conf_len])
        except MalformedError as err:
            raise WireError(f"InstallSnapshot: {err}") from None
        size = int(_U64.unpack_from(buf, at + 40 + conf_len)[0])
        self._payload_limit("InstallSnapshot", size)
        payload_at = at + h
        if len(buf) - payload_at < size:
            return -(payload_at - pos + size)
        data = buf[payload_at:payload_at + size]
        out.append(InstallSnapshot(term, last_index, last_term, conf_index, conf, data, 0))
        return payload_at + size


# Headers followed by a payload: type -> (length check, Reader method).
_CARRIERS: dict[int, tuple[Callable[[int], None],
                           Callable[[Reader, memoryview, int, int, list[Message]], int]]] = {
    MessageType.APPEND_ENTRIES: (_check_min("AppendEntries", 40), Reader._append_entries),
    MessageType.INSTALL_SNAPSHOT: (_check_min("InstallSnapshot", 48), Reader._install_snapshot),
}
