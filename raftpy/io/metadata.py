"""libraft's metadata files: the durable term and vote (spec §3.4).

May import: the standard library and ``raftpy.errors``.  Pure functions, no
I/O: the disk store reads and writes the files, this module owns their bytes
and the rules for choosing between the two of them.

A metadata file is exactly 32 bytes, four little-endian u64 words::

    format (= 1) | version | term | voted_for (0 = none)

Every durable change of term or vote bumps ``version`` and rewrites ONE file,
chosen by parity: odd versions live in ``metadata1``, even ones in
``metadata2``.  So a crash while writing one file leaves the other, older one
intact, and on load the file with the higher version wins.  Rules kept here,
with libraft's error classes and messages (src/uv_metadata.c):

* missing file, or shorter than 32 bytes (a crash during the very first
  write): treated as version 0; the store deletes a short file;
* longer than 32 bytes: CorruptError "<name> has size N instead of 32";
* format word other than 1: MalformedError
  "decode content of <name>: bad format version F";
* version 0 inside a 32-byte file: CorruptError
  "decode content of <name>: version is set to zero";
* both versions 0: a fresh server (version 0, term 0, no vote);
* equal non-zero versions: CorruptError
  "metadata1 and metadata2 are both at version V".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from raftpy.errors import CorruptError, MalformedError

__all__ = [
    "FRESH",
    "METADATA_FILES",
    "METADATA_FORMAT",
    "METADATA_SIZE",
    "Metadata",
    "choose_metadata",
    "decode_metadata",
    "encode_metadata",
    "metadata_file_for",
]

METADATA_SIZE = 32
METADATA_FORMAT = 1
METADATA_FILES = ("metadata1", "metadata2")
_LAYOUT = struct.Struct("<4Q")
_U64_MAX = (1 << 64) - 1
assert _LAYOUT.size == METADATA_SIZE


@dataclass(frozen=True, slots=True)
class Metadata:
    """The content of one metadata file (or the state chosen from both)."""

    version: int     # 0 only for "no file" / a fresh server; bumped on every write
    term: int        # current_term (dissertation §3.3, Figure 3.1)
    voted_for: int   # server id voted for in ``term``; 0 = none

    def __post_init__(self) -> None:
        for value in (self.version, self.term, self.voted_for):
            assert 0 <= value <= _U64_MAX, value


FRESH = Metadata(0, 0, 0)


def metadata_file_for(version: int) -> str:
    """Name of the file that holds ``version``: odd → metadata1, even → metadata2."""
    assert version > 0, "version 0 is never written"
    return METADATA_FILES[0] if version % 2 == 1 else METADATA_FILES[1]


def encode_metadata(version: int, term: int, voted_for: int) -> bytes:
    """The 32 bytes of a metadata file."""
    assert 0 < version <= _U64_MAX, "version 0 is never written"
    assert 0 <= term <= _U64_MAX and 0 <= voted_for <= _U64_MAX
    return _LAYOUT.pack(METADATA_FORMAT, version, term, voted_for)


def decode_metadata(data: bytes | bytearray | memoryview, name: str) -> Metadata | None:
    """Decode the content of metadata file ``name``.

    Returns None when the file is shorter than 32 bytes: libraft assumes the
    server crashed during the first write of that file and treats it as
    missing (the caller deletes it).  Raises CorruptError or MalformedError
    with libraft's messages for a file that is too long, has a bad format
    word or a zero version.
    """
    size = len(data)
    if size < METADATA_SIZE:
        return None
    if size > METADATA_SIZE:
        raise CorruptError(f"{name} has size {size} instead of {METADATA_SIZE}")
    fmt, version, term, voted_for = _LAYOUT.unpack(data)
    if fmt != METADATA_FORMAT:
        raise MalformedError(f"decode content of {name}: bad format version {fmt}")
    if version == 0:
        raise CorruptError(f"decode content of {name}: version is set to zero")
    return Metadata(version, term, voted_for)


def choose_metadata(metadata1: Metadata | None, metadata2: Metadata | None) -> Metadata:
    """Pick the current state from the two files (None = missing or short).

    Returns FRESH when neither file holds anything, else the one with the
    higher version; equal non-zero versions are corruption.
    """
    v1 = metadata1.version if metadata1 is not None else 0
    v2 = metadata2.version if metadata2 is not None else 0
    if v1 == 0 and v2 == 0:
        return FRESH
    if v1 == v2:
        raise CorruptError(f"metadata1 and metadata2 are both at version {v1}")
    chosen = metadata1 if v1 > v2 else metadata2
    assert chosen is not None
    return chosen
