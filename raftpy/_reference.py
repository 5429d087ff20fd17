"""Pure-Python reference implementations of the C engine's codecs.

Slow and obviously correct: written straight from the byte layout in spec
§3.5 so that differential tests can check the C code against it.  Not used on
any runtime path.  May import: the standard library, raftpy.core.types,
raftpy.errors.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from raftpy.core.types import Entry
from raftpy.errors import CorruptError, InvalidError, IOError_, MalformedError, RaftError

POLY = 0x04C11DB7
MAX_BATCH_ENTRIES = 262144


def _table() -> list[int]:
    out = []
    for b in range(256):
        crc = b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ POLY) if crc & 0x80000000 else crc << 1
        out.append(crc & 0xFFFFFFFF)
    return out


_TABLE = _table()


def crc32(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32, polynomial 0x04C11DB7, MSB first, init 0 (chainable), no final XOR."""
    table = _TABLE
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def encode_batch(entries: Sequence[Entry]) -> bytes:
    if not entries:
        raise InvalidError("a batch needs at least one entry")
    header = bytearray(struct.pack("<Q", len(entries)))
    for e in entries:
        if len(e.payload) % 8:
            raise InvalidError("entry buffers must be 8-byte aligned")
        if not 1 <= e.type <= 3:
            raise InvalidError(f"entry type {e.type} is not valid")
        header += struct.pack("<QB3xI", e.term, e.type, len(e.payload))
    data = b"".join(bytes(e.payload) for e in entries)
    return struct.pack("<II", crc32(header), crc32(data)) + bytes(header) + data


def decode_one(buf: bytes, pos: int) -> tuple[list[Entry], int]:
    """Decode the batch at pos; return its entries and the offset after it."""
    where = f"batch starting at byte {pos}"
    if len(buf) - pos < 16:
        raise IOError_(f"{where}: short read")
    header_crc, data_crc, n = struct.unpack_from("<IIQ", buf, pos)
    if n == 0:
        raise CorruptError(f"{where}: entries count in preamble is zero")
    if n > MAX_BATCH_ENTRIES:
        raise CorruptError(f"{where}: entries count {n} in preamble is too high")
    hdr_end = pos + 16 + 16 * n
    if hdr_end > len(buf):
        raise IOError_(f"{where}: short read")
    if crc32(buf[pos + 8:hdr_end]) != header_crc:
        raise CorruptError(f"{where}: header checksum mismatch")
    metas = [struct.unpack_from("<QB3xI", buf, pos + 16 + 16 * i) for i in range(n)]
    for _term, type_, length in metas:
        if not 1 <= type_ <= 3:
            raise MalformedError(f"{where}: entry type {type_} is not valid")
        if length % 8:
            raise MalformedError(f"{where}: entry data length {length} is not a multiple of 8")
    data_end = hdr_end + sum(m[2] for m in metas)
    if data_end > len(buf):
        raise IOError_(f"{where}: short read")
    if crc32(buf[hdr_end:data_end]) != data_crc:
        raise CorruptError(f"{where}: data checksum mismatch")
    entries, at = [], hdr_end
    for term, type_, length in metas:
        entries.append(Entry(term, type_, buf[at:at + length]))
        at += length
    return entries, data_end


def decode_batches(buf: bytes, offset: int = 0) -> tuple[list[Entry], int]:
    entries: list[Entry] = []
    pos = offset
    while pos < len(buf):
        got, pos = decode_one(buf, pos)
        entries.extend(got)
    return entries, pos


def scan_segment(buf: bytes) -> tuple[list[Entry], int, str, RaftError | None]:
    """Return (entries, end, outcome, error); outcome is one of 'clean',
    'empty', 'zero_tail', 'bad_tail' (damage after `end`), 'bad_format'."""
    if not buf or (len(buf) >= 8 and not any(buf)):
        return [], 0, "empty", None
    if len(buf) < 8:
        return [], 0, "bad_format", IOError_(f"file has only {len(buf)} bytes")
    (fmt,) = struct.unpack_from("<Q", buf, 0)
    if fmt != 1:
        return [], 0, "bad_format", CorruptError(f"unexpected format version {fmt}")
    entries: list[Entry] = []
    pos = 8
    while pos < len(buf):
        try:
            got, nxt = decode_one(buf, pos)
        except RaftError as err:
            outcome = "zero_tail" if not any(buf[pos:]) else "bad_tail"
            return entries, pos, outcome, err
        entries.extend(got)
        pos = nxt
    return entries, pos, "clean", None
