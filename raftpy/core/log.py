"""The in-memory log: entries after a snapshot boundary, with O(1) index arithmetic.

May import: the standard library and ``raftpy.core.types``.  Rules kept:

* ``entries[k]`` has index ``offset + 1 + k``; ``last_index`` is
  ``offset + len(entries)``.  Compaction (dissertation §5.1) drops a prefix
  and raises ``offset``; the snapshot boundary (``snapshot_index``,
  ``snapshot_term``) may lie above ``offset`` because libraft keeps
  ``snapshot.trailing`` entries behind a snapshot (spec §2.11).
* ``_sizes[k]`` is the total payload size of entries up to ``entries[k]``
  counted from an arbitrary origin (a running sum; ``_base`` is its value at
  ``offset``), so the bytes between two
  indexes cost two lookups: that is what flow control reads per send.
* The log never holds a hole: appends are contiguous.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate

from raftpy.core.types import Entry

__all__ = ["Log"]


class Log:
    """Entries ``offset+1 .. last_index`` plus the snapshot boundary below them."""

    __slots__ = ("entries", "offset", "snapshot_index", "snapshot_term", "_sizes", "_base")

    def __init__(self, entries: Iterable[Entry] = (), start_index: int = 1,
                 snapshot_index: int = 0, snapshot_term: int = 0) -> None:
        assert start_index >= 1
        self.entries: list[Entry] = []
        self._sizes: list[int] = []
        self._base = 0  # running size sum at index ``offset`` (what compaction dropped)
        self.offset = start_index - 1
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self.append(list(entries))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        if self.entries:
            return self.entries[-1].term
        return self.snapshot_term if self.offset == self.snapshot_index else 0

    def term_of(self, index: int) -> int | None:
        """Term of the entry at index, 0 for index 0, None if unknown (compacted or absent)."""
        k = index - self.offset - 1
        if 0 <= k < len(self.entries):
            return self.entries[k].term
        if index == self.snapshot_index:
            return self.snapshot_term
        return 0 if index == 0 else None

    def get(self, index: int) -> Entry | None:
        k = index - self.offset - 1
        if 0 <= k < len(self.entries):
            return self.entries[k]
        return None

    def slice(self, first: int, last: int) -> list[Entry]:
        """Entries first..last inclusive (both must be in the log)."""
        return self.entries[first - self.offset - 1:last - self.offset]

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        base = self._sizes[-1] if self._sizes else self._base
        self.entries.extend(entries)
        sums = accumulate([len(e[2]) for e in entries], initial=base)
        next(sums)  # skip the ``initial`` value itself
        self._sizes.extend(sums)

    def truncate(self, index: int) -> None:
        """Delete entries from index on (a follower's conflict, dissertation §3.5)."""
        k = max(index - self.offset - 1, 0)
        del self.entries[k:]
        del self._sizes[k:]

    def compact(self, up_to: int) -> None:
        """Delete entries up to and including up_to (after a snapshot covers them)."""
        k = min(up_to - self.offset, len(self.entries))
        if k > 0:
            self._base = self._sizes[k - 1]
            del self.entries[:k]
            del self._sizes[:k]
            self.offset += k

    def restart(self, snapshot_index: int, snapshot_term: int) -> None:
        """Drop everything and continue after a snapshot (InstallSnapshot, spec §2.13)."""
        self.entries.clear()
        self._sizes.clear()
        self._base = 0
        self.offset = self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term

    def _cum(self, index: int) -> int:
        k = index - self.offset - 1
        return self._sizes[k] if k >= 0 else self._base

    def send_limit(self, first: int, max_entries: int, max_bytes: int) -> int:
        """Last index to send from first so that at most max_entries/max_bytes go out.

        Returns first-1 when nothing may go out; otherwise at least first.
        """
        last = min(self.last_index, first + max_entries - 1)
        if last < first:
            return first - 1
        limit = self._cum(first - 1) + max_bytes
        if self._cum(last) <= limit:
            return last
        k = bisect_right(self._sizes, limit, first - self.offset - 1, last - self.offset)
        return max(self.offset + k, first)

    def bytes_between(self, first: int, last: int) -> int:
        """Payload bytes of entries first..last inclusive (0 if last < first)."""
        return self._cum(last) - self._cum(first - 1) if last >= first else 0
