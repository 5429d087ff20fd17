"""Real network partitions: example/server.py processes, each in a network
namespace of its own (tests/cluster/netns.py), cut apart by nftables drop
rules (issue 12, item 3).

A silent partition is what loopback tests cannot give: packets vanish, no
connect is refused, no connection is reset.  Each test checks what a client
of the cluster sees: a leader cut off from the majority acknowledges nothing
and steps down, the majority elects and commits, and after healing every
server converges on the same log and counter, with every acknowledged
increment in it.  Skips with the printed reason where namespaces cannot be
made (not root, no ip/nft); fails instead under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "cluster"))
from netns import NetnsLab, available  # noqa: E402 (tests/cluster)
from processes import Cluster, Node, wait_for  # noqa: E402

WHY_NOT = available()
if WHY_NOT is not None:
    if os.environ.get("CI"):
        raise RuntimeError(f"network namespaces are required under CI=true: {WHY_NOT}")
    pytest.skip(f"no network namespaces here: {WHY_NOT}", allow_module_level=True)


@pytest.fixture
def netns_cluster(tmp_path):
    made: list[tuple[NetnsLab, Cluster]] = []

    def make(size: int = 3, mutant: str | None = None) -> tuple[NetnsLab, Cluster]:
        lab = NetnsLab(size).start()
        cluster = Cluster(str(tmp_path), size, lab=lab, mutant=mutant)
        made.append((lab, cluster))
        cluster.start_all()
        return lab, cluster
    yield make
    for lab, cluster in made:
        try:
            cluster.stop_all()    # only the PIDs it started
        finally:
            lab.close()


def _try_apply(node: Node, timeout: float = 3.0) -> dict:
    try:
        return node.request({"op": "apply", "n": 1}, timeout=timeout)
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def test_a_leader_partitioned_from_the_majority_steps_down_and_loses_nothing(
        netns_cluster) -> None:
    _cut_off_the_leader(*netns_cluster(3))


def test_the_partition_check_finds_a_leader_that_commits_alone(netns_cluster) -> None:
    """The check above, run on servers with tests/sim/mutants.py's commit-alone
    (a leader counts only itself toward a commit), must fail."""
    with pytest.raises(AssertionError, match="acknowledged a write|!= |assert ") as found:
        _cut_off_the_leader(*netns_cluster(3, mutant="commit-alone"))
    print("found:", str(found.value).splitlines()[0])


def _cut_off_the_leader(lab: NetnsLab, cluster: Cluster) -> None:
    acked = len(cluster.apply(10))
    old = cluster.leader()
    rest = [n for n in cluster.nodes if n is not old]
    lab.partition([old.id], [n.id for n in rest])
    started = time.monotonic()

    # At once, while it still thinks it leads: the old leader acknowledges
    # nothing (it fails the request when it steps down, or the client gives up).
    answer = _try_apply(old)
    assert not answer.get("ok"), f"the cut-off leader acknowledged a write: {answer}"
    # The majority elects a new leader and commits.
    new = cluster.leader(timeout=30, among=rest)
    reply = new.request({"op": "apply", "n": 5})
    assert reply["ok"], reply
    acked += 5
    wait_for(lambda: (s := old.status()) is not None and s["state"] != "LEADER", 10,
             "the cut-off leader to step down", lambda: str(old.status()))
    print(f"new leader {new.id} after {time.monotonic() - started:.1f} s; "
          f"old leader {old.id} answered {answer}")

    lab.heal()
    healed = time.monotonic()
    counter = cluster.converged(timeout=30)
    print(f"converged {time.monotonic() - healed:.1f} s after healing")
    assert counter == acked
    statuses = [cluster.node(n.id).status() for n in cluster.nodes]
    assert len({s["term"] for s in statuses if s}) == 1, statuses


def test_a_one_way_cut_and_a_minority_follower_do_not_stop_the_majority(
        netns_cluster) -> None:
    lab, cluster = netns_cluster(5)
    acked = len(cluster.apply(5))
    leader = cluster.leader()
    followers = [n for n in cluster.nodes if n is not leader]
    # One follower alone, another that hears the leader but cannot answer.
    alone, mute = followers[0], followers[1]
    lab.partition([alone.id], [n.id for n in cluster.nodes if n is not alone])
    lab.cut(mute.id, leader.id)
    for _ in range(3):
        acked += len(cluster.apply(4, timeout=30))
    lab.heal()
    assert cluster.converged(timeout=40) == acked


def test_a_cluster_split_down_the_middle_recovers_when_healed(netns_cluster) -> None:
    lab, cluster = netns_cluster(5)
    acked = len(cluster.apply(5))
    leader = cluster.leader()
    others = [n.id for n in cluster.nodes if n is not leader]
    # The leader with one follower (a minority) against three (a majority).
    lab.partition([leader.id, others[0]], others[1:])
    majority = [cluster.node(i) for i in others[1:]]
    new = cluster.leader(timeout=30, among=majority)
    reply = new.request({"op": "apply", "n": 3})
    assert reply["ok"], reply
    acked += 3
    # Flip the partition: the old minority now has the majority of five.
    lab.partition([leader.id, others[0], others[1]], others[2:])
    acked += len(cluster.apply(2, timeout=40))
    lab.heal()
    assert cluster.converged(timeout=40) == acked


CONNECT_PROBE = """
import asyncio, sys, time
from raftpy.core.config import Config
from raftpy.core.messages import TimeoutNow
from raftpy.io.tcp import TcpTransport

async def main():
    transport = TcpTransport(Config(connect_timeout_ms=int(sys.argv[3])))
    await transport.start(1, sys.argv[1], lambda f, a, m: None, lambda t, m: None)
    started = time.monotonic()
    transport.send(2, sys.argv[2], TimeoutNow(1, 1, 1))
    try:
        while not transport.stats.connect_failures and time.monotonic() - started < 20:
            await asyncio.sleep(0.01)
        print(f"failed after {time.monotonic() - started:.2f}")
    finally:
        await transport.close()
asyncio.run(main())
"""


def test_a_connect_into_a_silent_partition_fails_after_the_connect_timeout(tmp_path) -> None:
    """Without Config.connect_timeout_ms the kernel's SYN retries (about two
    minutes) hold the connect, and the message, that long: a peer behind a
    partition that healed meanwhile stays unreachable."""
    with NetnsLab(2) as lab:
        lab.partition([1], [2])
        probe = lab.popen(1, [sys.executable, "-c", CONNECT_PROBE, f"{lab.host(1)}:9000",
                              f"{lab.host(2)}:9000", "700"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = probe.communicate(timeout=30)
        finally:
            if probe.poll() is None:
                probe.kill()  # our own child
                probe.wait()
    text = out.decode()
    assert "failed after" in text, text
    elapsed = float(text.split("failed after")[1].split()[0])
    print(f"connect into the partition failed after {elapsed:.2f} s")
    assert 0.6 <= elapsed < 2, text
