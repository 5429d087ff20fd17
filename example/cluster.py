"""Run a 3-server raftpy cluster as real processes, kill servers, check nothing was lost.

    python example/cluster.py [--dir DIR] [--duration S] [--servers N] [--seed SEED]

Starts N (default 3) example/server.py processes on 127.0.0.1:9001.., runs
a workload against whichever is leader (batches of increments of the
replicated counter, through the servers' control ports), and every few
seconds SIGKILLs a random server and restarts it on its data directory.  A
status line shows each server's role, term, commit and applied index, the
writes acknowledged and the kills so far.  After --duration seconds the
kills stop, every server is brought up, and once all have applied the same
log the run checks:

- every server holds the same counter;
- no acknowledged write was lost: acknowledged <= counter <= acknowledged +
  writes whose outcome is unknown (in flight to a server that was killed);
- every acknowledged write got its own counter value (two acknowledged writes
  at one position of the log would mean one of them was lost).

The exit status is 0 if all hold, 1 if not.  Only the processes this script
started are signalled, by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
CONTROL_PORT = 9100
BATCH = 16                     # increments per apply request
REQUEST_TIMEOUT_S = 3.0
SETTLE_TIMEOUT_S = 60.0


@dataclass
class Node:
    id: int
    directory: str
    process: subprocess.Popen[bytes] | None = None
    status: dict[str, Any] = field(default_factory=dict)

    def start(self, servers: int, log: Any) -> None:
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "server.py"), self.directory, str(self.id),
             "--servers", str(servers)], stdout=log, stderr=log)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@dataclass
class Ledger:
    acknowledged: int = 0          # increments the leader confirmed applied
    unknown: int = 0               # increments sent whose outcome we never learned
    values: set[int] = field(default_factory=set)    # the counter after each acked one
    duplicates: int = 0
    kills: int = 0


async def request(node_id: int, message: dict[str, Any]) -> dict[str, Any]:
    """One JSON request to a server's control port (raises OSError/TimeoutError)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", CONTROL_PORT + node_id), REQUEST_TIMEOUT_S)
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)
        if not line:
            raise ConnectionError("closed")
        reply: dict[str, Any] = json.loads(line)
        return reply
    finally:
        writer.close()


async def poll(nodes: list[Node], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for node in nodes:
            try:
                node.status = await request(node.id, {"op": "status"}) if node.alive() else {}
            except (OSError, asyncio.TimeoutError, ValueError):
                node.status = {}
        await asyncio.sleep(0.25)


async def workload(nodes: list[Node], ledger: Ledger, stop: asyncio.Event) -> None:
    target = 1
    while not stop.is_set():
        leaders = [n.id for n in nodes if n.status.get("state") == "LEADER"]
        target = leaders[0] if leaders else target
        try:
            reply = await request(target, {"op": "apply", "n": BATCH})
        except (OSError, asyncio.TimeoutError, ValueError):
            # Sent, maybe applied, and we will never know.
            ledger.unknown += BATCH
            await asyncio.sleep(0.1)
            continue
        if reply.get("ok"):
            ledger.acknowledged += len(reply["values"])
            for v in reply["values"]:
                if v in ledger.values:
                    ledger.duplicates += 1
                ledger.values.add(v)
        else:
            if reply.get("error") not in ("NotLeaderError",):
                # Failed after submission (leadership lost, ...): maybe applied.
                ledger.unknown += BATCH
            target = reply.get("leader") or random.choice(nodes).id
            await asyncio.sleep(0.05)


async def chaos(nodes: list[Node], ledger: Ledger, servers: int, log: Any,
                rng: random.Random, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with_timeout = rng.uniform(2.0, 5.0)
        try:
            await asyncio.wait_for(stop.wait(), with_timeout)
            return
        except asyncio.TimeoutError:
            pass
        victim = rng.choice(nodes)
        victim.kill()
        ledger.kills += 1
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        victim.start(servers, log)


def status_line(nodes: list[Node], ledger: Ledger, elapsed: float) -> str:
    parts = []
    for n in nodes:
        s = n.status
        if not s:
            parts.append(f"{n.id}: down")
        else:
            role = {"LEADER": "L", "FOLLOWER": "F", "CANDIDATE": "C"}.get(s["state"], "?")
            parts.append(f"{n.id}:{role} t{s['term']} c{s['commit']} a{s['applied']}")
    return (f"{elapsed:5.1f}s  " + "  ".join(parts) +
            f"  | acked {ledger.acknowledged}  kills {ledger.kills}")


async def settle(nodes: list[Node]) -> bool:
    """Wait until every server is up and all have applied the same, full log."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        s = [n.status for n in nodes]
        if all(s) and any(x["state"] == "LEADER" for x in s):
            commits = {x["commit"] for x in s}
            if len(commits) == 1 and all(x["applied"] == x["commit"] for x in s):
                if len({x["counter"] for x in s}) == 1:
                    return True
        await asyncio.sleep(0.25)
    return False


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    print(f"seed {args.seed}; data in {args.dir}; server output in {args.dir}/servers.log")
    os.makedirs(args.dir, exist_ok=True)
    log = open(os.path.join(args.dir, "servers.log"), "ab")
    nodes = [Node(i, os.path.join(args.dir, str(i))) for i in range(1, args.servers + 1)]
    for node in nodes:
        node.start(args.servers, log)
    ledger = Ledger()
    stop_all, stop_load = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.ensure_future(poll(nodes, stop_all)),
             asyncio.ensure_future(workload(nodes, ledger, stop_load)),
             asyncio.ensure_future(chaos(nodes, ledger, args.servers, log, rng, stop_load))]
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < args.duration:
            await asyncio.sleep(0.5)
            print("\r" + status_line(nodes, ledger, time.monotonic() - t0).ljust(110),
                  end="", flush=True)
        stop_load.set()
        await asyncio.gather(*tasks[1:])
        for node in nodes:
            if not node.alive():
                node.start(args.servers, log)
        settled = await settle(nodes)
        print("\r" + status_line(nodes, ledger, time.monotonic() - t0).ljust(110))
    finally:
        stop_all.set()
        await asyncio.gather(tasks[0], return_exceptions=True)
        for node in nodes:
            if node.alive():
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        for node in nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.kill()
        log.close()
    return verdict(nodes, ledger, settled)


def verdict(nodes: list[Node], ledger: Ledger, settled: bool) -> int:
    counters = {n.id: n.status.get("counter") for n in nodes}
    counter = max((c for c in counters.values() if c is not None), default=0)
    checks = [
        ("all servers up and applied the same log", settled),
        (f"same counter everywhere {counters}", len(set(counters.values())) == 1),
        (f"no acknowledged write lost: {ledger.acknowledged} acked <= counter {counter} "
         f"<= acked + {ledger.unknown} unknown",
         ledger.acknowledged <= counter <= ledger.acknowledged + ledger.unknown),
        (f"each acknowledged write at its own position ({ledger.duplicates} shared)",
         ledger.duplicates == 0),
    ]
    print(f"{ledger.acknowledged} writes acknowledged, {ledger.unknown} unknown, "
          f"{ledger.kills} kills")
    for text, ok in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    return 0 if all(ok for _, ok in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a raftpy cluster under SIGKILL")
    parser.add_argument("--dir", default=None, help="top directory (default: a new temp dir)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (30)")
    parser.add_argument("--servers", type=int, default=3, help="servers (3)")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    args = parser.parse_args(argv)
    if args.dir is None:
        args.dir = tempfile.mkdtemp(prefix="raftpy-cluster-")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    if not 1 <= args.servers <= 9:
        parser.error("servers must be 1..9")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
