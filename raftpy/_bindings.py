"""Typed Python wrappers around the C engine (raftpy._native).

This is the only module that imports ``raftpy._native``; no cffi object leaves
it: callers pass and get bytes-like objects, ints, ``Entry`` tuples and raftpy
errors.  Each call here is one C call per batch or per file, never one per
entry; the Python work that remains per entry is building the ``Entry``
tuples, which decoders do with memoryview slices (payloads are not copied).

May import: raftpy._native, raftpy.core.types, raftpy.errors.
"""

from __future__ import annotations

import array
import errno as _errno
import gc
import operator
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from itertools import repeat
from typing import Any

from raftpy._native import ffi, lib
from raftpy.core.types import Entry
from raftpy.errors import (
    CorruptError,
    InvalidError,
    IOError_,
    MalformedError,
    NoSpaceError,
    RaftError,
    TooBigError,
    TooManyError,
)

__all__ = [
    "crc32", "batch_size", "encode_batch", "encode_batch_uniform", "encode_batch_into",
    "decode_batches", "scan_segment", "prescan_segment", "PrescannedSegment", "find_batch",
    "read_and_prescan",
    "SegmentScan", "ScanOutcome", "Status",
    "AioContext", "aio_probe", "pwrite_sync", "fs_type", "read_image", "gc_paused",
    "error_from_errno",
    "MAX_BATCH_ENTRIES", "IMAGE_MAP_MIN_BYTES", "encode_append_entries", "EntryDecoder",
]

MAX_BATCH_ENTRIES = lib.RP_MAX_BATCH_ENTRIES
# read_image puts files of at least this many bytes in a mapping of their own.
IMAGE_MAP_MIN_BYTES = lib.RP_IMAGE_MAP_MIN
# How far past a bad batch we look for a valid one (corruption vs torn tail).
_FIND_LIMIT = 8 << 20
# How many bytes that search may checksum: a segment's worth several times
# over, and bounded whatever a payload holds (each 8-byte step could
# otherwise checksum a 4 MiB header).
FIND_BUDGET = 64 << 20


class Status(IntEnum):
    """Why a decode or scan stopped (mirrors enum rp_status in csrc/native.h)."""

    OK = lib.RP_OK
    MORE = lib.RP_MORE
    SHORT = lib.RP_SHORT
    ZERO_COUNT = lib.RP_ZERO_COUNT
    TOO_MANY = lib.RP_TOO_MANY
    HEADER_CRC = lib.RP_HEADER_CRC
    DATA_CRC = lib.RP_DATA_CRC
    BAD_TYPE = lib.RP_BAD_TYPE
    UNALIGNED = lib.RP_UNALIGNED
    BAD_FORMAT = lib.RP_BAD_FORMAT
    EMPTY = lib.RP_EMPTY
    TOO_SMALL = lib.RP_TOO_SMALL
    OVERRUN = lib.RP_OVERRUN


class ScanOutcome(IntEnum):
    """How a segment image ends."""

    CLEAN = 0       # the last batch ends exactly at the end of the data
    EMPTY = 1       # no data at all (empty file, or an open segment never written)
    ZERO_TAIL = 2   # valid batches, then only zeros (preallocated space)
    TORN_TAIL = 3   # valid batches, then a damaged batch and nothing valid after it
    CORRUPT = 4     # a damaged batch with valid batches after it, or a bad format word


def _errno_error(rv: int, what: str) -> RaftError:
    return error_from_errno(-rv, what)


def error_from_errno(err: int, what: str) -> RaftError:
    """Turn an errno value into the raftpy error libraft would report."""
    text = f"{what}: {os.strerror(err)}"
    if err == _errno.ENOSPC:
        return NoSpaceError(text)
    if err == _errno.EINVAL:
        return InvalidError(text)
    if err in (_errno.EAGAIN, _errno.EMFILE, _errno.ENFILE):
        return TooManyError(text)
    return IOError_(text)


# ---------------------------------------------------------------- checksums

def crc32(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """libraft's CRC-32 of data; chainable: crc32(b, crc32(a)) == crc32(a + b)."""
    return int(lib.rp_crc32(ffi.from_buffer(data), len(data), crc))


# ----------------------------------------------------------------- encoding

def batch_size(n: int, data_len: int) -> int:
    """On-disk size of a batch of n entries carrying data_len payload bytes."""
    return 16 + 16 * n + data_len


def _encode_error(rv: int, n: int, lengths: Sequence[int], types: Iterable[int]) -> RaftError:
    if rv == -_errno.E2BIG:
        return TooBigError(f"batch of {n} entries exceeds {MAX_BATCH_ENTRIES}")
    if rv == -_errno.EINVAL:
        if n == 0:
            return InvalidError("a batch needs at least one entry")
        if any(length % 8 for length in lengths):
            return InvalidError("entry buffers must be 8-byte aligned")
        bad = [t for t in types if not 1 <= t <= 3]
        if bad:
            return InvalidError(f"entry type {bad[0]} is not valid")
    return _errno_error(rv, "encode batch")


def _range_error(terms: Iterable[int], types: Iterable[int]) -> RaftError:
    """The first term outside 0..2^64-1 or type outside 1..3 (libraft's types)."""
    for pos, t in enumerate(terms):
        if not 0 <= t < 1 << 64:
            return InvalidError(f"entry {pos + 1}: term {t} is outside 0..2^64-1")
    for pos, ty in enumerate(types):
        if not 1 <= ty <= 3:
            return InvalidError(f"entry {pos + 1}: entry type {ty} is not valid")
    return InvalidError("a term or type does not fit the batch format")


def _encode(out: bytearray | memoryview, offset: int, n: int, terms: Sequence[int] | None,
            term: int, types: Sequence[int] | None, type_: int,
            payloads: Sequence[bytes | bytearray | memoryview]) -> int:
    if n == 1 and 0 <= offset <= len(out):
        # One entry (a single request on the leader; a follower's append of
        # one received entry, whose payload is a view of the socket's buffer):
        # one C call, no arrays, no join.  What it refuses goes the general way
        # below, which says why.
        p = payloads[0]
        if type(p) is bytes:
            data, size = p, len(p)
        elif isinstance(p, memoryview) and p.itemsize == 1 and p.c_contiguous:
            data, size = ffi.from_buffer(p), p.nbytes
        else:
            data = None
        if data is not None:
            try:
                rv = lib.rp_encode_batch_uniform(
                    ffi.from_buffer(out, require_writable=True) + offset, len(out) - offset,
                    1, term if terms is None else terms[0],
                    type_ if types is None else types[0], [size], data, size)
            except OverflowError:
                rv = -1
            if rv >= 0:
                return int(rv)
    lengths = [len(p) for p in payloads]
    data = b"".join(payloads)
    if offset < 0 or offset > len(out):
        raise InvalidError(f"offset {offset} outside buffer of {len(out)} bytes")
    dst = ffi.from_buffer("uint8_t[]", out, require_writable=True) + offset
    c_lengths = ffi.new("uint32_t[]", lengths) if n else ffi.NULL
    cap = len(out) - offset
    try:
        if terms is None:
            rv = lib.rp_encode_batch_uniform(dst, cap, n, term, type_, c_lengths, data,
                                             len(data))
        else:
            rv = lib.rp_encode_batch(dst, cap, n, ffi.new("uint64_t[]", list(terms)),
                                     ffi.new("uint8_t[]", list(types or ())), c_lengths,
                                     data, len(data))
    except OverflowError as err:
        # cffi refuses what does not fit a u64 term or a u8 type; say which.
        raise _range_error(terms if terms is not None else (term,),
                           types if types is not None else (type_,)) from err
    if rv < 0:
        if rv == -_errno.ENOBUFS:
            raise InvalidError(f"buffer too small: batch needs {batch_size(n, len(data))} "
                               f"bytes, {cap} left")
        raise _encode_error(rv, n, lengths, types if types is not None else (type_,))
    return int(rv)


def encode_batch(entries: Sequence[Entry]) -> bytearray:
    """Encode entries as one batch (libraft layout, spec §3.5)."""
    n = len(entries)
    payloads = [e.payload for e in entries]
    terms, types = [e.term for e in entries], [e.type for e in entries]
    try:
        out = bytearray(batch_size(n, sum(map(len, payloads))))
        _encode(out, 0, n, terms, 0, types, 0, payloads)
    except (RaftError, TypeError) as err:
        payloads = _flat_payloads(payloads, err)
        out = bytearray(batch_size(n, sum(map(len, payloads))))
        _encode(out, 0, n, terms, 0, types, 0, payloads)
    return out


def encode_batch_uniform(term: int, type_: int,
                         payloads: Sequence[bytes | bytearray | memoryview]) -> bytearray:
    """Encode payloads that share one term and type (the leader's common case)."""
    try:
        out = bytearray(batch_size(len(payloads), sum(map(len, payloads))))
        _encode(out, 0, len(payloads), None, term, None, type_, payloads)
    except (RaftError, TypeError) as err:
        payloads = _flat_payloads(payloads, err)
        out = bytearray(batch_size(len(payloads), sum(map(len, payloads))))
        _encode(out, 0, len(payloads), None, term, None, type_, payloads)
    return out


def encode_batch_into(out: bytearray | memoryview, offset: int,
                      entries: Sequence[Entry]) -> int:
    """Encode entries as one batch at out[offset:]; returns the bytes written."""
    payloads = [e.payload for e in entries]
    terms, types = [e.term for e in entries], [e.type for e in entries]
    try:
        return _encode(out, offset, len(entries), terms, 0, types, 0, payloads)
    except (RaftError, TypeError) as err:
        return _encode(out, offset, len(entries), terms, 0, types, 0,
                       _flat_payloads(payloads, err))


def _flat_payloads(payloads: Sequence[Any], err: Exception) -> list[Any]:
    """After an encode failed with err: payloads with every view of items wider than
    a byte, or not contiguous, replaced by its bytes (all of them), or err again
    if there is none such.  The encoders count len() bytes and join with
    b"".join: a view of 8-byte floats has len() 2 for its 16 bytes (the batch
    was sized short and refused as "buffer too small"), a strided view cannot
    be joined (TypeError).  Only on that error path, so that the hot path pays
    nothing for it.  A payload that is no buffer at all is an InvalidError."""
    flat: list[Any] = []
    changed = False
    for pos, p in enumerate(payloads):
        if type(p) is not bytes:
            try:
                view = memoryview(p)
            except TypeError:
                raise InvalidError(f"entry {pos + 1}: a payload is bytes, not "
                                   f"{type(p).__name__}") from None
            if view.itemsize != 1 or not view.c_contiguous:
                p, changed = view.tobytes(), True
        flat.append(p)
    if not changed:
        raise err
    return flat


# ----------------------------------------------------------------- decoding

class _Arrays:
    """Reusable output arrays for the decoders (allocated once, grown rarely)."""

    __slots__ = ("cap", "terms", "offsets", "lengths", "types", "struct", "res")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.terms = ffi.new("uint64_t[]", cap)
        self.offsets = ffi.new("uint64_t[]", cap)
        self.lengths = ffi.new("uint32_t[]", cap)
        self.types = ffi.new("uint8_t[]", cap)
        self.struct = ffi.new("struct rp_entries *",
                              (self.terms, self.offsets, self.lengths, self.types, cap))
        self.res = ffi.new("struct rp_result *")

    def take(self, view: memoryview, start: int, n: int, out: list[Entry]) -> None:
        terms = ffi.unpack(self.terms + start, n)
        types = ffi.unpack(self.types + start, n)
        offsets = ffi.unpack(self.offsets + start, n)
        lengths = ffi.unpack(self.lengths + start, n)
        # No Python-level call per entry: tuple.__new__(Entry, ...) is what
        # Entry(...) does without namedtuple's Python __new__, and map makes the
        # payload slices (what is left per entry is the two objects themselves).
        payloads = map(view.__getitem__, map(slice, offsets, map(operator.add, offsets, lengths)))
        out.extend(map(tuple.__new__, repeat(Entry), zip(terms, types, payloads, strict=True)))


def _status_error(status: int, res: Any, batch_no: int) -> RaftError:
    detail = res.detail
    at = res.error_offset
    where = f"entries batch {batch_no} starting at byte {at}"
    if status == Status.SHORT:
        return IOError_(f"{where}: short read: {detail} bytes instead of "
                        f"{res.needed}")
    table: dict[int, tuple[type[RaftError], str]] = {
        Status.ZERO_COUNT: (CorruptError, "entries count in preamble is zero"),
        Status.TOO_MANY: (CorruptError, f"entries count {detail} in preamble is too high"),
        Status.HEADER_CRC: (CorruptError, "header checksum mismatch"),
        Status.DATA_CRC: (CorruptError, "data checksum mismatch"),
        Status.BAD_TYPE: (MalformedError, f"entry type {detail} is not valid"),
        Status.UNALIGNED: (MalformedError,
                           f"entry data length {detail} is not a multiple of 8"),
        Status.BAD_FORMAT: (CorruptError, f"unexpected format version {detail}"),
        Status.EMPTY: (CorruptError, "file is empty"),
        Status.TOO_SMALL: (IOError_, f"file has only {detail} bytes"),
    }
    cls, text = table[status]
    return cls(text if status in (Status.BAD_FORMAT, Status.EMPTY, Status.TOO_SMALL)
               else f"{where}: {text}")


def _run(fn: Any, buf: bytes | bytearray | memoryview, off: int, extra: tuple[int, ...],
         arrays: _Arrays | None) -> tuple[list[Entry], int, Any, int]:
    """Call a C decoder until it stops for a reason other than full arrays."""
    view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf.cast("B")
    c_buf = ffi.from_buffer(view)
    arrays = arrays or _Arrays(1024)
    entries: list[Entry] = []
    with gc_paused():
        return _drive(fn, view, c_buf, off, extra, arrays, entries)


class gc_paused:  # noqa: N801 (used as a function: with gc_paused(): ...)
    """Pause the cyclic GC while building many Entry tuples: each batch of new
    tuples would trigger collections over and over (3-4x the cost on a large
    segment), and tuples of ints and memoryviews form no cycles.  A class, not
    a contextlib generator: under cProfile of a 1 GiB load, leaving the
    generator's block took 0.25-0.3 s over 148 segments, this none."""

    __slots__ = ("_was_enabled",)

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was_enabled:
            gc.enable()


def _drive(fn: Any, view: memoryview, c_buf: Any, off: int, extra: tuple[int, ...],
           arrays: _Arrays, entries: list[Entry]) -> tuple[list[Entry], int, Any, int]:
    """extra is () (scan) or (max_batches,) (decode): the C decoder counts
    batches per call, so each call gets what remains of the limit."""
    batches = 0
    limit = extra[0] if extra else 0
    while True:
        args = (limit - batches if limit else 0,) if extra else ()
        status = fn(c_buf, len(view), off, *args, arrays.struct, arrays.res)
        res = arrays.res
        arrays.take(view, 0, res.n_entries, entries)
        batches += res.n_batches
        if status != Status.MORE:
            return entries, batches, res, status
        if limit and batches >= limit:   # the arrays filled just at the limit
            return entries, batches, res, Status.OK
        if res.n_entries == 0:       # one batch larger than the arrays: grow them
            arrays = _Arrays(max(res.detail, arrays.cap * 2))
        off = res.end


def decode_batches(buf: bytes | bytearray | memoryview, offset: int = 0,
                   max_batches: int = 0) -> tuple[list[Entry], int]:
    """Decode whole batches from buf[offset:]; return (entries, end offset).

    Decoding stops at the end of the data, or after max_batches batches if that
    is non-zero.  Any damage (checksum, count, type, alignment, truncation)
    raises the matching raftpy error: nothing is returned from a bad input.
    Payloads are memoryview slices of buf.
    """
    if not 0 <= offset <= len(buf):
        raise InvalidError(f"offset {offset} outside buffer of {len(buf)} bytes")
    entries, batches, res, status = _run(lib.rp_decode_batches, buf, offset,
                                         (max_batches,), None)
    if status != Status.OK:
        raise _status_error(status, res, batches + 1)
    return entries, int(res.end)


@dataclass(frozen=True, slots=True)
class SegmentScan:
    """What a segment file holds and how it ends.

    ``entries`` are the entries of every valid batch before ``end``;
    ``error`` is the error describing the first bad batch (None when CLEAN or
    EMPTY); ``next_valid`` is the offset of a valid batch found after the
    damage (-1 if none), which is what separates CORRUPT from TORN_TAIL.
    """

    entries: list[Entry]
    n_batches: int
    end: int
    outcome: ScanOutcome
    status: Status
    error: RaftError | None
    error_offset: int
    next_valid: int


def scan_segment(buf: bytes | bytearray | memoryview, torn_reach: int = 0) -> SegmentScan:
    """Walk a segment file image (format word, then batches) and classify its end:
    prescan_segment(buf, torn_reach).scan() (see there)."""
    return prescan_segment(buf, torn_reach).scan()


class PrescannedSegment:
    """A segment image walked and judged by C, its entries not built yet.

    prescan_segment does all the C work (checksums, the walk, the search for
    a valid batch after damage) holding the GIL only between C calls, so it
    can run in a worker thread while another builds entries; ``scan()``
    builds the Entry tuples (the per-entry Python work) from the arrays the
    walk filled, and returns the SegmentScan.
    """

    __slots__ = ("_view", "_chunks", "_judged")

    def __init__(self, view: memoryview, chunks: list[tuple[_Arrays, int]],
                 judged: SegmentScan) -> None:
        self._view = view
        self._chunks = chunks
        self._judged = judged       # all but the entries

    def scan(self) -> SegmentScan:
        entries: list[Entry] = []
        with gc_paused():
            for arrays, n in self._chunks:
                arrays.take(self._view, 0, n, entries)
        j = self._judged
        return SegmentScan(entries, j.n_batches, j.end, j.outcome, j.status, j.error,
                           j.error_offset, j.next_valid)


def _walk(view: memoryview, arrays: _Arrays | None = None,
          status: int | None = None) -> tuple[list[tuple[_Arrays, int]], int, Any, int]:
    """rp_scan_segment over the whole image: (arrays filled and their entry
    counts, batches, the last result, status); arrays holding entries are
    kept, not reused, so that the entries can be built later.  With status,
    the first call was made already (by rp_image_scan), into arrays."""
    c_buf = ffi.from_buffer(view)
    # About one call for a segment of 1 KiB entries, a few for tiny entries.
    arrays = arrays or _Arrays(_walk_cap(len(view)))
    chunks: list[tuple[_Arrays, int]] = []
    batches, off = 0, 0
    while True:
        if status is None:
            status = lib.rp_scan_segment(c_buf, len(view), off, arrays.struct, arrays.res)
        res = arrays.res
        batches += res.n_batches
        if res.n_entries:
            chunks.append((arrays, res.n_entries))
        if status != Status.MORE:
            return chunks, batches, res, status
        # Full arrays are kept; one batch larger than the arrays: grow them.
        arrays = _Arrays(max(res.detail, arrays.cap * 2) if res.n_entries == 0
                         else arrays.cap)
        off = res.end
        status = None


def _walk_cap(size: int) -> int:
    """Entries the walk's first arrays hold for an image of size bytes."""
    return min(max(size // 512, 1024), 65536)


def read_and_prescan(path: str, torn_reach: int, size_hint: int,
                     ) -> tuple[memoryview | bytes, PrescannedSegment]:
    """read_image(path) and prescan_segment of it, the read and the first walk
    call in one C call without the GIL (rp_image_scan): a thread that takes
    the GIL back may wait a switch interval for it, so once per file, not
    twice.  size_hint (the segment size) sizes the walk's first arrays."""
    cap = ffi.new("uint64_t *")
    got = ffi.new("int64_t *")
    status = ffi.new("int *")
    arrays = _Arrays(_walk_cap(size_hint))
    ptr = lib.rp_image_scan(os.fsencode(path), cap, got, arrays.struct, arrays.res, status)
    if ptr == ffi.NULL:
        if got[0] == 0:
            return b"", prescan_segment(b"", torn_reach)
        raise error_from_errno(-int(got[0]), f"read {os.path.basename(path)}")
    data = _own_image(ptr, int(cap[0]), int(got[0]))
    view = data.cast("B")
    chunks, batches, res, st = _walk(view, arrays, int(status[0]))
    return data, _prescanned(view, chunks, batches, res, st, torn_reach)


def prescan_segment(buf: bytes | bytearray | memoryview,
                    torn_reach: int = 0) -> PrescannedSegment:
    """Walk a segment file image (format word, then batches) and classify its end.

    Damage followed by nothing valid is a TORN_TAIL, damage followed by a
    valid batch is CORRUPT.  With ``torn_reach`` > 0 (open segments, see
    layout.torn_region) only a valid batch at or beyond the torn region of the
    damage counts: inside it, valid batches are what a torn multi-block write
    can leave (a later block persisted, an earlier one not), and a zero format
    word is a torn first write (of any length: the caller checks that no
    later open segment holds data, see DiskStore._load_open)."""
    view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf.cast("B")
    chunks, batches, res, status = _walk(view)
    return _prescanned(view, chunks, batches, res, status, torn_reach)


def _prescanned(view: memoryview, chunks: list[tuple[_Arrays, int]], batches: int,
                res: Any, status: int, torn_reach: int) -> PrescannedSegment:
    judged = _judge(view, batches, res, status, torn_reach)
    if status == Status.BAD_FORMAT and judged.outcome == ScanOutcome.TORN_TAIL:
        chunks = []                 # a torn first write: nothing in it counts
    return PrescannedSegment(view, chunks, judged)


def _judge(view: memoryview, batches: int, res: Any, status: int,
           torn_reach: int) -> SegmentScan:
    """How the walk ended (a SegmentScan without its entries)."""
    entries: list[Entry] = []
    end = int(res.end)
    at = int(res.error_offset)
    if status == Status.OK:
        return SegmentScan(entries, batches, end, ScanOutcome.CLEAN, Status.OK, None, end, -1)
    err = _status_error(status, res, batches + 1)
    if status == Status.EMPTY:
        return SegmentScan(entries, 0, 0, ScanOutcome.EMPTY, Status(status), err, 0, -1)
    if status == Status.BAD_FORMAT and torn_reach and res.detail == 0:
        # Format word 0 but data after it: the segment's first write never
        # completed, whatever its length (a batch larger than the reach is
        # written alone).  Whether that is a torn first write depends on the
        # segments after it (none may hold data): the caller decides.
        return SegmentScan([], 0, 0, ScanOutcome.TORN_TAIL, Status(status), err, 0, -1)
    if status in (Status.BAD_FORMAT, Status.TOO_SMALL):
        return SegmentScan(entries, 0, 0, ScanOutcome.CORRUPT, Status(status), err, 0, -1)
    nxt = -1
    if res.tail == lib.RP_TAIL_ZEROS:
        outcome = ScanOutcome.ZERO_TAIL
    else:
        start = (at // 4096) * 4096 + torn_reach if torn_reach else at + 8
        nxt = find_batch(view, start)
        if nxt == -2:          # cannot tell cheaply: not judged a torn write
            err = CorruptError(f"{err}; what follows holds too many batch-like headers "
                               f"to tell a torn write from damage")
            nxt = -1
            outcome = ScanOutcome.CORRUPT
        else:
            outcome = ScanOutcome.CORRUPT if nxt >= 0 else ScanOutcome.TORN_TAIL
    return SegmentScan(entries, batches, end, outcome, Status(status), err, at, nxt)


def find_batch(buf: bytes | bytearray | memoryview, start: int,
               budget: int = FIND_BUDGET) -> int:
    """Offset of the first whole valid batch at an 8-byte boundary at or after
    start (within _FIND_LIMIT bytes), -1 if there is none, -2 if telling would
    checksum more than budget bytes."""
    view = memoryview(buf).cast("B")
    if start >= len(view):
        return -1
    return int(lib.rp_find_batch(ffi.from_buffer(view), len(view), start, _FIND_LIMIT,
                                 budget))


# -------------------------------------------------------------------- wire
# AppendEntries entry descriptors (spec §4.4; layout in csrc/wire.c).

def encode_append_entries(term: int, prev_log_index: int, prev_log_term: int,
                          leader_commit: int, entries: Sequence[Entry]
                          ) -> tuple[memoryview, tuple[bytes | memoryview, ...]]:
    """An AppendEntries frame head (type word through the unused trailing word)
    and the entries' payload objects themselves (not copied; empty ones
    included).  One C call; InvalidError for what the wire cannot carry (a term
    outside 0..2^64-1, a type outside 1..3, a length of 2^32 or more, a
    non-empty entry after one whose length is not a multiple of 8)."""
    n = len(entries)
    if 0 < n <= _SMALL_AE_MAX:
        small = _small_append_entries(term, prev_log_index, prev_log_term, leader_commit,
                                      entries)
        if small is not None:
            return small
    payloads: tuple[bytes | memoryview, ...] = ()
    head = bytearray(64 + 16 * n)
    try:
        # The per-entry conversions run in C: zip transposes, array and bytes
        # convert (several times cheaper than cffi converting lists).
        if n:
            terms, types, payloads = zip(*entries, strict=True)
            c_terms = ffi.from_buffer("uint64_t[]", array.array("Q", terms))
            c_types = ffi.from_buffer("uint8_t[]", bytes(types))
            c_lengths = ffi.from_buffer("uint64_t[]", array.array("Q", map(len, payloads)))
        else:
            c_terms = c_types = c_lengths = ffi.NULL
        rv = lib.rp_encode_append_entries(ffi.from_buffer(head), len(head), term,
                                          prev_log_index, prev_log_term, leader_commit, n,
                                          c_terms, c_types, c_lengths)
    except (OverflowError, ValueError) as err:
        raise _append_entries_error(entries) or InvalidError(
            f"AppendEntries: a field does not fit a u64: {err}") from err
    if rv < 0:
        raise _append_entries_error(entries) or _errno_error(int(rv), "encode AppendEntries")
    return memoryview(head), payloads


# A few entries (one per AppendEntries with one request in flight): the C call's
# set-up (zip, arrays, four from_buffer) costs more than packing them here.
# The same bytes as rp_encode_append_entries (tests/native check both agree);
# whatever it would refuse goes to the C path, which says why.
_SMALL_AE_MAX = 4
_AE_HEAD = struct.Struct("<7Q")        # type, size, term, prev index/term, commit, n
_AE_DESC = struct.Struct("<QB3xI")     # term, type, 3 unused bytes, payload length
_AE_TAIL = bytes(8)


def _small_append_entries(term: int, prev_log_index: int, prev_log_term: int,
                          leader_commit: int, entries: Sequence[Entry]
                          ) -> tuple[memoryview, tuple[bytes | memoryview, ...]] | None:
    n = len(entries)
    parts = [b""]
    payloads = []
    unaligned = False
    pack = _AE_DESC.pack
    try:
        for entry_term, entry_type, payload in entries:
            size = len(payload)
            if not 1 <= entry_type <= 3 or size > 0xFFFFFFFF or (size and unaligned):
                return None
            unaligned = unaligned or size % 8 != 0
            parts.append(pack(entry_term, entry_type, size))
            payloads.append(payload)
        parts[0] = _AE_HEAD.pack(1, 48 + 16 * n, term, prev_log_index, prev_log_term,
                                 leader_commit, n)
    except struct.error:
        return None
    parts.append(_AE_TAIL)
    return memoryview(b"".join(parts)), tuple(payloads)


def _append_entries_error(entries: Sequence[Entry]) -> RaftError | None:
    """The first entry the wire cannot carry, and why (the error path only)."""
    unaligned = False
    for pos, (term, type_, payload) in enumerate(entries, 1):
        where = f"entry {pos} of {len(entries)}"
        size = len(payload)
        if not 0 <= term < 1 << 64:
            return InvalidError(f"{where}: term {term} is outside 0..2^64-1")
        if type_ not in (1, 2, 3):
            return InvalidError(f"{where}: entry type {type_} is not valid")
        if size >= 1 << 32:
            return InvalidError(f"{where}: {size} bytes do not fit the u32 length field")
        if size and unaligned:
            return InvalidError(f"{where} ({size} bytes) follows an entry whose length is not "
                                f"a multiple of 8: libraft would read it from the wrong offset")
        unaligned = unaligned or size % 8 != 0
    return None


_make_entry = partial(tuple.__new__, Entry)


class EntryDecoder:
    """Decodes AppendEntries entry descriptors; keeps its output arrays between
    calls (one per connection), up to _KEEP entries."""

    __slots__ = ("_arrays",)
    _KEEP = 65536

    def __init__(self) -> None:
        self._arrays = _Arrays(64)

    def decode(self, buf: memoryview, desc_at: int, n: int, payload_at: int,
               payload_max: int) -> tuple[int, list[Entry] | None]:
        """Check and decode the n descriptors at buf[desc_at:]; return the payload
        size and, if buf holds the whole payload (from payload_at on), the entries
        with payloads as slices of buf.  MalformedError for an entry type outside
        1..3, an entry ending past the payload, or a payload over payload_max."""
        if n == 0:                  # a heartbeat: nothing for C to do
            return 0, []
        if n > (len(buf) - desc_at) // 16:
            raise MalformedError(f"{n} entry descriptors do not fit in the header")
        if n == 1:                  # one request in flight: cheaper than the C set-up
            return self._one(buf, desc_at, payload_at, payload_max)
        arrays = self._arrays
        if n > arrays.cap:
            arrays = _Arrays(n)
            if n <= self._KEEP:
                self._arrays = arrays
        res = arrays.res
        status = lib.rp_decode_append_entries(ffi.from_buffer(buf), len(buf), desc_at, n,
                                              arrays.struct, res)
        if status != Status.OK:
            raise _wire_decode_error(status, res, n)
        size = int(res.needed)
        if size > payload_max:
            raise MalformedError(f"payload of {size} bytes exceeds the limit of "
                                 f"{payload_max} bytes")
        if len(buf) - payload_at < size:
            return size, None
        return size, self._entries(arrays, buf[payload_at:payload_at + size], n)

    @staticmethod
    def _one(buf: memoryview, desc_at: int, payload_at: int, payload_max: int
             ) -> tuple[int, list[Entry] | None]:
        """decode for one descriptor, as rp_decode_append_entries does it (at
        offset 0 no entry can overrun the payload)."""
        term, type_, size = _AE_DESC.unpack_from(buf, desc_at)
        if not 1 <= type_ <= 3:
            raise MalformedError(f"entry 1 of 1: entry type {type_} is not valid")
        if size > payload_max:
            raise MalformedError(f"payload of {size} bytes exceeds the limit of "
                                 f"{payload_max} bytes")
        if len(buf) - payload_at < size:
            return size, None
        return size, [_make_entry((term, type_, buf[payload_at:payload_at + size]))]

    @staticmethod
    def _entries(arrays: _Arrays, payload: memoryview, n: int) -> list[Entry]:
        terms = ffi.unpack(arrays.terms, n)
        types = ffi.unpack(arrays.types, n)
        offsets = ffi.unpack(arrays.offsets, n)
        lengths = ffi.unpack(arrays.lengths, n)
        rows = zip(terms, types, offsets, lengths, strict=True)
        # tuple.__new__ through partial builds an Entry without the Python
        # frame of Entry.__new__ (measured: 20-40% of the per-entry cost).
        if n < 256:
            return [_make_entry((t, ty, payload[o:o + ln])) for t, ty, o, ln in rows]
        with gc_paused():
            return [_make_entry((t, ty, payload[o:o + ln])) for t, ty, o, ln in rows]


def _wire_decode_error(status: int, res: Any, n: int) -> RaftError:
    where = f"entry {res.error_offset + 1} of {n}"
    if status == Status.BAD_TYPE:
        return MalformedError(f"{where}: entry type {res.detail} is not valid")
    if status == Status.OVERRUN:
        return MalformedError(f"{where}: {res.detail} bytes at payload offset {res.end} end "
                              f"past the {res.needed}-byte payload (an earlier entry's length "
                              f"is not a multiple of 8)")
    return MalformedError(f"{n} entry descriptors do not fit in the header")


# --------------------------------------------------------------------- AIO

class AioContext:
    """One kernel AIO context whose completions are signalled on an eventfd.

    ``fileno()`` is the eventfd to watch for readability; ``reap()`` returns
    the finished requests as (user_data, result) pairs where result is the
    byte count or -errno.  Buffers passed to ``submit`` must stay alive and
    unchanged until their completion is reaped: the caller keeps them.
    """

    __slots__ = ("_aio", "_ud", "_res", "_max", "_closed")

    def __init__(self, depth: int) -> None:
        self._aio = ffi.new("struct rp_aio *")
        rv = lib.rp_aio_init(self._aio, depth)
        if rv < 0:
            if rv == -_errno.EAGAIN:
                raise TooManyError("AIO events user limit exceeded")
            raise _errno_error(rv, "io_setup")
        self._max = depth
        self._ud = ffi.new("uint64_t[]", depth)
        self._res = ffi.new("int64_t[]", depth)
        self._closed = False

    @property
    def depth(self) -> int:
        return self._max

    def fileno(self) -> int:
        return int(self._aio.efd)

    def submit(self, fd: int, buf: bytes | bytearray | memoryview, offset: int,
               user_data: int, dsync: bool = True, nowait: bool = True) -> int:
        """Submit one write; returns 0 or -errno (-EAGAIN: run it elsewhere)."""
        flags = (lib.RP_AIO_DSYNC if dsync else 0) | (lib.RP_AIO_NOWAIT if nowait else 0)
        return int(lib.rp_aio_submit(self._aio, fd, ffi.from_buffer(buf), len(buf),
                                     offset, user_data, flags))

    def reap(self) -> list[tuple[int, int]]:
        n = lib.rp_aio_reap(self._aio, self._ud, self._res, self._max)
        if n < 0:
            raise _errno_error(n, "io_getevents")
        return list(zip(ffi.unpack(self._ud, n), ffi.unpack(self._res, n), strict=True))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            lib.rp_aio_close(self._aio)


def aio_probe(fd: int, buf: bytes | bytearray | memoryview) -> bool:
    """True if fd takes an AIO write with RWF_NOWAIT|RWF_DSYNC (spec §3.13)."""
    rv = lib.rp_aio_probe(fd, ffi.from_buffer(buf), len(buf))
    if rv < 0:
        raise _errno_error(rv, "probe async I/O")
    return bool(rv)


def pwrite_sync(fd: int, buf: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of buf at offset and fdatasync; blocking, releases the GIL."""
    rv = lib.rp_pwrite_sync(fd, ffi.from_buffer(buf), len(buf), offset)
    if rv < 0:
        raise _errno_error(rv, "write")


def durable_write_loop(fd: int, buf: bytes | bytearray | memoryview, n: int,
                       use_aio: bool) -> list[float]:
    """Benchmarks' floor: n durable writes of buf one at a time at offsets 0,
    len(buf), ... of an O_DIRECT fd, all in C (pwritev2 RWF_DSYNC, or AIO with
    an eventfd watched by epoll as AioWriter does); each write's seconds."""
    lat = ffi.new("double[]", n)
    rv = lib.rp_durable_write_loop(fd, ffi.from_buffer(buf), len(buf), n, int(use_aio), lat)
    if rv < 0:
        raise _errno_error(rv, "durable write loop")
    return list(ffi.unpack(lat, n))


def read_image(path: str) -> memoryview | bytes:
    """The whole file at path (what it holds when read), in memory of its own,
    as a read-only memoryview (b"" for an empty file): the memory lives while
    the view or a slice of it does, and is freed with the last one.  One C
    call without the GIL (csrc/image.c says why).  The error names the file
    (IOError_ and the like, from the errno)."""
    cap = ffi.new("uint64_t *")
    got = ffi.new("int64_t *")
    ptr = lib.rp_image_read(os.fsencode(path), cap, got)
    if ptr == ffi.NULL:
        if got[0] == 0:
            return b""
        raise error_from_errno(-int(got[0]), f"read {os.path.basename(path)}")
    return _own_image(ptr, int(cap[0]), int(got[0]))


def _own_image(ptr: Any, cap: int, got: int) -> memoryview:
    """A read-only view of got bytes at ptr that frees its cap bytes with the
    last view of it (ffi.buffer keeps owned alive; owned's destructor frees)."""
    owned = ffi.gc(ptr, partial(_free_image, cap))
    return memoryview(ffi.buffer(owned, got)).toreadonly()


def _free_image(cap: int, ptr: Any) -> None:
    lib.rp_image_free(ptr, cap)


def fs_type(fd: int) -> int:
    """statfs f_type of the filesystem holding fd (e.g. 0x01021994 for tmpfs)."""
    rv = int(lib.rp_fs_type(fd))
    if rv < 0:
        raise _errno_error(rv, "fstatfs")
    return rv
