"""The files of a libraft data directory: names, listing, snapshot files (spec §3.1, §3.10).

May import: the standard library, lz4, raftpy._bindings, raftpy.core, raftpy.errors.
Everything here is read-only or pure: the disk store (disk.py) and the
inspector (inspect.py, behind ``raftpy inspect``) share it, and inspect must
never change a directory.

Names are parsed the way libraft's scanf patterns do (quirk 9): numeric fields
have a maximum width but no minimum, and the pattern must consume the whole
name.  Names are always written zero-padded.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

import lz4.frame

from raftpy import _bindings
from raftpy.core.configuration import Configuration, decode_configuration
from raftpy.errors import CorruptError, IOError_, MalformedError

__all__ = [
    "SegmentFile", "SnapshotFile", "Listing", "list_dir", "closed_name", "open_name",
    "snapshot_name", "encode_snapshot_meta", "decode_snapshot_meta", "encode_snapshot_data",
    "decode_snapshot_data", "LZ4_MAGIC", "SEGMENT_FORMAT", "MAX_NAME", "torn_reach",
    "DEFAULT_WRITE_MAX",
]

SEGMENT_FORMAT = 1
SNAPSHOT_FORMAT = 1
LZ4_MAGIC = b"\x04\x22\x4d\x18"
MAX_NAME = 128                    # names this long or longer are ignored
MAX_CONF_LEN = 1 << 20            # a snapshot's configuration: 1 byte ... 1 MiB
_NUM = r"(\d{1,20})"              # %llu with at most 20 digits
_CLOSED = re.compile(r"(\d{1,16})-(\d{1,16})")
_OPEN = re.compile(rf"open-{_NUM}")
_SNAPSHOT = re.compile(rf"snapshot-{_NUM}-{_NUM}-{_NUM}")
_SNAPSHOT_META = re.compile(rf"snapshot-{_NUM}-{_NUM}-{_NUM}\.meta")
_META_HEAD = struct.Struct("<4Q")
DEFAULT_WRITE_MAX = 4 * 1024 * 1024   # DiskStore's default write_max_bytes
_BLOCK = 4096


def torn_reach(write_max_bytes: int = DEFAULT_WRITE_MAX) -> int:
    """How far past the start of the 4 KiB block holding the first damage in an
    open segment the last write can have reached.

    The rule follows from what DiskStore's writer can leave on disk: one write
    in flight per segment; a write starts at the block holding the end of the
    durable data (the partly filled last block is rewritten) and carries at
    most write_max_bytes of new batches, rounded up to whole blocks.  The
    first damage lies inside that write, so the write started at or before
    its block and ends less than write_max_bytes + 2 blocks after it.  Power
    loss can persist any of its blocks without the others, so valid batches
    may follow the damage inside that region: a torn tail (everything from
    the damage on is cut; none of it was acknowledged).  A valid batch beyond
    the region cannot come from the last write: that is corruption.

    The reach is at least the default's (a directory written with the default
    and loaded with a smaller write_max_bytes stays loadable).  One batch
    larger than write_max_bytes is written alone, so nothing valid follows it
    in its write (unless its payload itself looks like a batch).  libraft's
    writer can put a whole segment's worth into one write: a power-lost
    libraft directory whose last write exceeded this reach is called corrupt
    here where libraft would cut it (libraft cuts after any damage)."""
    return -(-max(write_max_bytes, DEFAULT_WRITE_MAX) // _BLOCK) * _BLOCK + 2 * _BLOCK


def closed_name(first: int, last: int) -> str:
    return f"{first:016d}-{last:016d}"


def open_name(counter: int) -> str:
    return f"open-{counter}"


def snapshot_name(term: int, index: int, timestamp: int) -> str:
    return f"snapshot-{term}-{index}-{timestamp}"


@dataclass(frozen=True, slots=True)
class SegmentFile:
    """A segment on disk: closed (first..last known) or open (counter only)."""

    name: str
    is_open: bool
    first: int = 0
    last: int = 0
    counter: int = 0

    @property
    def sort_key(self) -> tuple[int, int, int]:
        return (1, self.counter, 0) if self.is_open else (0, self.first, self.last)


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """A snapshot: data file name and its .meta; term and index come from the name."""

    name: str
    term: int
    index: int
    timestamp: int

    @property
    def meta_name(self) -> str:
        return self.name + ".meta"

    @property
    def sort_key(self) -> tuple[int, int, int]:
        return (self.term, self.index, self.timestamp)


@dataclass(frozen=True, slots=True)
class Listing:
    """What a data directory holds, sorted the way libraft loads it (spec §3.7)."""

    segments: tuple[SegmentFile, ...]
    snapshots: tuple[SnapshotFile, ...]        # complete ones (data non-empty + .meta)
    tmp_files: tuple[str, ...]
    orphans: tuple[str, ...]                   # snapshot data without .meta and vice versa
    corrupt_files: tuple[str, ...]             # quarantined by auto-recovery


def _parse_segment(name: str) -> SegmentFile | None:
    m = _CLOSED.fullmatch(name)
    if m:
        return SegmentFile(name, False, int(m[1]), int(m[2]))
    m = _OPEN.fullmatch(name)
    if m:
        return SegmentFile(name, True, counter=int(m[1]))
    return None


def _size(path: str) -> int:
    """The size of a file, 0 if it is gone: a listing may race a deletion (a
    reader of a live directory, such as ``raftpy inspect``, does), and a file
    deleted meanwhile is treated as never listed."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def list_dir(path: str) -> Listing:
    """List and classify the files of a data directory (no changes made)."""
    try:
        names = sorted(os.listdir(path))
    except OSError as err:
        raise IOError_(f"list directory '{path}': {err.strerror}") from err
    segments, snaps, tmp, orphans, corrupt = [], [], [], [], []
    present = set(names)
    for name in names:
        if len(name) >= MAX_NAME:
            continue
        if name.startswith("tmp-"):
            tmp.append(name)
        elif name.startswith("corrupt-"):
            corrupt.append(name)
        elif (seg := _parse_segment(name)) is not None:
            segments.append(seg)
        elif (m := _SNAPSHOT_META.fullmatch(name)) is not None:
            if name[:-5] not in present:
                orphans.append(name)
        elif (m := _SNAPSHOT.fullmatch(name)) is not None:
            if name + ".meta" not in present:
                orphans.append(name)
            elif _size(os.path.join(path, name)) > 0:
                snaps.append(SnapshotFile(name, int(m[1]), int(m[2]), int(m[3])))
    segments.sort(key=lambda s: s.sort_key)
    snaps.sort(key=lambda s: s.sort_key)
    return Listing(tuple(segments), tuple(snaps), tuple(tmp), tuple(orphans), tuple(corrupt))


# ----------------------------------------------------------- snapshot files

def encode_snapshot_meta(conf: Configuration, conf_index: int) -> bytes:
    """The .meta file: format, crc, configuration index and length, configuration."""
    conf_bytes = conf.encode()
    body = struct.pack("<QQ", conf_index, len(conf_bytes)) + conf_bytes
    return struct.pack("<QQ", SNAPSHOT_FORMAT, _bindings.crc32(body)) + body


def decode_snapshot_meta(data: bytes, name: str) -> tuple[Configuration, int]:
    """Return (configuration, configuration index) from a .meta file's bytes."""
    if len(data) < _META_HEAD.size:
        raise IOError_(f"{name}: short read: {len(data)} bytes instead of {_META_HEAD.size}")
    fmt, crc, conf_index, conf_len = _META_HEAD.unpack_from(data)
    if fmt != SNAPSHOT_FORMAT:
        raise MalformedError(f"{name}: unsupported format {fmt}")
    if conf_len == 0 or conf_len > MAX_CONF_LEN:
        raise CorruptError(f"{name}: invalid configuration length {conf_len}")
    if len(data) < _META_HEAD.size + conf_len:
        raise IOError_(f"{name}: short read: {len(data)} bytes instead of "
                       f"{_META_HEAD.size + conf_len}")
    if _bindings.crc32(data[16:32 + conf_len]) != crc & 0xFFFFFFFF:
        raise CorruptError(f"{name}: checksum mismatch")
    try:
        conf = decode_configuration(data[32:32 + conf_len])
    except MalformedError as err:
        raise err.wrap(f"{name}: decode configuration") from err
    return conf, conf_index


def encode_snapshot_data(data: bytes, compress: bool) -> bytes:
    """Snapshot data as libraft writes it: one LZ4 frame with content size and
    checksum (a frame without the size hangs libraft, quirk 8), or raw."""
    if not compress:
        return data
    if not data:
        raise IOError_("compress snapshot: empty snapshots cannot be compressed")
    return bytes(lz4.frame.compress(data, store_size=True, content_checksum=True))


def decode_snapshot_data(blob: bytes, name: str) -> bytes:
    """Decompress when the file starts with the LZ4 frame magic, else raw (quirk 8)."""
    if blob[:4] != LZ4_MAGIC:
        return blob
    try:
        return bytes(lz4.frame.decompress(blob))
    except RuntimeError as err:
        raise CorruptError(f"{name}: decompress: {err}") from err
