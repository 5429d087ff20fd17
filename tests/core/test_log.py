"""The in-memory log: index arithmetic, truncation, compaction, send limits."""

from __future__ import annotations

from raftpy.core.log import Log
from raftpy.core.types import Entry, EntryType


def entries(terms: list[int], size: int = 8) -> list[Entry]:
    return [Entry(t, EntryType.COMMAND, bytes(size)) for t in terms]


def test_terms_and_bounds() -> None:
    log = Log(entries([1, 1, 2]))
    assert (log.last_index, log.last_term) == (3, 2)
    assert [log.term_of(i) for i in range(5)] == [0, 1, 1, 2, None]
    assert log.get(0) is None and log.get(4) is None


def test_truncate_and_append() -> None:
    log = Log(entries([1, 1, 2, 2]))
    log.truncate(3)
    log.append(entries([3]))
    assert [log.term_of(i) for i in range(1, 4)] == [1, 1, 3]
    assert log.bytes_between(1, 3) == 24


def test_compaction_keeps_the_snapshot_boundary() -> None:
    log = Log(entries([1, 1, 2, 2, 2]))
    log.snapshot_index, log.snapshot_term = 4, 2
    log.compact(3)  # keep trailing entries 4..5
    assert log.offset == 3 and log.term_of(3) is None
    assert log.term_of(4) == 2 and log.last_index == 5
    assert log.bytes_between(4, 5) == 16
    log.restart(10, 3)
    assert (log.last_index, log.last_term, log.term_of(10), log.term_of(9)) == (10, 3, 3, None)


def test_send_limit_by_entries_and_bytes() -> None:
    log = Log(entries([1] * 10, size=100))
    assert log.send_limit(3, 100, 10**9) == 10
    assert log.send_limit(3, 2, 10**9) == 4
    assert log.send_limit(3, 100, 250) == 4
    assert log.send_limit(3, 100, 1) == 3        # at least one entry
    assert log.send_limit(11, 100, 100) == 10    # nothing to send
