"""A file's extents as the filesystem maps them (FS_IOC_FIEMAP), for tests that
check what was written with zeros and what is only reserved (unwritten)."""

from __future__ import annotations

import fcntl
import os
import struct

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_UNWRITTEN = 0x800
_HEAD = struct.Struct("=QQIIII")          # start, length, flags, mapped, count, reserved
_EXTENT = struct.Struct("=QQQQQIIII")     # logical, physical, length, 2 reserved, flags, 3 reserved
_MAX = 512


def extents(path: str) -> list[tuple[int, int, bool]]:
    """(offset, length, unwritten) of each extent of path, in file order."""
    buf = bytearray(_HEAD.size + _MAX * _EXTENT.size)
    _HEAD.pack_into(buf, 0, 0, 2**64 - 1, FIEMAP_FLAG_SYNC, 0, _MAX, 0)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
    finally:
        os.close(fd)
    mapped = _HEAD.unpack_from(buf, 0)[3]
    out = []
    for k in range(mapped):
        logical, _phys, length, _r1, _r2, flags, *_ = _EXTENT.unpack_from(
            buf, _HEAD.size + k * _EXTENT.size)
        out.append((logical, length, bool(flags & FIEMAP_EXTENT_UNWRITTEN)))
    return out


def unwritten_from(path: str) -> int | None:
    """The offset of path's first unwritten extent, None if all of it is written."""
    return next((off for off, _n, unwritten in extents(path) if unwritten), None)
