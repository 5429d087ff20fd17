"""An example raftpy server: a replicated counter, like libraft's example/server.

    python example/server.py DIR ID [--servers N] [options]

Server ID (1..N, default N = 3) keeps its data in DIR and listens for Raft
on 127.0.0.1:900ID; the cluster is bootstrapped with the N servers on
127.0.0.1:9001.. (already bootstrapped: fine, as in libraft's example).
Options for other layouts (the cluster tests use them): --address,
--control, --cluster "1=HOST:PORT,2=...", --join (start empty and wait to
be added: no bootstrap), --snapshot-threshold/--snapshot-trailing.  The
state machine is a 64-bit counter: a command is 8 bytes, a little-endian
unsigned increment, and its result is the counter after it.  Snapshots are
taken every 64 entries, keeping 16 (libraft's example's settings).

A control port on 127.0.0.1:910ID takes one JSON object per line, for
example/cluster.py and for curious people (``nc 127.0.0.1 9101``):

    {"op": "status"}            -> {"id", "state", "leader", "term", "commit",
                                    "applied", "counter"}
    {"op": "apply", "n": K}     -> {"ok": true, "values": [...]}: K increments of
                                   1 submitted in one call, the counter after each;
                                   or {"ok": false, "error": NAME, "leader": ID}
    {"op": "barrier"}, {"op": "transfer", "id": ID}, {"op": "add", "id": ID,
    "address": A}, {"op": "assign", "id": ID, "role": "voter"|"standby"|"spare"},
    {"op": "remove", "id": ID}  -> {"ok": true} or an error as above

--metrics PORT (opt-in; needs ``pip install 'raftpy[metrics]'``) serves the
server's metrics for Prometheus on http://127.0.0.1:PORT/metrics
(raftpy.metrics_prometheus: raftpy_term, raftpy_commit_index,
raftpy_log_write_latency_seconds, ...; --metrics-address to listen elsewhere).

--admin ENDPOINT (opt-in) starts raftpy's admin endpoint there (a Unix socket
path, or host:port) for ``raftpy status|add|assign|remove|transfer|snapshot
ENDPOINT``.

SIGINT or SIGTERM: a leader first hands leadership to another voter, then the
server closes.  Log lines read "ID: message", as libraft's do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import struct
import sys
from typing import Any

import raftpy
from raftpy.admin import serve_admin

RAFT_PORT, CONTROL_PORT = 9000, 9100


def raft_address(server_id: int) -> str:
    return f"127.0.0.1:{RAFT_PORT + server_id}"


def control_address(server_id: int) -> tuple[str, int]:
    return "127.0.0.1", CONTROL_PORT + server_id


class Counter(raftpy.StateMachine):
    """The state: one unsigned 64-bit counter."""

    def __init__(self) -> None:
        self.value = 0

    def apply(self, command: bytes) -> int:
        if len(command) != 8:
            raise raftpy.MalformedError(f"a command is 8 bytes, not {len(command)}")
        self.value = (self.value + struct.unpack("<Q", command)[0]) & (2**64 - 1)
        return self.value

    def snapshot(self) -> bytes:
        return struct.pack("<Q", self.value)

    def restore(self, snapshot: bytes) -> None:
        if len(snapshot) != 8:
            raise raftpy.MalformedError(f"a snapshot is 8 bytes, not {len(snapshot)}")
        self.value = struct.unpack("<Q", snapshot)[0]


ONE = struct.pack("<Q", 1)


class Control:
    """The JSON-lines control port of one server."""

    def __init__(self, server: raftpy.Server, counter: Counter) -> None:
        self.server = server
        self.counter = counter

    def status(self) -> dict[str, Any]:
        s = self.server
        leader = s.leader
        return {"id": s.id, "state": s.state.name, "leader": leader[0] if leader else 0,
                "term": s.term, "commit": s.commit_index, "applied": s.last_applied,
                "counter": self.counter.value}

    async def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        n = int(request.get("n", 1))
        if not 0 < n <= 4096:
            return {"ok": False, "error": "InvalidError", "message": "n must be 1..4096"}
        return {"ok": True, "values": await self.server.apply_many([ONE] * n)}

    async def barrier(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.server.barrier()
        return {"ok": True}

    async def transfer(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.server.transfer(int(request.get("id", 0)))
        return {"ok": True}

    async def add(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.server.add(int(request["id"]), str(request["address"]))
        return {"ok": True}

    async def assign(self, request: dict[str, Any]) -> dict[str, Any]:
        role = raftpy.Role[str(request["role"]).upper()]
        await self.server.assign(int(request["id"]), role)
        return {"ok": True}

    async def remove(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.server.remove(int(request["id"]))
        return {"ok": True}

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return self.status()
        handler = {"apply": self.apply, "barrier": self.barrier, "transfer": self.transfer,
                   "add": self.add, "assign": self.assign, "remove": self.remove}.get(op)
        if handler is None:
            return {"ok": False, "error": f"unknown op {op!r}"}
        try:
            return await handler(request)
        except raftpy.NotLeaderError as err:
            return {"ok": False, "error": "NotLeaderError", "leader": err.leader_id}
        except raftpy.RaftError as err:
            return {"ok": False, "error": type(err).__name__, "message": str(err)}
        except (KeyError, ValueError, TypeError) as err:
            return {"ok": False, "error": "bad request", "message": repr(err)}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                except ValueError:
                    reply: dict[str, Any] = {"ok": False, "error": "bad request"}
                else:
                    reply = (await self.call(request) if isinstance(request, dict) else
                             {"ok": False, "error": "bad request"})
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def serve_metrics(server: raftpy.Server, args: argparse.Namespace) -> Any:
    """Prometheus' HTTP endpoint on its own thread; each scrape reads the
    server's metrics on the loop thread."""
    try:
        from raftpy.metrics_prometheus import from_loop
        from raftpy.metrics_prometheus import serve_metrics as serve
    except ImportError as err:
        raise SystemExit(f"{server.id}: --metrics: {err}") from None
    http = serve(args.metrics, from_loop(server, asyncio.get_running_loop()),
                 address=args.metrics_address)
    print(f"{server.id}: metrics on http://{args.metrics_address}:{args.metrics}/metrics",
          flush=True)
    return http


async def run(args: argparse.Namespace) -> None:
    server_id = args.id
    counter = Counter()
    config = raftpy.Config(snapshot_threshold=args.snapshot_threshold,
                           snapshot_trailing=args.snapshot_trailing, pre_vote=True)
    storage = None
    if args.segment_size_kib:
        from raftpy.io.disk import DiskStore
        storage = DiskStore(args.dir, segment_size_bytes=args.segment_size_kib * 1024)
    server = raftpy.Server(server_id, args.address, args.dir, counter, config=config,
                           storage=storage)
    if not args.join:
        with contextlib.suppress(raftpy.CantBootstrapError):
            await server.bootstrap(raftpy.Configuration.of(*args.cluster))
    print(f"{server_id}: starting", flush=True)
    await server.start()
    control = await asyncio.start_server(Control(server, counter).handle,
                                         *host_port(args.control))
    metrics_http = serve_metrics(server, args) if args.metrics is not None else None
    admin = await serve_admin(server, args.admin) if args.admin else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print(f"{server_id}: stopping", flush=True)
    control.close()
    if metrics_http is not None:
        metrics_http.shutdown()
    if admin is not None:
        await admin.close()
    if server.state == raftpy.State.LEADER:
        with contextlib.suppress(raftpy.RaftError, asyncio.TimeoutError):
            await asyncio.wait_for(server.transfer(0), 2.0)
    await server.close()


def make_parser(description: str) -> argparse.ArgumentParser:
    """The options every example server takes (example/kv.py adds its own)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("dir", help="its data directory (created if missing)")
    parser.add_argument("id", type=int, help="its id, 1..servers (port 900ID)")
    parser.add_argument("--servers", type=int, default=3, help="cluster size (default 3)")
    parser.add_argument("--address", help="its Raft address (default 127.0.0.1:900ID)")
    parser.add_argument("--control", help="its control address (default 127.0.0.1:910ID)")
    parser.add_argument("--cluster", help='the bootstrap configuration, "1=HOST:PORT,..."')
    parser.add_argument("--join", action="store_true", help="do not bootstrap; wait to be added")
    parser.add_argument("--snapshot-threshold", type=int, default=64)
    parser.add_argument("--snapshot-trailing", type=int, default=16)
    parser.add_argument("--segment-size-kib", type=int, default=0,
                        help="log segment size (default: DiskStore's, 8 MiB)")
    parser.add_argument("--metrics", type=int, metavar="PORT",
                        help="serve Prometheus metrics on this HTTP port (off by default)")
    parser.add_argument("--metrics-address", default="127.0.0.1",
                        help="address for --metrics (default 127.0.0.1)")
    parser.add_argument("--admin", metavar="ENDPOINT",
                        help="start the admin endpoint (a Unix socket path, or host:port)")
    return parser


def resolve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill in the defaults that depend on the id and check the layout."""
    if args.cluster is None and not 1 <= args.id <= args.servers <= 9:
        parser.error("need 1 <= id <= servers <= 9")
    args.address = args.address or raft_address(args.id)
    host, port = control_address(args.id)
    args.control = args.control or f"{host}:{port}"
    try:
        args.cluster = (parse_members(args.cluster) if args.cluster else
                        [(i, raft_address(i)) for i in range(1, args.servers + 1)])
    except ValueError:
        parser.error('--cluster is "ID=HOST:PORT,ID=HOST:PORT,..."')
    os.makedirs(args.dir, exist_ok=True)


def parse_members(text: str) -> list[tuple[int, str]]:
    """ "1=HOST:PORT,2=HOST:PORT" -> [(1, "HOST:PORT"), ...] (ValueError if not)."""
    members = [m.split("=", 1) for m in text.split(",")]
    if any(len(m) != 2 for m in members):
        raise ValueError(text)
    return [(int(i), a) for i, a in members]


def run_loop(main: Any) -> None:
    """Run the coroutine on uvloop where installed, else on asyncio."""
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(main)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("a raftpy example server (a counter)")
    args = parser.parse_args(argv)
    resolve(parser, args)
    try:
        run_loop(run(args))
    except raftpy.RaftError as err:
        print(f"{args.id}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
