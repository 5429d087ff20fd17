"""Memory benchmark: do three servers' RSS stay bounded over a long run with compaction?

    python benchmarks/memory.py [--entries 10000000] [--policy libraft|off]
                                [--clients 4] [--batch 1000] [--samples 20]
                                [--dir DIR] [--json] [--quick]

Three example/server.py processes on loopback, fresh data directories under
--dir (default a temporary directory on this disk), snapshot policy
"libraft" (threshold 1024, trailing 2048: libraft's defaults) or "off".
--clients threads each apply --batch increments per request (one
apply_many in the leader) through the control port of whoever leads, until
--entries are committed.  Every --entries/--samples entries the resident set
(VmRSS from /proc) of each server is sampled; at the end each server's peak
(VmHWM) is read.  Printed: the samples, each server's peak, and the growth
from the first sample after the warm-up (the first tenth of the run) to the
last, per server.  With compaction the growth should stay near zero; with
--policy off the log is kept in memory and it grows with the run (the
comparison tells the bound from the noise).  --quick: 100,000 entries.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from _common import Report, free_ports, parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "example", "server.py")
POLICIES = {"libraft": (1024, 2048), "off": (2**62, 0)}


def _request(port: int, message: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(json.dumps(message).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("control connection closed")
            buf += chunk
    reply: dict[str, Any] = json.loads(buf)
    return reply


def _proc_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


class Servers:
    """Three example servers; killed by PID (only these) on close."""

    def __init__(self, top: str, policy: str) -> None:
        ports = free_ports(6)
        self.raft, self.control = ports[:3], ports[3:]
        cluster = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(self.raft))
        threshold, trailing = POLICIES[policy]
        self.procs: list[subprocess.Popen[bytes]] = []
        for i in range(3):
            log = open(os.path.join(top, f"server-{i + 1}.log"), "wb")
            self.procs.append(subprocess.Popen(
                [sys.executable, SERVER, os.path.join(top, str(i + 1)), str(i + 1),
                 "--address", f"127.0.0.1:{self.raft[i]}",
                 "--control", f"127.0.0.1:{self.control[i]}", "--cluster", cluster,
                 "--snapshot-threshold", str(threshold),
                 "--snapshot-trailing", str(trailing)],
                stdout=log, stderr=subprocess.STDOUT))
            log.close()

    def leader_port(self, deadline: float) -> int:
        while time.monotonic() < deadline:
            for port in self.control:
                try:
                    if _request(port, {"op": "status"}, 1.0)["state"] == "LEADER":
                        return port
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("no leader")

    def rss_kib(self, key: str = "VmRSS") -> list[int]:
        return [_proc_kib(p.pid, key) for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait(timeout=10)


def run(entries: int, policy: str, clients: int, batch: int, samples: int,
        top: str, warm_fraction: float = 0.1) -> dict[str, Any]:
    servers = Servers(top, policy)
    try:
        deadline = time.monotonic() + 3600
        port = [servers.leader_port(time.monotonic() + 30)]
        done = [0]
        lock = threading.Lock()
        errors: list[str] = []
        retries = [0]

        def client() -> None:
            while not errors:
                with lock:
                    if done[0] >= entries:
                        return
                    n = min(batch, entries - done[0])
                    done[0] += n      # claimed; given back if the request fails
                    at = port[0]
                try:
                    reply = _request(at, {"op": "apply", "n": n})
                except OSError as exc:
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                if not reply.get("ok"):
                    # Leadership moved (a loaded machine misses heartbeats):
                    # follow it.  A failed batch may still have been applied;
                    # the count is of acknowledged entries.
                    with lock:
                        done[0] -= n
                        retries[0] += 1
                        if retries[0] > 100:
                            errors.append(str(reply))
                            return
                    try:
                        found = servers.leader_port(time.monotonic() + 30)
                    except RuntimeError as exc:
                        errors.append(f"{reply}, then {exc}")
                        return
                    with lock:
                        port[0] = found
                if time.monotonic() > deadline:
                    errors.append("deadline")
        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        rows: list[tuple[int, list[int]]] = []
        step = max(1, entries // samples)
        while any(t.is_alive() for t in threads):
            if not rows or done[0] >= rows[-1][0] + step:
                rows.append((done[0], servers.rss_kib()))
            time.sleep(0.05)
        if errors:
            raise RuntimeError(f"a request failed: {errors[0]}")
        elapsed = time.monotonic() - started
        rows.append((entries, servers.rss_kib()))
        peaks = servers.rss_kib("VmHWM")
    finally:
        servers.close()
    warm = next((r for r in rows if r[0] >= entries * warm_fraction), rows[0])
    growth = [last - first for first, last in zip(warm[1], rows[-1][1], strict=True)]
    return {"entries": entries, "policy": policy, "seconds": elapsed, "samples": rows,
            "peak_kib": peaks, "growth_kib": growth, "warm_entries": warm[0],
            "retries": retries[0]}


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=10_000_000)
    p.add_argument("--policy", choices=sorted(POLICIES), default="libraft")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--dir", help="parent of the data directories (default: a temporary one)")
    args = p.parse_args()
    if args.quick:
        args.entries = min(args.entries, 100_000)
    top = tempfile.mkdtemp(prefix="raftpy-memory-", dir=args.dir)
    try:
        result = run(args.entries, args.policy, args.clients, args.batch, args.samples, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    table = Report(f"memory: {result['entries']:,} entries, snapshots {args.policy} "
                  f"({result['seconds']:.0f} s)", args.json)
    if not args.json:
        for done, rss in result["samples"]:
            print(f"  after {done:>11,} entries: RSS " + ", ".join(
                f"{kib / 1024:7.1f}" for kib in rss) + " MiB")
    for i in range(3):
        table.add(f"server {i + 1} peak RSS", result["peak_kib"][i] / 1024, "MiB")
        table.add(f"server {i + 1} RSS growth after {result['warm_entries']:,}",
                  max(result["growth_kib"][i], 1) / 1024, "MiB",
                  raw_growth_kib=result["growth_kib"][i])
    table.add("entries/s", result["entries"] / result["seconds"], "1/s")
    table.print_table()


if __name__ == "__main__":
    main()
