"""Server.metrics() and the Prometheus export: three real Servers (DiskStore on real
directories, TcpTransport on loopback), on asyncio and on uvloop; every test bounded.
The values must move as the cluster does: commands replicated, a follower down,
snapshots taken and installed."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from server_harness import Counter, TcpCluster, cmd, free_ports, run

from raftpy import Config, Server, State
from raftpy.io.disk import DiskStore
from raftpy.metrics import LatencyHistogram, ServerMetrics

# These tests read one leader's counters across many steps: timeouts long
# enough that a loop stalled by a loaded machine does not move leadership.
STEADY = Config(election_timeout_ms=2000, heartbeat_timeout_ms=100)


def test_histogram_buckets_are_cumulative_and_inclusive():
    h = LatencyHistogram((0.001, 0.01))
    for value in (0.0005, 0.001, 0.002, 0.5):
        h.observe(value)
    snap = h.snapshot()
    assert snap.counts == (2, 3) and snap.count == 4       # 0.001 falls in le=0.001
    assert snap.sum_s == pytest.approx(0.5035)


def test_metrics_follow_replication(tmp_path, run_loop):
    async def go():
        c = TcpCluster(tmp_path, config=STEADY)
        await c.start()
        try:
            leader = await c.leader()
            followers = [s for s in c.servers.values() if s is not leader]
            before = leader.metrics()
            f_before = followers[0].metrics()
            for i in range(50):
                await leader.apply(cmd(i))
            await leader.apply_many([cmd(i) for i in range(100)])
            await c.converge()
            last = leader.raft.log.last_index
            await c.wait(lambda: all(f.match_index == last
                                     for f in leader.metrics().followers.values()),
                         "followers acknowledged everything")
            after = leader.metrics()
            assert isinstance(after, ServerMetrics)
            assert (after.state, after.term, after.leader_id) == ("LEADER", leader.term,
                                                                  leader.id)
            assert after.leader_address == leader.address
            assert after.commit_index >= before.commit_index + 150
            assert after.last_applied == after.commit_index == after.last_stored == last
            assert sorted(after.followers) == sorted(f.id for f in followers)
            assert all(f.lag == 0 and f.mode == "PIPELINE" for f in after.followers.values())
            entries = after.entries_appended - before.entries_appended
            writes = after.writes - before.writes
            # (the new leader's barrier may have become durable after `before`)
            assert entries == after.last_stored - before.last_stored >= 150
            assert 1 <= writes <= entries
            assert after.bytes_written - before.bytes_written >= 150 * 8
            assert after.write_latency.count - before.write_latency.count == writes
            assert after.write_latency.sum_s > before.write_latency.sum_s
            assert list(after.write_latency.counts) == sorted(after.write_latency.counts)
            assert after.append_entries_sent >= before.append_entries_sent + 50
            assert after.messages_received["append_entries_result"] > 0
            assert after.pending_requests == 0 and after.write_failures == 0
            assert sum(s.metrics().elections for s in c.servers.values()) >= 1
            assert after.leadership_acquired >= 1
            f_after = followers[0].metrics()
            assert f_after.followers == {} and f_after.state == "FOLLOWER"
            assert f_after.append_entries_received >= f_before.append_entries_received + 50
            assert f_after.entries_appended - f_before.entries_appended \
                == f_after.last_stored - f_before.last_stored >= 150
            assert f_after.leader_id == leader.id and f_after.commit_index > 0
            # a request in flight is pending until answered
            task = asyncio.ensure_future(leader.apply(cmd(1)))
            await asyncio.sleep(0)            # let the task submit it
            assert leader.metrics().pending_requests == 1
            await task
            assert leader.metrics().pending_requests == 0
            assert after.as_dict()["write_latency"]["count"] == after.write_latency.count
        finally:
            await c.close()
    run(run_loop, go)


def test_metrics_show_a_follower_down_and_snapshots(tmp_path, run_loop):
    config = Config(election_timeout_ms=2000, heartbeat_timeout_ms=100, snapshot_threshold=32,
                    snapshot_trailing=8)

    async def go():
        c = TcpCluster(tmp_path, config=config)
        await c.start()
        try:
            leader = await c.leader()
            down = next(s for s in c.servers.values() if s is not leader)
            await down.close()
            before = leader.metrics()
            await leader.apply_many([cmd(i) for i in range(100)])
            await c.wait(lambda: leader.metrics().messages_dropped > before.messages_dropped,
                         "a send to the closed follower failed")
            m = leader.metrics()
            assert m.followers[down.id].lag >= 100
            assert sum(m.dropped_by_reason.values()) >= 1
            assert m.extra["connect_failures"] + m.extra["connections_lost"] >= 1
            assert m.snapshots_taken >= 1 and m.snapshot_index >= 32
            # the follower comes back (a new Server object: fresh counters) and
            # catches up by installing the leader's snapshot
            back = c.make(down.id)
            await c.boot(back)
            await c.converge()
            assert back.metrics().snapshots_installed == 1
            assert back.metrics().snapshot_index >= 32

            def caught_up() -> bool:
                # whoever leads now (on a busy machine leadership may have moved)
                leaders = [s for s in c.alive() if s.state == State.LEADER]
                view = leaders[0].metrics().followers.get(back.id) if leaders else None
                return len(leaders) == 1 and view is not None and view.lag == 0
            await c.wait(caught_up, "caught up")
        finally:
            await c.close()
    run(run_loop, go)


def test_metrics_of_a_closed_or_unstarted_server(tmp_path, run_loop):
    async def go():
        server = Server(1, "127.0.0.1:1", tmp_path, Counter(),
                        storage=DiskStore(str(tmp_path)))
        m = server.metrics()
        assert (m.state, m.term, m.commit_index, m.leader_id) == ("UNAVAILABLE", 0, 0, 0)
        assert m.bytes_written == 0 and m.followers == {}
        await server.close()
        assert server.metrics().state == "UNAVAILABLE"
    run(run_loop, go)


# ---------------------------------------------------------------- Prometheus

def _prometheus():
    return pytest.importorskip(
        "prometheus_client",
        reason="prometheus-client is not installed (pip install 'raftpy[metrics]'); "
               "the Prometheus export is not tested")


def _families(text: str) -> dict[str, object]:
    from prometheus_client.parser import text_string_to_metric_families
    return {f.name: f for f in text_string_to_metric_families(text)}


def _check_conventions(families) -> None:
    for name, family in families.items():
        assert name.startswith("raftpy_"), name
        assert family.documentation, name
        for sample in family.samples:
            assert "server_id" in sample.labels, sample
            if family.type == "counter":
                assert sample.name.endswith("_total") or sample.name.endswith("_created")
            if family.type == "histogram":
                assert name.endswith("_seconds")
                assert sample.name in (f"{name}_bucket", f"{name}_sum", f"{name}_count")
        assert family.type in ("gauge", "counter", "histogram"), (name, family.type)
        if family.type == "gauge":
            assert not name.endswith("_total"), name


def test_prometheus_collector_output_parses(tmp_path, run_loop):
    prometheus_client = _prometheus()
    from raftpy.metrics_prometheus import RaftCollector

    async def go():
        c = TcpCluster(tmp_path)
        await c.start()
        try:
            leader = await c.leader()
            await leader.apply_many([cmd(i) for i in range(40)])
            await c.converge()
            registry = prometheus_client.CollectorRegistry()
            registry.register(RaftCollector(*(s.metrics for s in c.servers.values())))
            text = prometheus_client.generate_latest(registry).decode()
            m = leader.metrics()
            return text, m, leader.id
        finally:
            await c.close()
    text, m, leader_id = run(run_loop, go)
    families = _families(text)
    _check_conventions(families)
    kinds = {name: f.type for name, f in families.items()}
    assert kinds["raftpy_term"] == "gauge" and kinds["raftpy_commit_index"] == "gauge"
    assert kinds["raftpy_log_entries_appended"] == "counter"
    assert kinds["raftpy_log_write_latency_seconds"] == "histogram"
    assert kinds["raftpy_log_written_bytes"] == "counter"

    def value(family: str, sample: str | None = None, **labels: str) -> float:
        for s in families[family].samples:
            if (sample is None or s.name == sample) and all(
                    s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError(f"no {family} {labels}")
    sid = str(leader_id)
    assert value("raftpy_state", server_id=sid, state="leader") == 1
    assert value("raftpy_state", server_id=sid, state="follower") == 0
    assert value("raftpy_commit_index", server_id=sid) == m.commit_index
    assert value("raftpy_log_entries_appended", "raftpy_log_entries_appended_total",
                 server_id=sid) == m.entries_appended
    assert value("raftpy_messages_sent", server_id=sid, type="append_entries") \
        == m.append_entries_sent
    assert value("raftpy_log_write_latency_seconds", "raftpy_log_write_latency_seconds_count",
                 server_id=sid) == m.write_latency.count
    assert value("raftpy_log_write_latency_seconds", "raftpy_log_write_latency_seconds_bucket",
                 server_id=sid, le="+Inf") == m.write_latency.count
    assert len([s for s in families["raftpy_follower_lag_entries"].samples]) == 2


def test_prometheus_http_endpoint(tmp_path, run_loop):
    _prometheus()
    from raftpy.metrics_prometheus import from_loop, serve_metrics

    async def go():
        c = TcpCluster(tmp_path, n=1)
        await c.start()
        http = None
        try:
            leader = await c.leader()
            await leader.apply(cmd(1))
            port = free_ports(1)[0]
            http = serve_metrics(port, from_loop(leader, asyncio.get_running_loop()))
            url = f"http://127.0.0.1:{port}/metrics"

            def fetch() -> str:
                with urllib.request.urlopen(url, timeout=10) as reply:
                    return reply.read().decode()
            text = await asyncio.to_thread(fetch)
        finally:
            if http is not None:
                http.shutdown()
                http.server_close()
            await c.close()
        families = _families(text)
        _check_conventions(families)
        state = {s.labels["state"]: s.value for s in families["raftpy_state"].samples}
        assert state["leader"] == 1 and sum(state.values()) == 1
    run(run_loop, go)


def test_from_loop_times_out_on_a_stalled_loop():
    _prometheus()
    from raftpy.metrics_prometheus import from_loop
    loop = asyncio.new_event_loop()          # never run: nothing answers
    try:
        source = from_loop(Server(1, "127.0.0.1:1", "/nonexistent", Counter()), loop,
                           timeout_s=0.05)
        with pytest.raises(TimeoutError, match="did not answer within"):
            source()
    finally:
        loop.close()

