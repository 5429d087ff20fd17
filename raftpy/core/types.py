"""Basic value types shared by the core, the I/O layer and the C bindings.

May import: the standard library only.  ``Entry`` is a NamedTuple rather than a
frozen dataclass because entries are created per log entry on the hot path
(decoding a batch of 1024 entries must not cost a microsecond each); it is
immutable all the same.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class EntryType(IntEnum):
    """libraft's entry types (spec §3.5): the type byte of an entry header."""

    COMMAND = 1
    BARRIER = 2
    CHANGE = 3


class Entry(NamedTuple):
    """One log entry: its term, type and payload (bytes or a read-only memoryview)."""

    term: int
    type: int
    payload: bytes | memoryview


class State(IntEnum):
    """libraft's server states (spec §1.3); UNAVAILABLE is both 'not started' and 'dead'."""

    UNAVAILABLE = 0
    FOLLOWER = 1
    CANDIDATE = 2
    LEADER = 3
