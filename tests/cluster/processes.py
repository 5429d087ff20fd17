"""Real raftpy server processes for the cluster tests (example/server.py).

Each Node is one process of example/server.py on loopback, with its Raft port
and control port chosen free by the test; ``Cluster`` starts, kills (SIGKILL,
SIGSTOP/SIGCONT: only the PIDs it started) and queries them over the
control port (one JSON object per line).  Every wait is bounded: ``wait_for``
polls a condition until a deadline and fails with what it last saw.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netns import NetnsLab  # tests/cluster, beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(ROOT, "example", "server.py")
MUTANT_SERVER = os.path.join(ROOT, "tests", "cluster", "mutant_server.py")
REQUEST_TIMEOUT_S = 5.0


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port free on 127.0.0.1 now, below the kernel's ephemeral range: a
    port the kernel hands out (bind to 0) is also where every outgoing
    connection on the machine takes its source port, and the control
    requests and other tests make many, so one could take it in the seconds
    before a server binds it (seen: counter_server's raft_start failing with
    "address in use").  Random, so that concurrent test runs rarely pick the
    same; bounded tries, then the kernel's pick."""
    rng = random.SystemRandom()
    for _ in range(100):
        port = rng.randrange(10000, max(_ephemeral_low(), 10001))
        if port in _HANDED_OUT:      # free now, but another Node of this run has it
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    _HANDED_OUT.add(port)
    return port


# Every port free_port returned in this process: a port is free until its
# server binds it, so two Nodes made before either starts could get the same.
_HANDED_OUT: set[int] = set()


@dataclass
class Node:
    id: int
    directory: str
    raft_port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    host: str = "127.0.0.1"   # its address in a NetnsLab, else loopback

    @property
    def address(self) -> str:
        return f"{self.host}:{self.raft_port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def request(self, message: dict[str, Any], timeout: float = REQUEST_TIMEOUT_S
                ) -> dict[str, Any]:
        with socket.create_connection((self.host, self.control_port), timeout=timeout) as s:
            s.sendall(json.dumps(message).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError(f"server {self.id} closed the control connection")
                buf += chunk
        reply: dict[str, Any] = json.loads(buf)
        return reply

    def status(self) -> dict[str, Any] | None:
        if not self.alive():
            return None
        try:
            reply = self.request({"op": "status"}, timeout=1.0)
        except (OSError, ValueError):
            return None
        # Another process on this control port (one that took it before this
        # server could bind it) would otherwise pass for this server.
        assert reply.get("id") in (None, self.id), (
            f"{self.host}:{self.control_port} is answered by server {reply.get('id')}, "
            f"not {self.id}: another process holds server {self.id}'s control port\n"
            f"{self.log()}")
        return reply

    def log(self, tail: int | None = 3000) -> str:
        """The process's output (its last tail characters; None: all of it)."""
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        return text if tail is None else text[-tail:]


class Cluster:
    """``lab``: run server i in host i of that NetnsLab (tests/cluster/netns.py),
    on its address, instead of on loopback.  ``mutant``: run every server with
    that known-bad rule of tests/sim/mutants.py (tests/cluster/mutant_server.py),
    for the tests that show they catch it."""

    def __init__(self, top: str, size: int, snapshot_threshold: int = 64,
                 snapshot_trailing: int = 16, lab: NetnsLab | None = None,
                 mutant: str | None = None) -> None:
        self.top = top
        self.lab = lab
        self.mutant = mutant
        if lab is None:
            self.nodes = [Node(i, os.path.join(top, str(i))) for i in range(1, size + 1)]
        else:
            self.nodes = [Node(i, os.path.join(top, str(i)), 9000, 9100, host=lab.host(i))
                          for i in range(1, size + 1)]
        self.snapshot = (snapshot_threshold, snapshot_trailing)
        self.bootstrap = ",".join(f"{n.id}={n.address}" for n in self.nodes)

    def node(self, server_id: int) -> Node:
        return next(n for n in self.nodes if n.id == server_id)

    def start(self, node: Node, join: bool = False, extra: tuple[str, ...] = ()) -> None:
        assert not node.alive()
        node.log_path = os.path.join(self.top, f"server-{node.id}.log")
        log = open(node.log_path, "ab")
        program = [SERVER] if self.mutant is None else [MUTANT_SERVER, self.mutant]
        args = [sys.executable, *program, node.directory, str(node.id),
                "--address", node.address, "--control", f"{node.host}:{node.control_port}",
                "--cluster", self.bootstrap,
                "--snapshot-threshold", str(self.snapshot[0]),
                "--snapshot-trailing", str(self.snapshot[1]), *extra]
        if join:
            args.append("--join")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.lab is None:
            node.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        else:
            node.process = self.lab.popen(node.id, args, stdout=log, stderr=subprocess.STDOUT,
                                          env=env)
        log.close()
        wait_for(lambda: node.status() is not None or not node.alive(), 20,
                 f"server {node.id} to answer on its control port")
        assert node.alive(), f"server {node.id} exited:\n{node.log()}"

    def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)

    def add_node(self, join: bool = True) -> Node:
        node = Node(max(n.id for n in self.nodes) + 1,
                    os.path.join(self.top, str(len(self.nodes) + 1)))
        self.nodes.append(node)
        self.start(node, join=join)
        return node

    def kill(self, node: Node, sig: int = signal.SIGKILL) -> None:
        assert node.process is not None
        node.process.send_signal(sig)
        if sig == signal.SIGKILL:
            node.process.wait(timeout=10)

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.alive():
                assert node.process is not None
                node.process.send_signal(signal.SIGCONT)
                node.process.send_signal(signal.SIGKILL)
        for node in self.nodes:
            if node.process is not None:
                node.process.wait(timeout=10)

    def statuses(self) -> dict[int, dict[str, Any] | None]:
        return {n.id: n.status() for n in self.nodes}

    def leader(self, timeout: float = 20.0, among: list[Node] | None = None) -> Node:
        """The one server that says it leads (waits for one)."""
        found: list[Node] = []

        def one() -> bool:
            found[:] = [n for n in (among or self.nodes)
                        if (s := n.status()) is not None and s["state"] == "LEADER"]
            return len(found) == 1
        wait_for(one, timeout, "one leader", lambda: str(self.statuses()))
        return found[0]

    def apply(self, n: int = 1, timeout: float = 20.0) -> list[int]:
        """Apply n increments through whoever leads (retrying NotLeader)."""
        deadline = time.monotonic() + timeout
        while True:
            leader = self.leader(timeout=max(0.1, deadline - time.monotonic()))
            try:
                reply = leader.request({"op": "apply", "n": n})
            except OSError:
                reply = {"ok": False, "error": "connection"}
            if reply.get("ok"):
                values: list[int] = reply["values"]
                return values
            if time.monotonic() > deadline:
                raise AssertionError(f"apply failed until the deadline: {reply}")
            time.sleep(0.1)

    def converged(self, nodes: list[Node] | None = None, timeout: float = 30.0) -> int:
        """Wait until the nodes have applied the same log; their counter."""
        nodes = nodes or [n for n in self.nodes if n.alive()]
        seen: list[Any] = []

        def same() -> bool:
            s = [n.status() for n in nodes]
            seen[:] = s
            if any(x is None for x in s):
                return False
            return (len({(x["commit"], x["counter"]) for x in s if x}) == 1
                    and all(x["applied"] == x["commit"] for x in s if x))
        wait_for(same, timeout, "the servers to converge", lambda: str(seen))
        counter: int = seen[0]["counter"]
        return counter


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             describe: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            extra = f": {describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{extra}")
        time.sleep(0.05)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
