"""example/kv.py as three real processes on loopback (issue 12, item 2).

Requests go through the leader and through followers (which forward), reads
are linearizable unless ?stale=1, bad input is refused with 400 and changes
nothing, and after a SIGKILL of the leader under load every acknowledged write
is still there, on every server.  Every wait is bounded.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

try:
    import aiohttp  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("aiohttp is not installed (pip install -e '.[kv]'): example/kv.py needs it",
                allow_module_level=True)

from kv_processes import KvCluster, KvNode, call  # tests/cluster on sys.path
from processes import wait_for


@pytest.fixture
def kv(tmp_path):
    c = KvCluster(str(tmp_path))
    try:
        c.start_all()
        yield c
    finally:
        c.stop_all()


def test_put_get_delete_cas_through_the_leader_and_the_followers(kv: KvCluster) -> None:
    leader = kv.leader()
    f1, f2 = kv.followers()
    for i, node in enumerate((leader, f1, f2)):
        key = f"/kv/k{i}"
        assert kv.until_ok(node, "GET", key) == (404, {"key": f"k{i}", "value": None})
        assert kv.until_ok(node, "PUT", key, {"value": "one"}) == (200, {"ok": True})
        # Read back through every server: linearizable, so at once.
        for other in (leader, f1, f2):
            assert call(other.http_port, "GET", key) == (200, {"key": f"k{i}", "value": "one"})
        assert call(node.http_port, "POST", key + "/cas",
                    {"expect": "one", "value": "two"}) == (200, {"ok": True})
        assert call(f2.http_port, "POST", key + "/cas",
                    {"expect": "one", "value": "three"}) == (409, {"ok": False, "value": "two"})
        assert call(f1.http_port, "GET", key) == (200, {"key": f"k{i}", "value": "two"})
        assert call(node.http_port, "DELETE", key) == (200, {"deleted": True})
        assert call(leader.http_port, "DELETE", key) == (200, {"deleted": False})
        assert call(f2.http_port, "GET", key)[0] == 404
        # cas from absent creates, once.
        assert call(f1.http_port, "POST", key + "/cas",
                    {"expect": None, "value": "new"}) == (200, {"ok": True})
        assert call(node.http_port, "POST", key + "/cas",
                    {"expect": None, "value": "again"})[0] == 409
    status = call(f1.http_port, "GET", "/status")[1]
    assert status["leader"] == leader.id
    assert status["leader_http"] == f"127.0.0.1:{leader.http_port}"


def test_stale_reads_are_local_and_catch_up(kv: KvCluster) -> None:
    leader = kv.leader()
    follower = kv.followers()[0]
    kv.until_ok(leader, "PUT", "/kv/s", {"value": "v"})
    # The follower applies it soon: a stale read is allowed to lag, not to invent.
    seen: list[object] = []

    def caught_up() -> bool:
        code, body = call(follower.http_port, "GET", "/kv/s?stale=1")
        seen.append(body["value"])
        return code == 200 and body["value"] == "v"
    wait_for(caught_up, 10, "the follower to apply the write", lambda: str(seen[-3:]))
    assert set(seen) <= {None, "v"}


def test_bad_requests_are_refused_and_change_nothing(kv: KvCluster) -> None:
    leader = kv.leader()
    follower = kv.followers()[0]
    kv.until_ok(leader, "PUT", "/kv/b", {"value": "kept"})
    wait_for(lambda: all((s := n.status()) and s["applied"] == leader.status()["commit"]
                         for n in kv.nodes), 10, "every server to apply the put")
    commit = leader.status()["commit"]
    for node in (leader, follower):
        bad = [("PUT", "/kv/b", None, b"not json"), ("PUT", "/kv/b", None, b"[1, 2]"),
               ("PUT", "/kv/b", {"value": 3}, None), ("PUT", "/kv/b", {"valu": "x"}, None),
               ("PUT", "/kv/b", {"value": None}, None),
               ("POST", "/kv/b/cas", {"value": "x"}, None),
               ("POST", "/kv/b/cas", {"expect": 1, "value": "x"}, None),
               ("PUT", "/kv/" + "k" * 1025, {"value": "x"}, None)]
        for method, path, body, raw in bad:
            code, answer = call(node.http_port, method, path, body, raw=raw)
            assert code == 400 and answer["error"] == "bad request", (method, path, answer)
            assert answer["message"]
    # Nothing was replicated for them (no entry, not even a barrier) and all are up.
    assert [n.status()["commit"] for n in kv.nodes] == [commit] * 3
    for node in (leader, follower):
        assert call(node.http_port, "GET", "/kv/b") == (200, {"key": "b", "value": "kept"})
        assert call(node.http_port, "GET", "/kv/b?stale=1")[1]["value"] == "kept"


class Writer:
    """A client thread putting distinct keys through the servers in turn; the
    writes acknowledged, and those whose outcome is unknown."""

    def __init__(self, nodes: list[KvNode]) -> None:
        self.nodes = nodes
        self.acked: dict[str, str] = {}
        self.unknown: set[str] = set()
        self.stop = threading.Event()
        self.deadline = time.monotonic() + 90          # bounded whatever happens
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            node = self.nodes[i % len(self.nodes)]
            key, value = f"w{i}", f"v{i}"
            i += 1
            try:
                code, answer = call(node.http_port, "PUT", f"/kv/{key}", {"value": value},
                                    timeout=12.0)
            except OSError:
                self.unknown.add(key)
                time.sleep(0.05)
                continue
            if code == 200:
                self.acked[key] = value
            elif answer.get("unknown", True):
                self.unknown.add(key)
            else:
                time.sleep(0.05)


def test_sigkill_of_the_leader_keeps_every_acknowledged_write(kv: KvCluster) -> None:
    leader = kv.leader()
    writer = Writer(kv.nodes)
    writer.thread.start()
    try:
        wait_for(lambda: len(writer.acked) >= 100, 30, "100 acknowledged writes")
        kv.kill(leader)
        before = len(writer.acked)
        new_leader = kv.leader(timeout=30)
        assert new_leader is not leader
        wait_for(lambda: len(writer.acked) >= before + 100, 40,
                 "100 more acknowledged writes after the kill")
    finally:
        writer.stop.set()
        writer.thread.join(timeout=20)
    assert not writer.thread.is_alive()
    kv.start(leader)
    kv.leader(timeout=30)
    print(f"\n{len(writer.acked)} writes acknowledged, {len(writer.unknown)} unknown")
    for node in kv.nodes:                     # the restarted one included
        for key, value in writer.acked.items():
            code, answer = kv.until_ok(node, "GET", f"/kv/{key}")
            assert (code, answer["value"]) == (200, value), (node.id, key, answer)


def consecutive_free_ports(count: int) -> int:
    """A base such that base+1..base+count are free on 127.0.0.1 now."""
    import random
    import socket
    rng = random.Random()
    for _ in range(100):
        base = rng.randrange(20000, 60000)
        try:
            for port in range(base + 1, base + count + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free port range")


def test_the_one_command_kv_cluster_demo(tmp_path) -> None:
    """example/kv_cluster.py (what `bash example/run kv` runs) starts 3 servers and
    its demo's requests through each of them give the expected answers."""
    import subprocess
    import sys

    from kv_processes import ROOT
    raft, http = consecutive_free_ports(3), consecutive_free_ports(3)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "example", "kv_cluster.py"),
                          "--demo", "--dir", str(tmp_path), "--raft-port-base", str(raft),
                          "--http-port-base", str(http)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert sum("-> 200" in line for line in lines) == 3 * 5
    assert sum("-> 409" in line for line in lines) == 3
    assert "UNEXPECTED" not in out.stdout
