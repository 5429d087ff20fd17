"""raftpy as real processes on loopback (issue 9, item 5).

Three (or four) example/server.py processes, each with its own data
directory, TCP on 127.0.0.1 and a control port; faults are real signals to
the PIDs these tests started (SIGKILL, SIGSTOP/SIGCONT).  Every wait is
bounded (tests/cluster/processes.py).  The client keeps a ledger: what was
acknowledged must be in the final state of every server.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from processes import (  # tests/cluster on sys.path
    SERVER,
    Cluster,
    Node,
    free_port,
    rss_kib,
    wait_for,
)


@pytest.fixture
def cluster(tmp_path):
    clusters: list[Cluster] = []

    def make(size: int = 3, **kw) -> Cluster:
        c = Cluster(str(tmp_path), size, **kw)
        clusters.append(c)
        c.start_all()
        return c
    yield make
    for c in clusters:
        c.stop_all()


def test_election_and_replication(cluster):
    c = cluster()
    leader = c.leader()
    values = c.apply(100)
    assert values == list(range(1, 101))
    assert c.converged() == 100
    # One leader, the others follow it.
    statuses = c.statuses()
    assert sorted(s["state"] for s in statuses.values()) == ["FOLLOWER", "FOLLOWER", "LEADER"]
    assert {s["leader"] for s in statuses.values()} == {leader.id}


class Load:
    """A client thread applying batches through whoever leads; the ledger of
    acknowledged values and of requests whose outcome is unknown."""

    def __init__(self, c: Cluster, batch: int = 8) -> None:
        self.c, self.batch = c, batch
        self.acked: list[int] = []
        self.unknown = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.deadline = time.monotonic() + 120       # bounded whatever happens

    def run(self) -> None:
        target = self.c.nodes[0]
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                reply = target.request({"op": "apply", "n": self.batch}, timeout=3.0)
            except (OSError, ValueError):
                self.unknown += self.batch
                target = self.c.nodes[(self.c.nodes.index(target) + 1) % len(self.c.nodes)]
                time.sleep(0.05)
                continue
            if reply.get("ok"):
                self.acked += reply["values"]
            elif reply.get("error") == "NotLeaderError" and reply.get("leader"):
                target = self.c.node(reply["leader"])
            else:
                if reply.get("error") != "NotLeaderError":
                    self.unknown += self.batch
                target = self.c.nodes[(self.c.nodes.index(target) + 1) % len(self.c.nodes)]
                time.sleep(0.05)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def check(self, counter: int) -> None:
        assert len(set(self.acked)) == len(self.acked), "two acknowledged writes share a value"
        assert len(self.acked) <= counter <= len(self.acked) + self.unknown, \
            (len(self.acked), counter, self.unknown)
        assert not self.acked or max(self.acked) <= counter


def test_sigkill_of_the_leader_under_load_loses_no_acknowledged_write(cluster):
    c = cluster()
    with Load(c) as load:
        wait_for(lambda: len(load.acked) >= 200, 30, "200 acknowledged writes")
        old = c.leader()
        c.kill(old)
        survivors = [n for n in c.nodes if n is not old]
        new = c.leader(among=survivors)
        assert new is not old
        before = len(load.acked)
        wait_for(lambda: len(load.acked) >= before + 200, 30,
                 "200 more acknowledged writes after the failover")
    c.start(old)
    load.check(c.converged())


def test_restart_from_disk_after_sigkill_of_all(cluster):
    c = cluster()
    c.apply(300)                      # past the snapshot threshold (64): snapshots too
    assert c.converged() == 300
    for node in c.nodes:
        c.kill(node)
    c.start_all()
    c.leader()
    assert c.converged() == 300
    c.apply(5)
    assert c.converged() == 305


def test_a_stopped_leader_steps_down_and_acknowledges_nothing_it_accepted_after(cluster):
    c = cluster()
    c.apply(50)
    old = c.leader()
    c.kill(old, signal.SIGSTOP)
    survivors = [n for n in c.nodes if n is not old]
    try:
        new = c.leader(among=survivors)      # past the election timeout
        c.apply(20)
        # A request sent to the stopped leader: it reads it only once resumed.
        replies: list[dict] = []
        sender = threading.Thread(target=lambda: replies.append(
            _try(old, {"op": "apply", "n": 4}, timeout=15)), daemon=True)
        sender.start()
        time.sleep(0.3)
    finally:
        c.kill(old, signal.SIGCONT)
    sender.join(timeout=20)
    wait_for(lambda: (s := old.status()) is not None and s["state"] != "LEADER"
             and s["leader"] == new.id, 20, "the old leader to follow the new one")
    counter = c.converged()
    assert counter >= 70
    assert replies, "the resumed old leader never answered the request it read"
    reply = replies[0]
    assert not reply.get("ok"), (f"the deposed leader acknowledged a write it accepted "
                                 f"after losing leadership: {reply}")
    # Refused (it learned the new term first) or failed (it had accepted it).
    assert reply.get("error") in ("LeadershipLostError", "NotLeaderError"), reply


def _try(node, message, timeout):
    try:
        return node.request(message, timeout=timeout)
    except (OSError, ValueError) as err:
        return {"ok": False, "error": "connection", "message": repr(err)}


def test_add_and_promote_a_fourth_server_then_remove_one(cluster):
    c = cluster()
    c.apply(100)
    new = c.add_node(join=True)
    leader = c.leader()
    assert leader.request({"op": "add", "id": new.id, "address": new.address}).get("ok")
    assert leader.request({"op": "assign", "id": new.id, "role": "voter"}).get("ok")
    c.apply(10)
    assert c.converged() == 110
    # Remove a follower that is not the new one; the cluster of 3 goes on.
    gone = next(n for n in c.nodes if n is not leader and n is not new)
    leader = c.leader()
    assert leader.request({"op": "remove", "id": gone.id}).get("ok")
    c.kill(gone)
    c.apply(10)
    assert c.converged([n for n in c.nodes if n is not gone]) == 120


def test_a_restarted_lagging_server_catches_up_by_snapshot(tmp_path, cluster):
    c = cluster(snapshot_threshold=32, snapshot_trailing=8)
    c.apply(10)
    c.converged()
    lagging = next(n for n in c.nodes if n is not c.leader())
    c.kill(lagging)
    # 500 entries over more than three connect retries (1 s each): many
    # snapshots, the leader's log compacted, and its transport's queue for
    # the dead server trimmed to the newest 3 messages (libraft's rule), so
    # that the old entries cannot arrive from the queue.
    for _ in range(10):
        c.apply(50)
        time.sleep(0.4)
    c.start(lagging)
    assert c.converged() == 510
    # Caught up by InstallSnapshot: its log was replaced, so no segment holds
    # entry 13 (the first it missed); a catch-up by AppendEntries writes one.
    segments = [f for f in os.listdir(lagging.directory) if f[:1].isdigit()]
    firsts = sorted(int(f.split("-")[0]) for f in segments)
    assert not firsts or firsts[0] > 13, sorted(os.listdir(lagging.directory))


def test_garbage_on_the_raft_port_closes_that_connection_only(cluster):
    c = cluster()
    leader = c.leader()
    c.apply(20)
    rss_before = rss_kib(leader.process.pid)
    handshake = struct.pack("<QQQ", 1, 99, 16) + b"127.0.0.1:1\0".ljust(16, b"\0")
    # (bytes, end our side): the server must close the connection on its
    # own, on reading the bytes, not on our end of stream; only the
    # truncated frame needs the end of stream to be malformed.
    cases = [
        (b"\xff" * 4096, False),                                       # not a handshake
        (struct.pack("<QQQ", 7, 99, 16) + b"x" * 16, False),            # wrong protocol
        (handshake + struct.pack("<QQ", 1, 48) + b"\0" * 20, True),     # truncated, EOF
        (handshake + struct.pack("<QQ", 1, 1 << 40), False),            # a 1 TiB header
        (handshake + struct.pack("<QQ", 99, 8) + b"\0" * 8, False),     # unknown type
        (handshake + struct.pack("<QQ", 1, 0), False),                  # zero header length
        # AppendEntries claiming 4 GiB of payload in one entry.
        (handshake + struct.pack("<QQ", 1, 64) + struct.pack("<QQQQQ", 1, 0, 0, 0, 1)
         + struct.pack("<QBxxxI", 1, 1, 0xFFFFFFF8) + b"\0" * 8, False),
    ]
    warnings_before = leader.log(None).count("closing it")
    for data, end in cases:
        with socket.create_connection(("127.0.0.1", leader.raft_port), timeout=5) as s:
            s.sendall(data)
            if end:
                s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            assert s.recv(1) == b""           # closed by the server, nothing sent back
    wait_for(lambda: leader.log(None).count("closing it") >= warnings_before + len(cases), 10,
             "a logged reason for each closed connection", leader.log)
    # A well-formed heartbeat whose term leaves no room for the next one: not
    # malformed, dropped by the core; the cluster keeps its term.
    with socket.create_connection(("127.0.0.1", leader.raft_port), timeout=5) as s:
        s.sendall(handshake + struct.pack("<QQ", 1, 48)
                  + struct.pack("<QQQQQQ", 2**64 - 1, 0, 0, 0, 0, 0))
        time.sleep(0.5)
    values = c.apply(20)
    assert values[-1] == 40
    assert c.converged() == 40
    assert all(st is not None and st["term"] < 2**63 for st in c.statuses().values())
    assert rss_kib(leader.process.pid) < rss_before + 64 * 1024, "memory grew by > 64 MiB"


def test_two_servers_on_one_data_directory_refused(cluster):
    c = cluster()
    node = c.nodes[0]
    out = subprocess.run([sys.executable, SERVER, node.directory, str(node.id),
                          "--address", f"127.0.0.1:{free_port()}",
                          "--control", f"127.0.0.1:{free_port()}", "--cluster", c.bootstrap],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "BusyError" in out.stderr + out.stdout, out.stderr + out.stdout
    assert c.converged() >= 0         # the running one is unharmed


def test_address_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, SERVER, str(tmp_path / "d"), "1",
                              "--address", f"127.0.0.1:{port}",
                              "--control", f"127.0.0.1:{free_port()}",
                              "--cluster", f"1=127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=30)
    text = out.stderr + out.stdout
    assert out.returncode != 0
    assert "in use" in text.lower(), text


def test_a_leader_cut_off_from_its_quorum_acknowledges_nothing(cluster):
    # Both followers stopped: the leader can append but not commit.  A write it
    # acknowledged now would be lost once it dies and the others elect a leader
    # without it (with writes acknowledged at acceptance, this test fails).
    c = cluster()
    before = c.apply(30)[-1]
    leader = c.leader()
    followers = [n for n in c.nodes if n is not leader]
    for n in followers:
        c.kill(n, signal.SIGSTOP)
    try:
        reply = _try(leader, {"op": "apply", "n": 4}, timeout=4)
        assert not reply.get("ok"), f"a write acknowledged without a quorum: {reply}"
        c.kill(leader)
    finally:
        for n in followers:
            c.kill(n, signal.SIGCONT)
    c.leader(among=followers)
    c.start(leader)
    counter = c.converged()
    assert before <= counter <= before + 4


def test_free_port_never_hands_out_a_port_twice():
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_a_control_port_answered_by_another_server_fails_loudly(tmp_path):
    """A process that took a server's control port must not pass for it: the
    status reply names the server that answered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer_as_server_7() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b'{"id": 7, "state": "LEADER"}\n')
        thread = threading.Thread(target=answer_as_server_7, daemon=True)
        thread.start()
        node = Node(2, str(tmp_path), control_port=listener.getsockname()[1])
        node.process = subprocess.Popen(["sleep", "30"])    # stands for server 2's process
        try:
            with pytest.raises(AssertionError, match="answered by server 7, not 2"):
                node.status()
        finally:
            node.process.kill()
            node.process.wait()
        thread.join(timeout=5)
