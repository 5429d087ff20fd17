"""The admin endpoint: a running Server answers status and membership requests from
``raftpy status|add|assign|remove|transfer|snapshot ENDPOINT``.

May import: the standard library, raftpy.errors, raftpy.core (values).  It
drives a Server through its public methods only (duck-typed; this module does
not import raftpy.server).

What lives here:

- ``serve_admin(server, endpoint)``: the server side, opt-in: the embedding
  program starts it (and closes it) on the Server's loop.  ``endpoint`` is a
  filesystem path (a Unix socket, the default kind: created owner-only,
  0600, so only the server's user can change its cluster) or "host:port" for
  TCP (meant for 127.0.0.1: there is no authentication).
- ``request(endpoint, op, ...)``, ``status``, ``add``, ``assign``, ``remove``,
  ``transfer``, ``snapshot``: the client side, blocking, for the CLI and for
  scripts.  They return plain values or raise RaftError: NotLeaderError naming
  the leader (id and address) when the server is not the leader;
  NoConnectionError naming the endpoint when nothing answers there.

The protocol: one JSON object per line each way.  A request is {"op": NAME,
...arguments}; a reply is {"ok": true, "result": ...} or {"ok": false,
"code": libraft's error code, "error": class name, "message": text,
"leader_id", "leader_address"}.  Rules kept: a line longer than
LINE_MAX_BYTES, bad JSON or an unknown op gets an error reply (the first
closes the connection: the stream cannot be trusted), is logged with the
reason, and never raises into the loop; every client call has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from raftpy.core.configuration import Role
from raftpy.errors import (
    InvalidError,
    NoConnectionError,
    NotLeaderError,
    RaftError,
    error_for_code,
)

__all__ = ["serve_admin", "AdminEndpoint", "request", "status", "add", "assign", "remove",
           "transfer", "snapshot", "LINE_MAX_BYTES", "is_unix_endpoint"]

log = logging.getLogger(__name__)

LINE_MAX_BYTES = 64 * 1024
UNIX_PATH_MAX_BYTES = 107       # sun_path is 108 bytes with its NUL (Linux)
_LISTENING: set[AdminEndpoint] = set()
_OPS = ("status", "add", "assign", "remove", "transfer", "snapshot")


def is_unix_endpoint(endpoint: str) -> bool:
    """A path (has a '/' or no ':port') is a Unix socket; "host:port" is TCP."""
    host, sep, port = endpoint.rpartition(":")
    return "/" in endpoint or not (sep and host and port.isdigit())


def _tcp_address(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


# ------------------------------------------------------------------ server side

class AdminEndpoint:
    """A listening admin endpoint; ``await close()`` stops it (and unlinks its socket).

    It listens until closed even if the caller drops it (uvloop closes a
    listener that is garbage collected): _LISTENING holds it till then."""

    def __init__(self, listener: asyncio.Server, endpoint: str) -> None:
        self.listener = listener
        self.endpoint = endpoint
        _LISTENING.add(self)

    async def close(self) -> None:
        _LISTENING.discard(self)
        self.listener.close()
        await self.listener.wait_closed()
        if is_unix_endpoint(self.endpoint):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint)


async def serve_admin(server: Any, endpoint: str) -> AdminEndpoint:
    """Start answering admin requests for server (a raftpy.Server) at endpoint."""
    handler = _Handler(server).connection
    if is_unix_endpoint(endpoint):
        if len(os.fsencode(endpoint)) > UNIX_PATH_MAX_BYTES:
            # uvloop would bind a truncated path that no client finds
            raise InvalidError(f"admin endpoint {endpoint}: a Unix socket path holds at "
                               f"most {UNIX_PATH_MAX_BYTES} bytes")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(endpoint)            # a stale socket from an earlier run
        old_mask = os.umask(0o177)         # created 0600: owner only
        try:
            listener = await asyncio.start_unix_server(handler, endpoint,
                                                       limit=LINE_MAX_BYTES)
        finally:
            os.umask(old_mask)
    else:
        host, port = _tcp_address(endpoint)
        listener = await asyncio.start_server(handler, host, port, limit=LINE_MAX_BYTES)
    return AdminEndpoint(listener, endpoint)


class _Handler:
    """Answers one server's admin connections."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.ops: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "status": self.status, "add": self.add, "assign": self.assign,
            "remove": self.remove, "transfer": self.transfer, "snapshot": self.snapshot}

    async def connection(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    log.warning("admin: request longer than %d bytes; closing", LINE_MAX_BYTES)
                    writer.write(_reply_error(InvalidError(
                        f"request longer than {LINE_MAX_BYTES} bytes")))
                    break
                if not line:
                    break
                writer.write(await self.answer(line))
                await writer.drain()
        except ConnectionError as exc:
            log.info("admin: connection lost: %s", exc)
        finally:
            writer.close()

    async def answer(self, line: bytes) -> bytes:
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or req.get("op") not in self.ops:
                raise InvalidError(f"unknown request; ops are {', '.join(_OPS)}")
            result = await self.ops[req["op"]](req)
        except RaftError as exc:
            return _reply_error(exc)
        except (ValueError, KeyError, TypeError) as exc:     # bad JSON or bad arguments
            log.warning("admin: bad request %r: %r", line[:200], exc)
            return _reply_error(InvalidError(f"bad request: {exc!r}"))
        return json.dumps({"ok": True, "result": result}).encode() + b"\n"

    async def status(self, req: dict[str, Any]) -> Any:
        server = self.server
        doc: dict[str, Any] = server.metrics().as_dict()
        doc["address"] = server.address
        raft = server.raft
        conf = raft.configuration.servers if raft is not None else ()
        doc["configuration"] = [{"id": s.id, "address": s.address,
                                 "role": s.role.name.lower()} for s in conf]
        return doc

    async def add(self, req: dict[str, Any]) -> Any:
        await self.server.add(int(req["id"]), str(req["address"]))
        return None

    async def assign(self, req: dict[str, Any]) -> Any:
        await self.server.assign(int(req["id"]), _role(req["role"]))
        return None

    async def remove(self, req: dict[str, Any]) -> Any:
        await self.server.remove(int(req["id"]))
        return None

    async def transfer(self, req: dict[str, Any]) -> Any:
        return await self.server.transfer(int(req.get("id", 0)))

    async def snapshot(self, req: dict[str, Any]) -> Any:
        return await self.server.take_snapshot()


def _role(name: object) -> Role:
    try:
        return Role[str(name).upper()]
    except KeyError:
        raise InvalidError(f"role {name!r}: expected voter, standby or spare") from None


def _reply_error(exc: RaftError) -> bytes:
    doc: dict[str, Any] = {"ok": False, "code": exc.code, "error": type(exc).__name__,
                           "message": str(exc)}
    if isinstance(exc, NotLeaderError):
        doc["leader_id"], doc["leader_address"] = exc.leader_id, exc.leader_address
    return json.dumps(doc).encode() + b"\n"


# ------------------------------------------------------------------ client side

def request(endpoint: str, op: str, timeout_s: float = 10.0, **arguments: Any) -> Any:
    """Send one request and return its result, or raise the error it reports."""
    line = json.dumps({"op": op, **arguments}).encode() + b"\n"
    try:
        with _connect(endpoint, timeout_s) as sock:
            sock.sendall(line)
            reply = _read_line(sock)
    except TimeoutError:
        raise NoConnectionError(f"admin endpoint {endpoint}: no reply within "
                                f"{timeout_s} s") from None
    except OSError as exc:
        raise NoConnectionError(f"cannot reach the admin endpoint {endpoint}: "
                                f"{exc.strerror or exc}") from None
    return _result(endpoint, reply)


def _connect(endpoint: str, timeout_s: float) -> socket.socket:
    if is_unix_endpoint(endpoint):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(endpoint)
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection(_tcp_address(endpoint), timeout=timeout_s)


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= LINE_MAX_BYTES * 16:          # a status is a few KiB
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def _result(endpoint: str, reply: bytes) -> Any:
    try:
        doc = json.loads(reply)
    except ValueError:
        raise NoConnectionError(f"admin endpoint {endpoint}: not an admin endpoint "
                                f"(reply {reply[:60]!r})") from None
    if not isinstance(doc, dict) or "ok" not in doc:
        raise NoConnectionError(f"admin endpoint {endpoint}: malformed reply")
    if doc["ok"]:
        return doc.get("result")
    if doc.get("code") == NotLeaderError.code:
        raise NotLeaderError(doc.get("message"), int(doc.get("leader_id") or 0),
                             doc.get("leader_address"))
    raise error_for_code(int(doc.get("code", 0)), str(doc.get("message")))


def status(endpoint: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The server's metrics (ServerMetrics.as_dict()), address and configuration."""
    result: dict[str, Any] = request(endpoint, "status", timeout_s)
    return result


def add(endpoint: str, server_id: int, address: str, timeout_s: float = 10.0) -> None:
    request(endpoint, "add", timeout_s, id=server_id, address=address)


def assign(endpoint: str, server_id: int, role: str, timeout_s: float = 10.0) -> None:
    request(endpoint, "assign", timeout_s, id=server_id, role=role)


def remove(endpoint: str, server_id: int, timeout_s: float = 10.0) -> None:
    request(endpoint, "remove", timeout_s, id=server_id)


def transfer(endpoint: str, server_id: int = 0, timeout_s: float = 10.0) -> int:
    """Hand leadership to server_id (0: the server picks); the leader id after."""
    return int(request(endpoint, "transfer", timeout_s, id=server_id))


def snapshot(endpoint: str, timeout_s: float = 10.0) -> int:
    """Take a snapshot now; its index (0: none taken)."""
    return int(request(endpoint, "snapshot", timeout_s))
