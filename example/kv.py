"""An example replicated key-value service on raftpy, with an HTTP JSON API.

    python example/kv.py DIR ID [--servers N] [--http HOST:PORT] [options]

It takes example/server.py's options (Raft on 127.0.0.1:900ID, --address,
--cluster, --join, --snapshot-threshold/--snapshot-trailing, --admin for
``raftpy add|assign|remove|transfer``) and serves HTTP
on 127.0.0.1:800ID (--http).  Each server must know where the others serve
HTTP, to forward to the leader: by default 127.0.0.1:800I for I in 1..N, or
--http-cluster "1=HOST:PORT,2=...".  Needs aiohttp (pip install raftpy[kv]).

    GET    /kv/KEY            -> 200 {"key", "value"} | 404 {"key", "value": null}
    GET    /kv/KEY?stale=1    -> the same from this server's state, no round trip
    PUT    /kv/KEY            {"value": V}              -> 200 {"ok": true}
    DELETE /kv/KEY            -> 200 {"deleted": true|false}
    POST   /kv/KEY/cas        {"expect": E, "value": V} -> 200 {"ok": true}
                                 | 409 {"ok": false, "value": what the key holds}
    GET    /status            -> {"id", "state", "leader", "leader_http", "term",
                                  "commit", "applied", "keys"}

Keys are 1..1024 bytes of UTF-8 (one path segment); values are JSON strings
(E and V may be null: "absent", so cas with expect null creates a key once).

Rules it keeps:

* Requests to a follower are forwarded to the leader (not redirected: a
  client may talk to any server and gets the leader's answer).  A forwarded
  request carries X-Raftpy-Forwarded; a server that gets one and does not
  lead answers 503 instead of forwarding again, so no request loops while
  leadership moves.
* Reads are linearizable by default: ``_linearizable_read`` is
  ``Server.read`` (ReadIndex: the leader confirms it still leads with one
  heartbeat round, shared by the reads that arrive together, and reads once
  it has applied everything committed before; no log entry).  ``?stale=1``
  reads this server's state as it is: fast, maybe old.
* Errors say whether the write may have happened: a 503 or 504 body holds
  ``"unknown": true`` when it was submitted and its fate is not known (the
  leader lost its leadership, a timeout, a forward cut off), false when it
  surely was not applied (no leader known, not the leader).  400 for bad
  input, which is refused before anything is replicated.
* A command is one JSON object padded with spaces to a multiple of 8 bytes
  (libraft's entries are whole words).  The state machine is deterministic
  and snapshots are the sorted JSON of the whole dictionary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

try:
    from aiohttp import web
except ImportError:             # said plainly at start, not as a traceback
    web = None  # type: ignore[assignment]

from server import host_port, make_parser, parse_members, resolve, run_loop

import raftpy
from raftpy.admin import serve_admin

HTTP_PORT = 8000
KEY_MAX_BYTES = 1024
BODY_MAX_BYTES = 1 << 20
REQUEST_TIMEOUT_S = 10.0      # a write not committed by then is answered "unknown"
FORWARDED = "X-Raftpy-Forwarded"


def http_address(server_id: int) -> str:
    return f"127.0.0.1:{HTTP_PORT + server_id}"


class Store(raftpy.StateMachine):
    """The replicated state: a dictionary of strings."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def apply(self, command: bytes) -> dict[str, Any]:
        try:
            c = json.loads(command)
            op, key = c["op"], c["key"]
        except (ValueError, KeyError, TypeError) as err:
            raise raftpy.MalformedError(f"bad command: {err!r}") from err
        if op == "put":
            self.data[key] = c["value"]
            return {"ok": True}
        if op == "delete":
            return {"deleted": self.data.pop(key, None) is not None}
        if op == "cas":
            current = self.data.get(key)
            if current != c["expect"]:
                return {"ok": False, "value": current}
            if c["value"] is None:
                self.data.pop(key, None)
            else:
                self.data[key] = c["value"]
            return {"ok": True}
        raise raftpy.MalformedError(f"bad command: unknown op {op!r}")

    def snapshot(self) -> bytes:
        return json.dumps(self.data, sort_keys=True).encode()

    def restore(self, snapshot: bytes) -> None:
        data = json.loads(snapshot)
        if not isinstance(data, dict):
            raise raftpy.MalformedError("a snapshot is a JSON object")
        self.data = data


def encode(command: dict[str, Any]) -> bytes:
    raw = json.dumps(command, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)


async def _linearizable_read(server: raftpy.Server, read: Callable[[], Any]) -> Any:
    """Run read on the state once it reflects every write acknowledged before now
    (raises NotLeaderError on a follower): Server.read, ReadIndex, no log entry."""
    return await server.read(lambda _machine: read())


class BadRequest(Exception):
    pass


def check_key(key: str) -> str:
    if not 0 < len(key.encode()) <= KEY_MAX_BYTES:
        raise BadRequest(f"a key is 1..{KEY_MAX_BYTES} bytes")
    return key


async def json_body(request: web.Request, *fields: str) -> dict[str, Any]:
    """The request's JSON object; each field present and a string or null."""
    if request.content_length is not None and request.content_length > BODY_MAX_BYTES:
        raise BadRequest(f"the body is over {BODY_MAX_BYTES} bytes")
    try:
        body = json.loads(await request.read())
    except ValueError as err:
        raise BadRequest(f"the body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise BadRequest("the body is a JSON object")
    for name in fields:
        if name not in body:
            raise BadRequest(f"the body needs {name!r}")
        if body[name] is not None and not isinstance(body[name], str):
            raise BadRequest(f"{name!r} is a string or null")
    return body


def reply(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


class Service:
    """The HTTP front of one server."""

    def __init__(self, server: raftpy.Server, store: Store, peers: dict[int, str]) -> None:
        self.server, self.store, self.peers = server, store, peers

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/kv/{key}", self.get), web.put("/kv/{key}", self.put),
                web.delete("/kv/{key}", self.delete), web.post("/kv/{key}/cas", self.cas),
                web.get("/status", self.status)]

    async def status(self, request: web.Request) -> web.Response:
        s = self.server
        leader = s.leader[0]
        return reply(200, {"id": s.id, "state": s.state.name, "leader": leader,
                           "leader_http": self.peers.get(leader), "term": s.term,
                           "commit": s.commit_index, "applied": s.last_applied,
                           "keys": len(self.store.data)})

    async def get(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if request.query.get("stale") in ("1", "true"):
            value = self.store.data.get(key)
        else:
            value = await self.lead(request, lambda: _linearizable_read(
                self.server, lambda: self.store.data.get(key)), read=True)
            if isinstance(value, web.Response):
                return value
        return reply(200 if value is not None else 404, {"key": key, "value": value})

    async def put(self, request: web.Request) -> web.Response:
        body = await json_body(request, "value")
        if body["value"] is None:
            raise BadRequest("'value' is a string (DELETE removes a key)")
        return await self.write(request, {"op": "put", "value": body["value"]}, 200)

    async def delete(self, request: web.Request) -> web.Response:
        return await self.write(request, {"op": "delete"}, 200)

    async def cas(self, request: web.Request) -> web.Response:
        body = await json_body(request, "expect", "value")
        command = {"op": "cas", "expect": body["expect"], "value": body["value"]}
        return await self.write(request, command, 409)

    async def write(self, request: web.Request, command: dict[str, Any],
                    failed_status: int) -> web.Response:
        command["key"] = check_key(request.match_info["key"])
        payload = encode(command)
        result = await self.lead(request, lambda: self.server.apply(payload), read=False)
        if isinstance(result, web.Response):
            return result
        ok = result.get("ok", True)
        return reply(200 if ok else failed_status, result)

    async def lead(self, request: web.Request, action: Callable[[], Any],
                   read: bool) -> Any:
        """Run action here if this server leads, else forward the request; the
        action's result, or the Response to send."""
        if self.server.state is raftpy.State.LEADER:
            try:
                task = asyncio.ensure_future(action())
                # Shielded: a timeout answers the client, the write goes on (and
                # its error, if any, is collected here rather than logged as lost).
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
                return await asyncio.wait_for(asyncio.shield(task), REQUEST_TIMEOUT_S)
            except asyncio.TimeoutError:
                return reply(504, {"error": "timeout", "unknown": not read})
            except raftpy.NotLeaderError:
                pass                            # deposed meanwhile: forward below
            except (raftpy.BusyError, raftpy.ShutdownError) as err:
                return reply(503, {"error": type(err).__name__, "unknown": False})
            except raftpy.RaftError as err:
                return reply(503, {"error": type(err).__name__, "message": str(err),
                                   "unknown": not read})
        return await self.forward(request, read)

    async def forward(self, request: web.Request, read: bool) -> web.Response:
        leader = self.server.leader[0]
        target = self.peers.get(leader)
        if request.headers.get(FORWARDED) or not target or leader == self.server.id:
            return reply(503, {"error": "NotLeaderError", "leader": leader,
                               "leader_http": target, "unknown": False})
        body = await request.read()
        try:
            status, answer = await asyncio.wait_for(
                forward_http(target, request.method, str(request.rel_url), body,
                             self.server.id), REQUEST_TIMEOUT_S + 2)
        except NotSent as err:
            return reply(503, {"error": "forward failed", "message": str(err),
                               "leader": leader, "unknown": False})
        except (OSError, asyncio.TimeoutError, ValueError) as err:
            return reply(503, {"error": "forward failed", "message": repr(err),
                               "leader": leader, "unknown": not read})
        return reply(status, answer)


class NotSent(Exception):
    """The leader could not be reached: nothing of the request left this server."""


async def forward_http(target: str, method: str, path: str, body: bytes,
                       own_id: int) -> tuple[int, dict[str, Any]]:
    """One HTTP/1.1 request on a new connection, closed after the answer.

    Written out here rather than with aiohttp's client because that client
    resends a PUT or DELETE on a new connection when the first one drops: a
    write the killed leader had committed then failed with a connection
    refused, which reads as "never sent" (found by tests/faults/)."""
    host, port = host_port(target)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
    except (OSError, asyncio.TimeoutError) as err:
        raise NotSent(f"{target}: {err!r}") from err
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {target}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     f"{FORWARDED}: {own_id}\r\nConnection: close\r\n\r\n".encode() + body)
        status_line = await reader.readline()
        while await reader.readline() not in (b"\r\n", b"\n", b""):
            pass                                # headers: the body is JSON to the end
        answer = json.loads(await reader.read())
        status = int(status_line.split()[1])
        if not isinstance(answer, dict):
            raise ValueError(f"{target} answered {answer!r}")
        return status, answer
    except IndexError as err:
        raise ValueError(f"{target}: no status line") from err
    finally:
        writer.close()


async def bad_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except BadRequest as err:
        return reply(400, {"error": "bad request", "message": str(err)})


async def serve(args: Any) -> None:
    store = Store()
    config = raftpy.Config(snapshot_threshold=args.snapshot_threshold,
                           snapshot_trailing=args.snapshot_trailing, pre_vote=True)
    server = raftpy.Server(args.id, args.address, args.dir, store, config=config)
    if not args.join:
        with contextlib.suppress(raftpy.CantBootstrapError):
            await server.bootstrap(raftpy.Configuration.of(*args.cluster))
    print(f"{args.id}: starting, HTTP on {args.http}", flush=True)
    await server.start()
    service = Service(server, store, dict(args.http_cluster))
    app = web.Application(middlewares=[web.middleware(bad_requests)],
                          client_max_size=BODY_MAX_BYTES)
    app.add_routes(service.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, *host_port(args.http)).start()
    admin = await serve_admin(server, args.admin) if args.admin else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print(f"{args.id}: stopping", flush=True)
    await runner.cleanup()
    if admin is not None:
        await admin.close()
    if server.state == raftpy.State.LEADER:
        with contextlib.suppress(raftpy.RaftError, asyncio.TimeoutError):
            await asyncio.wait_for(server.transfer(0), 2.0)
    await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("a raftpy example key-value service over HTTP")
    parser.add_argument("--http", help="its HTTP address (default 127.0.0.1:800ID)")
    parser.add_argument("--http-cluster", help='every server\'s HTTP address, "1=HOST:PORT,..."')
    args = parser.parse_args(argv)
    resolve(parser, args)
    if web is None:
        print("example/kv.py needs aiohttp: pip install 'raftpy[kv]'", file=sys.stderr)
        return 2
    args.http = args.http or http_address(args.id)
    try:
        args.http_cluster = (parse_members(args.http_cluster) if args.http_cluster else
                             [(i, http_address(i)) for i, _ in args.cluster])
    except ValueError:
        parser.error('--http-cluster is "ID=HOST:PORT,ID=HOST:PORT,..."')
    try:
        run_loop(serve(args))
    except raftpy.RaftError as err:
        print(f"{args.id}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
