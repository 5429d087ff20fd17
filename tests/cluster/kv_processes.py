"""Real example/kv.py processes for the key-value tests.

A KvCluster starts servers on loopback with free Raft and HTTP ports, kills
(SIGKILL, only the PIDs it started) and restarts them, and talks HTTP with the
standard library (http.client, one connection per call, bounded by a timeout).

Membership: ``spares`` more servers start empty with --join (outside the
bootstrap configuration, every server knows their HTTP address), and every
server has raftpy's admin endpoint on a Unix socket (``KvNode.admin``: a
socket file, so it is reachable from the test whatever network namespace the
server is in).  ``voters`` and ``members`` are what the test last read of the
configuration (``read_configuration``); ``leader()`` asks the voters only,
since a removed server or a spare does not follow the leader.  A server is
only ever bootstrapped on its first start: restarts, and a server whose data
directory was wiped after its removal, start with --join, so nothing makes a
second cluster out of an empty directory.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netns import NetnsLab
from processes import MUTANT_SERVER, ROOT, free_port, wait_for  # tests/cluster on sys.path

from raftpy import admin
from raftpy.errors import NotLeaderError

KV = os.path.join(ROOT, "example", "kv.py")


def call(port: int, method: str, path: str, body: Any = None, timeout: float = 5.0,
         raw: bytes | None = None, host: str = "127.0.0.1") -> tuple[int, dict[str, Any]]:
    """One HTTP request; (status, JSON body).  Raises OSError on a network failure."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        text = answer.read()
        try:
            parsed = json.loads(text)
        except ValueError as err:
            raise OSError(f"not JSON from port {port}: {text[:200]!r}") from err
        return answer.status, parsed
    except http.client.HTTPException as err:
        raise OSError(repr(err)) from err
    finally:
        conn.close()


@dataclass
class KvNode:
    id: int
    directory: str
    raft_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    host: str = "127.0.0.1"   # its address in a NetnsLab, else loopback
    paused: bool = False      # SIGSTOPped by the test
    join: bool = False        # start with --join: never bootstrap
    admin: str = ""           # its admin endpoint (a Unix socket path)
    on_start: list[Callable[[KvNode], None]] = field(default_factory=list)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def status(self) -> dict[str, Any] | None:
        if not self.alive():
            return None
        try:
            code, body = call(self.http_port, "GET", "/status", timeout=1.0, host=self.host)
        except OSError:
            return None
        return body if code == 200 else None

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""


class KvCluster:
    """``lab``: server i runs in host i of that NetnsLab (tests/cluster/netns.py)."""

    def __init__(self, top: str, size: int = 3, snapshot_threshold: int = 64,
                 lab: NetnsLab | None = None, mutant: str | None = None,
                 spares: int = 0) -> None:
        self.top = top
        self.lab = lab
        self.mutant = mutant      # tests/sim/mutants.py, via tests/cluster/mutant_server.py
        os.makedirs(top, exist_ok=True)
        total = size + spares
        if lab is None:
            self.nodes = [KvNode(i, os.path.join(top, str(i))) for i in range(1, total + 1)]
        else:
            self.nodes = [KvNode(i, os.path.join(top, str(i)), 9000, 9200, host=lab.host(i))
                          for i in range(1, total + 1)]
        # Unix socket paths hold 107 bytes: a short directory of its own.
        self.admin_dir = tempfile.mkdtemp(prefix="rpkv")
        for node in self.nodes:
            node.join = node.id > size
            node.admin = os.path.join(self.admin_dir, f"{node.id}.sock")
        self.size = size
        self.snapshot_threshold = snapshot_threshold
        self.raft = ",".join(f"{n.id}={n.host}:{n.raft_port}" for n in self.nodes[:size])
        self.http = ",".join(f"{n.id}={n.host}:{n.http_port}" for n in self.nodes)
        self.voters: frozenset[int] = frozenset(range(1, size + 1))
        self.members: dict[int, str] = {i: "voter" for i in self.voters}  # id -> role

    def start(self, node: KvNode) -> None:
        self.start_many([node])

    def start_many(self, nodes: list[KvNode]) -> None:
        """Start every one of nodes at once, then wait until each answers HTTP."""
        for node in nodes:
            self._launch(node)
        for node in nodes:
            wait_for(lambda n=node: n.status() is not None or not n.alive(), 20,  # type: ignore[misc]
                     f"kv server {node.id} to answer HTTP")
            assert node.alive(), f"kv server {node.id} exited:\n{node.log()}"

    def _launch(self, node: KvNode) -> None:
        assert not node.alive()
        node.log_path = os.path.join(self.top, f"kv-{node.id}.log")
        program = [KV] if self.mutant is None else [MUTANT_SERVER, self.mutant, KV]
        argv = [sys.executable, *program, node.directory, str(node.id),
                "--address", f"{node.host}:{node.raft_port}",
                "--http", f"{node.host}:{node.http_port}", "--cluster", self.raft,
                "--http-cluster", self.http, "--admin", node.admin,
                "--snapshot-threshold", str(self.snapshot_threshold)]
        if node.join:
            argv.append("--join")
        node.join = True          # bootstrapped (or not) once: never again
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        node.paused = False
        with open(node.log_path, "ab") as log:
            if self.lab is None:
                node.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                env=env)
            else:
                node.process = self.lab.popen(node.id, argv, stdout=log,
                                              stderr=subprocess.STDOUT, env=env)
        for hook in node.on_start:
            hook(node)

    def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)

    def kill(self, node: KvNode) -> None:
        self.signal_kill(node)
        self.reap(node)

    def signal_kill(self, node: KvNode) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)

    def reap(self, node: KvNode) -> None:
        """Wait for a killed server to be gone.  A process exits only once the
        writes it submitted are done: behind a throttled disk that takes long."""
        assert node.process is not None
        node.process.wait(timeout=60)

    def pause(self, node: KvNode) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)
        node.paused = True

    def resume(self, node: KvNode) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGCONT)
        node.paused = False

    def wipe(self, node: KvNode) -> None:
        """Kill node and empty its data directory: it comes back as a new, empty
        server that waits to be added (--join)."""
        if node.alive():
            self.kill(node)
        shutil.rmtree(node.directory, ignore_errors=True)
        node.join = True

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.alive():
                assert node.process is not None
                node.process.send_signal(signal.SIGCONT)
                node.process.send_signal(signal.SIGKILL)
        for node in self.nodes:
            if node.process is not None:
                node.process.wait(timeout=10)
        shutil.rmtree(self.admin_dir, ignore_errors=True)

    def node(self, server_id: int) -> KvNode:
        return self.nodes[server_id - 1]

    def serving(self) -> list[KvNode]:
        """The live servers in the configuration that get the log (voters and
        standbys): the ones clients should use."""
        members = self.members
        return [n for n in self.nodes if members.get(n.id) in ("voter", "standby")
                and n.alive()]

    # -- membership, through the admin endpoint ------------------------------------

    def admin(self, op: str, timeout_s: float = 5.0, **arguments: Any) -> Any:
        """One admin request to whoever leads (a live voter that says LEADER, the
        highest term first; then the leader it names).  Raises RaftError."""
        statuses = [(s["term"], n) for n in self.nodes
                    if n.id in self.voters and (s := n.status()) and s["state"] == "LEADER"]
        if not statuses:
            raise NotLeaderError("no live voter says it leads", 0, None)
        node = max(statuses, key=lambda ts: ts[0])[1]
        for _ in range(3):
            try:
                return admin.request(node.admin, op, timeout_s, **arguments)
            except NotLeaderError as exc:
                if not exc.leader_id or exc.leader_id > len(self.nodes):
                    raise
                node = self.node(exc.leader_id)
        raise NotLeaderError("leadership kept moving", 0, None)

    def read_configuration(self) -> dict[int, str]:
        """The leader's configuration (id -> role); updates voters and members."""
        doc = self.admin("status")
        members = {int(s["id"]): str(s["role"]) for s in doc["configuration"]}
        self.members = members
        self.voters = frozenset(i for i, role in members.items() if role == "voter")
        return members

    def leader(self, timeout: float = 20.0) -> KvNode:
        """The one live voter that says it leads, and that the other voters follow.
        Fails at once (not at the timeout) when a voter has said UNAVAILABLE
        for 3 s: it stopped for good (a diverged committed entry, a disk
        error) and will not come back by itself."""
        found: list[KvNode] = []
        unavailable_since: dict[int, float] = {}

        def one() -> bool:
            s = {n.id: n.status() for n in self.nodes if n.alive() and n.id in self.voters}
            now = time.monotonic()
            for i, x in s.items():
                if x and x["state"] == "UNAVAILABLE":
                    if now - unavailable_since.setdefault(i, now) > 3.0:
                        raise AssertionError(f"voter {i} is UNAVAILABLE: {s}")
                else:
                    unavailable_since.pop(i, None)
            leaders = [i for i, x in s.items() if x and x["state"] == "LEADER"]
            found[:] = [n for n in self.nodes if n.id in leaders]
            return len(leaders) == 1 and all(x and x["leader"] == leaders[0]
                                             for x in s.values())
        wait_for(one, timeout, "one leader", lambda: str({n.id: n.status()
                                                          for n in self.nodes}))
        return found[0]

    def followers(self) -> list[KvNode]:
        leader = self.leader()
        return [n for n in self.nodes if n.alive() and n is not leader and n.id in self.voters]

    def until_ok(self, node: KvNode, method: str, path: str, body: Any = None,
                 timeout: float = 20.0, ok: tuple[int, ...] = (200, 404, 409)
                 ) -> tuple[int, dict[str, Any]]:
        """Retry a request (on errors and 503s) until it gets an answer in ok."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                code, answer = call(node.http_port, method, path, body, host=node.host)
                if code in ok:
                    return code, answer
                last = (code, answer)
            except OSError as err:
                last = err
            time.sleep(0.1)
        raise AssertionError(f"{method} {path} on {node.id}: no answer by the deadline: {last}")
