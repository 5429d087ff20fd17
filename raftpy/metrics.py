"""Metrics: what a Server is doing, as a plain snapshot (``Server.metrics()``).

May import: the standard library and raftpy.core (values).  No third-party
package: the Prometheus export lives apart, in raftpy.metrics_prometheus.

What lives here:

- ``Counters``: the mutable counters one Server bumps on its loop thread.  They
  are bumped per batch wherever the shell sees a batch (one Storage.append,
  one Update's messages), per message where a message is the unit (receive,
  send_failed), never per entry: the hot path pays an integer add per batch.
- ``LatencyHistogram``: fixed buckets (in seconds, libraft-scale: 50 µs to
  2.5 s) that a durable write's latency falls into; one ``bisect`` per write.
- ``ServerMetrics``, ``FollowerMetrics``, ``HistogramSnapshot``: frozen
  records of plain values (ints, strs, tuples, dicts of those) built by
  ``Server.metrics()``; safe to keep, compare, print or ``as_dict()`` to JSON.

Rules kept: a snapshot is built on the loop thread (Server.metrics() reads the
core), so it is consistent; counters only ever grow; gauges (term, indexes,
pending requests) are read at snapshot time, not tracked.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from raftpy.core.messages import MESSAGE_TYPES

__all__ = ["Counters", "LatencyHistogram", "HistogramSnapshot", "FollowerMetrics",
           "ServerMetrics", "WRITE_LATENCY_BUCKETS_S", "message_type_name"]

# Upper bounds of the write latency buckets, seconds; a durable 4 KiB write on
# this kind of machine takes 0.1-0.15 ms (DESIGN.md), a slow disk 10-100 ms.
WRITE_LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5)


def message_type_name(cls: type) -> str:
    """'append_entries' for AppendEntries: the label Prometheus and dicts use."""
    return MESSAGE_TYPES[cls].name.lower()


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Cumulative counts per upper bound (seconds), as Prometheus buckets are:
    ``counts[i]`` observations were <= ``bounds_s[i]``; ``count`` is every one
    (the +Inf bucket), ``sum_s`` their total."""

    bounds_s: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum_s: float


class LatencyHistogram:
    """Observations of a latency in seconds, into WRITE_LATENCY_BUCKETS_S."""

    __slots__ = ("bounds_s", "_counts", "count", "sum_s")

    def __init__(self, bounds_s: tuple[float, ...] = WRITE_LATENCY_BUCKETS_S) -> None:
        assert list(bounds_s) == sorted(bounds_s), "bucket bounds must ascend"
        self.bounds_s = bounds_s
        self._counts = [0] * (len(bounds_s) + 1)     # the last one: above every bound
        self.count = 0
        self.sum_s = 0.0

    def observe(self, value_s: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le).
        self._counts[bisect.bisect_left(self.bounds_s, value_s)] += 1
        self.count += 1
        self.sum_s += value_s

    def snapshot(self) -> HistogramSnapshot:
        cumulative, total = [], 0
        for n in self._counts[:-1]:
            total += n
            cumulative.append(total)
        return HistogramSnapshot(self.bounds_s, tuple(cumulative), self.count, self.sum_s)


class Counters:
    """The counters of one Server; only its loop thread writes them."""

    __slots__ = ("writes", "entries_appended", "write_failures", "sent", "received",
                 "elections", "leadership_acquired", "snapshots_taken",
                 "snapshots_installed", "messages_dropped", "write_latency")

    def __init__(self) -> None:
        self.writes = 0                  # Storage.append calls that succeeded
        self.entries_appended = 0        # entries those wrote
        self.write_failures = 0          # Storage.append or truncate calls that failed
        # messages handed to the transport / received, per message class: the
        # keys are filled up front so the hot path is a plain `+= 1`.
        self.sent: dict[type, int] = dict.fromkeys(MESSAGE_TYPES, 0)
        self.received: dict[type, int] = dict.fromkeys(MESSAGE_TYPES, 0)
        self.elections = 0               # elections started (term bumped, own vote)
        self.leadership_acquired = 0     # times this server became leader
        self.snapshots_taken = 0
        self.snapshots_installed = 0
        self.messages_dropped = 0        # reported by the transport with send_failed
        self.write_latency = LatencyHistogram()

    def count_sent(self, messages: list[tuple[int, str, Any]]) -> None:
        """One Update's messages (per batch: about one per follower)."""
        sent = self.sent
        for _, _, message in messages:
            sent[type(message)] += 1


@dataclass(frozen=True, slots=True)
class FollowerMetrics:
    """The leader's view of one follower: ``lag`` is the leader's last index
    minus ``match_index`` (entries the follower is not known to hold)."""

    match_index: int
    next_index: int
    lag: int
    mode: str                            # "PROBE", "PIPELINE" or "SNAPSHOT"


@dataclass(frozen=True, slots=True)
class ServerMetrics:
    """One Server at one moment.  Gauges: state..pending_requests; counters (only
    grow while the Server object lives): the rest.  ``bytes_written`` is None
    when the Storage does not count bytes (DiskStore does: batch bytes made
    durable, headers included); ``dropped_by_reason`` is empty unless the
    Transport keeps TcpTransport's stats."""

    id: int
    state: str                           # "UNAVAILABLE", "FOLLOWER", "CANDIDATE", "LEADER"
    term: int
    leader_id: int                       # 0: not known
    leader_address: str | None
    commit_index: int
    last_applied: int
    last_stored: int                     # the last index known durable here
    last_index: int                      # the last index in the log (durable or not)
    snapshot_index: int                  # of the last snapshot taken or installed (0: none)
    pending_requests: int
    followers: dict[int, FollowerMetrics]   # the leader's only; empty elsewhere
    writes: int
    entries_appended: int
    bytes_written: int | None
    write_failures: int
    messages_sent: dict[str, int]
    messages_received: dict[str, int]
    messages_dropped: int
    dropped_by_reason: dict[str, int]
    elections: int
    leadership_acquired: int
    snapshots_taken: int
    snapshots_installed: int
    write_latency: HistogramSnapshot
    extra: dict[str, int] = field(default_factory=dict)   # transport counters, if any

    @property
    def append_entries_sent(self) -> int:
        return self.messages_sent.get("append_entries", 0)

    @property
    def append_entries_received(self) -> int:
        return self.messages_received.get("append_entries", 0)

    def as_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready dicts and lists."""
        return dataclasses.asdict(self)
