"""Prometheus export of ``Server.metrics()`` (the optional extra ``raftpy[metrics]``).

May import: the standard library, raftpy.metrics, raftpy.core (values) and
prometheus_client (the only module of raftpy that does; importing this one
without it raises ImportError saying which extra to install).

What lives here: ``RaftCollector``, a prometheus_client custom collector that
turns one or more servers' ``ServerMetrics`` into metric families at scrape
time, and ``serve_metrics``, which starts prometheus_client's HTTP server for
them.  Conventions kept (prometheus.io "Metric and label naming"): every name
starts with ``raftpy_``; counters end in ``_total``; units are base units and
come last before ``_total`` (``_seconds``, ``_bytes``); an enum (the state) is
one gauge per value, 1 for the current one; every sample carries a
``server_id`` label so that one registry can hold several servers.

Rules kept: nothing is tracked here; each scrape asks each source for a fresh
snapshot.  A source is a callable returning ServerMetrics, called on the
scraping thread: ``BlockingServer.metrics`` is one; for an asyncio Server on
another thread, wrap it with ``from_loop(server, loop)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterator
from typing import Any, Protocol

try:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as exc:      # pragma: no cover - depends on the environment
    raise ImportError("raftpy.metrics_prometheus needs prometheus-client: "
                      "pip install 'raftpy[metrics]'") from exc

from raftpy.core.types import State
from raftpy.metrics import ServerMetrics

__all__ = ["RaftCollector", "serve_metrics", "from_loop"]

Source = Callable[[], ServerMetrics]

_STATES = [s.name for s in State]
_GAUGES = (   # (name, help, attribute of ServerMetrics)
    ("raftpy_term", "Current term.", "term"),
    ("raftpy_leader_id", "Id of the leader this server knows of (0: none).", "leader_id"),
    ("raftpy_commit_index", "Highest log index known committed.", "commit_index"),
    ("raftpy_last_applied_index", "Highest log index applied to the state machine.",
     "last_applied"),
    ("raftpy_last_stored_index", "Highest log index durable on this server.", "last_stored"),
    ("raftpy_last_log_index", "Highest index in this server's log.", "last_index"),
    ("raftpy_snapshot_index", "Index of the last snapshot (0: none).", "snapshot_index"),
    ("raftpy_pending_requests", "Client requests submitted and not yet answered.",
     "pending_requests"),
)
_COUNTERS = (
    ("raftpy_log_writes", "Durable log writes (Storage.append calls) completed.", "writes"),
    ("raftpy_log_entries_appended", "Log entries made durable.", "entries_appended"),
    ("raftpy_log_write_failures", "Log writes or truncations that failed.", "write_failures"),
    ("raftpy_elections", "Elections this server started (term bumped, own vote).",
     "elections"),
    ("raftpy_leadership_acquired", "Times this server became leader.",
     "leadership_acquired"),
    ("raftpy_snapshots_taken", "Snapshots of the state machine taken and written.",
     "snapshots_taken"),
    ("raftpy_snapshots_installed", "Snapshots received from a leader and installed.",
     "snapshots_installed"),
)


class HasMetrics(Protocol):
    def metrics(self) -> ServerMetrics: ...


class RaftCollector:
    """Collects the metrics of each source at every scrape."""

    def __init__(self, *sources: Source) -> None:
        if not sources:
            raise ValueError("RaftCollector needs at least one source")
        self.sources = sources

    def describe(self) -> list[Metric]:
        # Empty: registering must not scrape (a server may not be started yet).
        return []

    def collect(self) -> Iterator[Metric]:
        snapshots = [source() for source in self.sources]
        yield from _gauges(snapshots)
        yield from _counters(snapshots)
        yield from _messages(snapshots)
        yield _latency(snapshots)


def _gauges(snapshots: list[ServerMetrics]) -> Iterator[Metric]:
    state = GaugeMetricFamily("raftpy_state", "1 for the server's current state.",
                              labels=["server_id", "state"])
    for m in snapshots:
        for name in _STATES:
            state.add_metric([str(m.id), name.lower()], 1.0 if m.state == name else 0.0)
    yield state
    for name, text, attribute in _GAUGES:
        family = GaugeMetricFamily(name, text, labels=["server_id"])
        for m in snapshots:
            family.add_metric([str(m.id)], getattr(m, attribute))
        yield family
    match = GaugeMetricFamily("raftpy_follower_match_index",
                              "Leader only: highest index known replicated on a follower.",
                              labels=["server_id", "follower_id"])
    lag = GaugeMetricFamily("raftpy_follower_lag_entries",
                            "Leader only: entries a follower is not known to hold.",
                            labels=["server_id", "follower_id"])
    for m in snapshots:
        for follower_id, f in sorted(m.followers.items()):
            match.add_metric([str(m.id), str(follower_id)], f.match_index)
            lag.add_metric([str(m.id), str(follower_id)], f.lag)
    yield match
    yield lag


def _counters(snapshots: list[ServerMetrics]) -> Iterator[Metric]:
    for name, text, attribute in _COUNTERS:
        family = CounterMetricFamily(name, text, labels=["server_id"])
        for m in snapshots:
            family.add_metric([str(m.id)], getattr(m, attribute))
        yield family
    written = CounterMetricFamily("raftpy_log_written_bytes",
                                  "Bytes of log batches made durable (DiskStore).",
                                  labels=["server_id"])
    for m in snapshots:
        if m.bytes_written is not None:
            written.add_metric([str(m.id)], m.bytes_written)
    yield written


def _messages(snapshots: list[ServerMetrics]) -> Iterator[Metric]:
    sent = CounterMetricFamily("raftpy_messages_sent", "Messages handed to the transport.",
                               labels=["server_id", "type"])
    received = CounterMetricFamily("raftpy_messages_received",
                                   "Messages received from peers.",
                                   labels=["server_id", "type"])
    dropped = CounterMetricFamily("raftpy_messages_dropped",
                                  "Messages the transport reported as not delivered.",
                                  labels=["server_id", "reason"])
    for m in snapshots:
        for kind, n in sorted(m.messages_sent.items()):
            sent.add_metric([str(m.id), kind], n)
        for kind, n in sorted(m.messages_received.items()):
            received.add_metric([str(m.id), kind], n)
        reasons = m.dropped_by_reason or {"unknown": m.messages_dropped}
        for reason, n in sorted(reasons.items()):
            dropped.add_metric([str(m.id), reason], n)
    yield sent
    yield received
    yield dropped


def _latency(snapshots: list[ServerMetrics]) -> Metric:
    family = HistogramMetricFamily("raftpy_log_write_latency_seconds",
                                   "Time from Storage.append to its entries being durable.",
                                   labels=["server_id"])
    for m in snapshots:
        h = m.write_latency
        buckets: list[tuple[str, float]] = [(repr(bound), float(n))
                                            for bound, n in zip(h.bounds_s, h.counts, strict=True)]
        buckets.append(("+Inf", float(h.count)))
        family.add_metric([str(m.id)], buckets, h.sum_s)
    return family


def from_loop(server: HasMetrics, loop: asyncio.AbstractEventLoop,
              timeout_s: float = 2.0) -> Source:
    """A source that reads ``server.metrics()`` on its loop's thread (a scrape runs
    on prometheus_client's thread; the core must only be read on the loop's)."""
    def read() -> ServerMetrics:
        done: concurrent.futures.Future[ServerMetrics] = concurrent.futures.Future()

        def on_loop() -> None:
            try:
                done.set_result(server.metrics())
            except BaseException as exc:     # handed to the scraping thread
                done.set_exception(exc)
        loop.call_soon_threadsafe(on_loop)
        try:
            return done.result(timeout_s)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"metrics: the server's loop did not answer within "
                               f"{timeout_s} s") from None
    return read


def serve_metrics(port: int, *sources: Source, address: str = "127.0.0.1") -> Any:
    """Serve the sources' metrics over HTTP at http://address:port/metrics, from a
    daemon thread; returns prometheus_client's server (``.shutdown()`` stops it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RaftCollector(*sources))
    result = start_http_server(port, addr=address, registry=registry)
    return result[0] if isinstance(result, tuple) else result
