"""Real example/kv.py processes for the key-value tests.

A KvCluster starts servers on loopback with free Raft and HTTP ports, kills
(SIGKILL, only the PIDs it started) and restarts them, and talks HTTP with the
standard library (http.client, one connection per call, bounded by a timeout).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from netns import NetnsLab
from processes import MUTANT_SERVER, ROOT, free_port, wait_for  # tests/cluster on sys.path

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
                 lab: NetnsLab | None = None, mutant: str | None = None) -> None:
        self.top = top
        self.lab = lab
        self.mutant = mutant      # tests/sim/mutants.py, via tests/cluster/mutant_server.py
        os.makedirs(top, exist_ok=True)
        if lab is None:
            self.nodes = [KvNode(i, os.path.join(top, str(i))) for i in range(1, size + 1)]
        else:
            self.nodes = [KvNode(i, os.path.join(top, str(i)), 9000, 9200, host=lab.host(i))
                          for i in range(1, size + 1)]
        self.snapshot_threshold = snapshot_threshold
        self.raft = ",".join(f"{n.id}={n.host}:{n.raft_port}" for n in self.nodes)
        self.http = ",".join(f"{n.id}={n.host}:{n.http_port}" for n in self.nodes)

    def start(self, node: KvNode) -> None:
        assert not node.alive()
        node.log_path = os.path.join(self.top, f"kv-{node.id}.log")
        program = [KV] if self.mutant is None else [MUTANT_SERVER, self.mutant, KV]
        argv = [sys.executable, *program, node.directory, str(node.id),
                "--address", f"{node.host}:{node.raft_port}",
                "--http", f"{node.host}:{node.http_port}", "--cluster", self.raft,
                "--http-cluster", self.http,
                "--snapshot-threshold", str(self.snapshot_threshold)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        node.paused = False
        with open(node.log_path, "ab") as log:
            if self.lab is None:
                node.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                env=env)
            else:
                node.process = self.lab.popen(node.id, argv, stdout=log,
                                              stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: node.status() is not None or not node.alive(), 20,
                 f"kv server {node.id} to answer HTTP")
        assert node.alive(), f"kv server {node.id} exited:\n{node.log()}"

    def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)

    def kill(self, node: KvNode) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)

    def pause(self, node: KvNode) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)
        node.paused = True

    def resume(self, node: KvNode) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGCONT)
        node.paused = False

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.alive():
                assert node.process is not None
                node.process.send_signal(signal.SIGCONT)
                node.process.send_signal(signal.SIGKILL)
        for node in self.nodes:
            if node.process is not None:
                node.process.wait(timeout=10)

    def leader(self, timeout: float = 20.0) -> KvNode:
        """The one live server that says it leads, and that the others follow.
        Fails at once (not at the timeout) when a server has said UNAVAILABLE
        for 3 s: it stopped on a fatal error and will not come back by itself."""
        found: list[KvNode] = []
        unavailable_since: dict[int, float] = {}

        def one() -> bool:
            s = {n.id: n.status() for n in self.nodes if n.alive()}
            now = time.monotonic()
            for i, x in s.items():
                if x and x["state"] == "UNAVAILABLE":
                    if now - unavailable_since.setdefault(i, now) > 3.0:
                        raise AssertionError(f"server {i} is UNAVAILABLE: {s}")
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
        return [n for n in self.nodes if n.alive() and n is not leader]

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
