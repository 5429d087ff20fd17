"""Run the example key-value service as a 3-server cluster on loopback.

    python example/kv_cluster.py [--servers N] [--dir DIR] [--duration S] [--demo]

Starts N (default 3) example/kv.py processes: Raft on 127.0.0.1:9001..,
HTTP on 127.0.0.1:8001.. (--raft-port-base, --http-port-base move them),
each with its data in DIR/ID (default: a new temporary directory).  It
prints one curl line per request kind, then a status line per second
(role, term, commit index and keys of each server) until Ctrl-C or
--duration seconds; then it stops the servers it started (SIGTERM, by PID).
--demo instead runs a put, get, cas and delete through each server, prints
every answer and exits 0 if all were as expected.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
START_TIMEOUT_S = 30.0


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
    try:
        conn.request(method, path, None if body is None else json.dumps(body))
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def status(port: int) -> dict[str, Any] | None:
    try:
        code, body = request(port, "GET", "/status")
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return body if code == 200 else None


def start(args: argparse.Namespace, log: Any) -> list[subprocess.Popen[bytes]]:
    ids = range(1, args.servers + 1)
    raft = ",".join(f"{i}=127.0.0.1:{args.raft_port_base + i}" for i in ids)
    http_peers = ",".join(f"{i}=127.0.0.1:{args.http_port_base + i}" for i in ids)
    return [subprocess.Popen(
        [sys.executable, os.path.join(HERE, "kv.py"), os.path.join(args.dir, str(i)), str(i),
         "--address", f"127.0.0.1:{args.raft_port_base + i}",
         "--http", f"127.0.0.1:{args.http_port_base + i}",
         "--cluster", raft, "--http-cluster", http_peers], stdout=log, stderr=log)
        for i in ids]


def wait_for_leader(args: argparse.Namespace, procs: list[subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        s = [status(args.http_port_base + i) for i in range(1, args.servers + 1)]
        if all(s) and sum(x["state"] == "LEADER" for x in s if x) == 1:
            return True
        time.sleep(0.2)
    return False


def status_line(args: argparse.Namespace, elapsed: float) -> str:
    parts = []
    for i in range(1, args.servers + 1):
        s = status(args.http_port_base + i)
        parts.append(f"{i}: down" if s is None else
                     f"{i}:{s['state'][0]} t{s['term']} c{s['commit']} keys {s['keys']}")
    return f"{elapsed:5.1f}s  " + "  ".join(parts)


def demo(args: argparse.Namespace) -> bool:
    """A put, read-back, cas and delete through each server; True if all as expected."""
    ok = True
    for i in range(1, args.servers + 1):
        port, key = args.http_port_base + i, f"/kv/demo{i}"
        steps = [("PUT", key, {"value": "a"}, 200), ("GET", key, None, 200),
                 ("POST", key + "/cas", {"expect": "a", "value": "b"}, 200),
                 ("POST", key + "/cas", {"expect": "a", "value": "c"}, 409),
                 ("GET", key + "?stale=1", None, None), ("DELETE", key, None, 200),
                 ("GET", key, None, 404)]
        for method, path, body, expect in steps:
            code, answer = request(port, method, path, body)
            good = expect is None or code == expect
            ok &= good
            print(f"server {i}: {method} {path} {json.dumps(body) if body else ''}-> "
                  f"{code} {json.dumps(answer)}{'' if good else '  UNEXPECTED'}")
    return ok


def run(args: argparse.Namespace) -> int:
    os.makedirs(args.dir, exist_ok=True)
    print(f"data in {args.dir}; server output in {args.dir}/servers.log", flush=True)
    with open(os.path.join(args.dir, "servers.log"), "ab") as log:
        procs = start(args, log)
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        if not wait_for_leader(args, procs):
            print("the servers did not elect a leader; see servers.log", file=sys.stderr)
            return 1
        if args.demo:
            return 0 if demo(args) else 1
        p = args.http_port_base + 1
        print(f"try:  curl -X PUT 127.0.0.1:{p}/kv/hello -d '{{\"value\": \"world\"}}'\n"
              f"      curl 127.0.0.1:{p + 1}/kv/hello       (any server; ?stale=1: local)\n"
              f"      curl -X POST 127.0.0.1:{p}/kv/hello/cas "
              f"-d '{{\"expect\": \"world\", \"value\": \"raft\"}}'\n"
              f"      curl -X DELETE 127.0.0.1:{p}/kv/hello;  curl 127.0.0.1:{p}/status",
              flush=True)
        t0 = time.monotonic()
        while not stop["now"] and (args.duration is None
                                   or time.monotonic() - t0 < args.duration):
            print(status_line(args, time.monotonic() - t0), flush=True)
            time.sleep(1.0)
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the example key-value service, 3 servers")
    parser.add_argument("--servers", type=int, default=3, help="servers (3)")
    parser.add_argument("--dir", default=None, help="top directory (default: a new temp dir)")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: ^C)")
    parser.add_argument("--demo", action="store_true", help="run a few requests and exit")
    parser.add_argument("--raft-port-base", type=int, default=9000)
    parser.add_argument("--http-port-base", type=int, default=8000)
    args = parser.parse_args(argv)
    if not 1 <= args.servers <= 9:
        parser.error("servers must be 1..9")
    args.dir = args.dir or tempfile.mkdtemp(prefix="raftpy-kv-")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
