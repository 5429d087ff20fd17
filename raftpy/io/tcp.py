"""TcpTransport: libraft's TCP transport (spec §4.1, §4.2) on asyncio Protocols.

What lives here: the stock ``raftpy.io.interfaces.Transport``.  It listens on
the server's address (or a bind address), reads a handshake and then
messages from every accepted connection, and keeps one outbound client per
destination server id that connects, writes our handshake and then the
messages given to ``send``.

May import: the standard library, raftpy.core (values), raftpy.errors,
raftpy.io.interfaces, raftpy.io.tls, raftpy.io.wire.

Rules kept:
- Connections are one-way, as libraft's: nothing is ever written on an
  accepted connection; what a peer writes on one of our outbound ones is
  read and discarded.  A reply goes over our own client to the address the
  caller gives (the Server passes the one from the request's handshake).  A
  message for a known id with another address tears the old client down
  (what it still held is reported failed) and makes a new one.
- Addresses are libraft's "host:port" (port 8080 when absent or empty), the
  host a name (getaddrinfo; create_connection tries each result in turn) or
  an IPv4 literal; raftpy also takes IPv6 literals in brackets, "[::1]:9001".
- Each client's queue holds the messages not yet handed to its socket,
  counted in frames and in frame bytes; past send_queue_max_messages or
  send_queue_max_bytes the oldest are dropped (the newest message is always
  kept, whatever its size).  Messages are handed to the socket only while
  its write buffer is under its high-water mark (pause_writing /
  resume_writing), so a peer that does not read holds at most the queue,
  the write buffer's high-water mark plus one batch, and the kernel's buffer.
  The first message of a loop iteration is written at once; the others of
  that iteration go out together in one write at its end.  ``send_many``
  (the Server's way: one Update's messages) writes each peer's share in one
  write at once, with no callback later.
- Every message that is not handed over is reported once with
  ``send_failed(to_id, message)``, always from a later loop callback (never
  from inside ``send``): dropped from a full queue; failed after a connect
  attempt failed (as libraft, all but the newest 3 queued, spec §4.1);
  written into a connection's write buffer but still there, wholly or in
  part, when the connection was lost (judged from the buffer's size when
  last written to, so a message the kernel took since may be reported too);
  queued on a client torn down by an address change; refused by the wire
  encoder (a WireError, found in ``send``: the caller's bug, also logged as
  a warning).  Each
  is counted in ``stats`` and logged at DEBUG with the peer and the reason.
  A message in the kernel's buffer when the connection breaks is lost
  without a report, as in libraft.
- While connecting, messages queue.  After a failed connect or a lost
  connection the client waits connect_retry_delay_ms, then connects again
  if it has messages queued (else the next send connects).  A connect fails
  after Config.connect_timeout_ms (libraft has no timeout of its own; the
  kernel's, about two minutes, is too long behind a silent partition).
- A malformed byte stream (any WireError, a handshake with protocol other
  than 1, EOF before the handshake or in the middle of a frame) closes that
  connection only, with a warning naming the peer and the reason; a read
  error likewise (counted apart); nothing raises into the loop or the
  caller.  The messages decoded before the damage are delivered.
- With ``tls`` (raftpy.io.tls.Tls) every connection is mutual TLS: ours
  check the certificate of the peer we dial against the host of its
  address; an accepted one must present a certificate of our CA that names
  the host of the address its handshake announces.  A plain peer, a failed
  handshake (within connect_timeout_ms) or a certificate naming another
  host closes that connection, with a warning saying why
  (``stats.connections_refused_tls``).  libraft peers cannot use it.
- ``close()`` stops listening, aborts every connection, cancels connects
  and retry timers and drops the queues; no send_failed runs after it
  returns.  It is idempotent.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from raftpy.core.config import Config
from raftpy.core.messages import InstallSnapshot, Message
from raftpy.errors import InvalidError, IOError_, RaftError
from raftpy.io.interfaces import ReceiveCallback, SendFailedCallback
from raftpy.io.tls import Tls, names_host
from raftpy.io.wire import Reader, WireError, encode, encode_handshake

__all__ = ["TcpTransport", "TransportStats", "parse_address", "DEFAULT_PORT"]

_log = logging.getLogger(__name__)

DEFAULT_PORT = 8080                 # libraft's, when an address has no port (spec §4.1)
_KEEP_AFTER_CONNECT_FAILURE = 3     # libraft fails the oldest queued down to 3 (spec §4.1)
# A peer that this many connects in a row failed to reach, with nothing new
# sent to it since the first of them, is forgotten: what it holds is reported
# failed and no retry is scheduled; the next send starts afresh.  libraft
# retries forever, so any id a stranger announces in a handshake (and that
# the core answers) kept a connection retrying every second for good.
_IDLE_AFTER_FAILURES = 3
_WRITE_HIGH_BYTES_MAX = 1024 * 1024  # a socket's write buffer high-water mark, at most
_LISTEN_BACKLOG = 64                # libraft's is 1: too few for a cluster starting at once

# Why a message was reported with send_failed (the keys of stats.dropped_by_reason).
QUEUE_FULL = "queue full"
NO_CONNECTION = "no connection"
CONNECTION_LOST = "connection lost"
ADDRESS_CHANGED = "address changed"
NOT_ENCODABLE = "not encodable"


def parse_address(address: str) -> tuple[str, int]:
    """Split libraft's "host:port" (at the first ':'; port 8080 if absent or
    empty) or raftpy's "[ipv6]:port"; InvalidError for anything else."""
    if address.startswith("["):
        end = address.find("]")
        rest = address[end + 1:] if end > 0 else "?"
        if end < 0 or (rest and not rest.startswith(":")):
            raise InvalidError(f"address {address!r}: expected [host]:port")
        host, port_text = address[1:end], rest[1:]
    else:
        host, _, port_text = address.partition(":")
    if not host:
        raise InvalidError(f"address {address!r}: no host")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InvalidError(f"address {address!r}: bad port {port_text!r}")
    return host, int(port_text)


@dataclass(slots=True)
class TransportStats:
    """Counters of one TcpTransport (read them; the transport updates them)."""

    # Handed to a socket (written, or in its write buffer; one still in the
    # buffer when its connection is lost is also counted in send_failed).
    messages_sent: int = 0
    bytes_sent: int = 0               # frame bytes of those (handshakes not counted)
    messages_received: int = 0
    bytes_received: int = 0           # every byte read from accepted connections
    send_failed: int = 0              # messages reported with send_failed, any reason
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    connects: int = 0                 # outbound connections made
    connect_failures: int = 0
    connections_lost: int = 0         # outbound connections that broke or were closed by the peer
    connections_accepted: int = 0
    connections_closed_malformed: int = 0   # accepted connections closed for bad input
    connections_read_errors: int = 0  # accepted connections closed by a read error
    connections_refused_tls: int = 0  # accepted: TLS handshake failed, or the
    #                                   certificate does not name the peer
    bytes_discarded: int = 0          # bytes a peer wrote on one of our outbound connections
    peak_queue_messages: int = 0      # the most any client's queue held (seen at
    peak_queue_bytes: int = 0         # each flush and each trim)


# A queued message: the message, its frame's buffers (wire.encode), its bytes.
_Item = tuple[Message, list[bytes | memoryview], int]


class _Outbound(asyncio.Protocol):
    """One outbound connection of a client: forwards its events to the _Peer."""

    def __init__(self, peer: _Peer) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast.
        self.transport = cast(asyncio.Transport, transport)
        if self.peer.closed:
            self.transport.abort()
        else:
            self.peer.connected(self, self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer.protocol is self:
            self.peer.lost(exc)

    def pause_writing(self) -> None:
        if self.peer.protocol is self:
            self.peer.writable = False

    def resume_writing(self) -> None:
        if self.peer.protocol is self:
            self.peer.writable = True
            self.peer.note_peak()
            self.peer.flush()

    def data_received(self, data: bytes) -> None:
        # A libraft peer never writes here (one-way connections); ignore it.
        self.peer.owner.stats.bytes_discarded += len(data)

    def eof_received(self) -> bool | None:
        return None       # the peer closed: close our side, connection_lost follows


class _Peer:
    """The client for one destination id and address: connection, queue, retries.

    States: idle (no transport, no connect task, no retry timer), connecting
    (connect_task), connected (protocol/transport), waiting (retry_handle).
    ``queue`` holds (message, its frame's buffers, frame bytes) not yet
    handed to the socket; ``inflight`` those handed over whose bytes may
    still be in its write buffer (the newest ones covering
    get_write_buffer_size() bytes).
    """

    def __init__(self, owner: TcpTransport, server_id: int, address: str) -> None:
        self.owner = owner
        self.id = server_id
        self.address = address
        self.queue: deque[_Item] = deque()
        self.queue_bytes = 0
        self.max_messages = owner.config.send_queue_max_messages
        self.max_bytes = owner.config.send_queue_max_bytes
        self.inflight: deque[_Item] = deque()
        self.inflight_bytes = 0
        self.protocol: _Outbound | None = None
        self.transport: asyncio.Transport | None = None
        self.writable = False            # connected and the write buffer under its mark
        self.dirty = False               # a flush is scheduled
        self.connect_task: asyncio.Task[None] | None = None
        self.retry_handle: asyncio.TimerHandle | None = None
        self.failures_in_row = 0
        self.news = False               # a message queued since the last connect began
        self.closed = False

    def __repr__(self) -> str:
        return f"server {self.id} at {self.address}"

    # Queueing -----------------------------------------------------------

    def send(self, message: Message) -> None:
        if not self.enqueue(message):
            return
        if self.writable:
            if not self.dirty:
                # Write-through: the first message of a loop iteration goes out at
                # once (no added latency); later ones wait for one batched write.
                self.flush()
                self.dirty = True
                self.owner.schedule_flush(self)
        else:
            self.maybe_connect()

    def send_batch_end(self) -> None:
        """After enqueue() of a caller's whole batch: write it out now, in one
        write (unless a batched flush is scheduled already: it carries them)."""
        if self.writable:
            if not self.dirty:
                self.flush()
        else:
            self.maybe_connect()

    def enqueue(self, message: Message) -> bool:
        """Queue message (not written yet); False if the wire refused it."""
        # Encoded at once: a message the wire refuses is reported now, and the
        # size comes from the buffers (the per-entry sum runs in C).
        try:
            parts = encode(message)
        except WireError as exc:          # the caller's bug: report it
            _log.warning("send to %r: cannot encode %s: %s", self, message, exc)
            self.owner.fail(self, message, NOT_ENCODABLE)
            return False
        size = sum(map(len, parts))
        if type(message) is InstallSnapshot:
            self._check_snapshot_size(message)
        self.news = True
        queue = self.queue
        queue.append((message, parts, size))
        self.queue_bytes += size
        if len(queue) > self.max_messages or self.queue_bytes > self.max_bytes:
            self._make_room()
        return True

    def _check_snapshot_size(self, message: InstallSnapshot) -> None:
        # A snapshot goes in one message (libraft's format has no chunks): one
        # over the payload limit is closed on by a raftpy peer with this
        # config, and that follower cannot catch up.  It is still sent (the
        # peer's limit may differ), but the leader's log says why it fails.
        limit = self.owner.config.message_payload_max_bytes
        if len(message.data) > limit:
            _log.warning("send to %r: snapshot %d is %d bytes, over message_payload_max_bytes="
                         "%d: a peer with that limit closes the connection on it",
                         self, message.last_index, len(message.data), limit)

    def maybe_connect(self) -> None:
        if self.transport is None and self.connect_task is None and self.retry_handle is None:
            self.connect()

    def _make_room(self) -> None:
        """Past a limit: hand what the socket takes over, then drop the oldest."""
        if self.writable:
            self.flush()
        queue = self.queue
        while len(queue) > self.max_messages or (self.queue_bytes > self.max_bytes
                                                 and len(queue) > 1):
            self._fail_oldest(QUEUE_FULL)
        self.note_peak()

    def note_peak(self) -> None:
        # Called where the queue is at its longest: before a batched flush, after a trim.
        stats = self.owner.stats
        stats.peak_queue_messages = max(stats.peak_queue_messages, len(self.queue))
        stats.peak_queue_bytes = max(stats.peak_queue_bytes, self.queue_bytes)

    def _fail_oldest(self, reason: str) -> None:
        message, _, size = self.queue.popleft()
        self.queue_bytes -= size
        self.owner.fail(self, message, reason)

    def flush(self) -> None:
        """Hand queued messages to the socket while its write buffer has room."""
        self.dirty = False
        transport = self.transport
        queue = self.queue
        high = self.owner.write_high_bytes
        stats = self.owner.stats
        while queue and self.writable and transport is not None and not transport.is_closing():
            room = high - transport.get_write_buffer_size()
            item = queue.popleft()
            batch, parts, batch_bytes = [item], item[1], item[2]
            if queue and batch_bytes + queue[0][2] <= room:
                parts = list(parts)           # a batch: gather the buffers of several
                while queue and batch_bytes + queue[0][2] <= room:
                    item = queue.popleft()
                    batch.append(item)
                    parts += item[1]
                    batch_bytes += item[2]
            self.queue_bytes -= batch_bytes
            stats.messages_sent += len(batch)
            stats.bytes_sent += batch_bytes
            transport.writelines(parts)       # may call pause_writing at once
            self._track_inflight(transport, batch, batch_bytes)

    def _track_inflight(self, transport: asyncio.Transport, batch: list[_Item],
                        batch_bytes: int) -> None:
        buffered = transport.get_write_buffer_size()
        inflight = self.inflight
        if buffered == 0:          # everything written so far is in the kernel
            inflight.clear()
            self.inflight_bytes = 0
            return
        inflight.extend(batch)
        self.inflight_bytes += batch_bytes
        # The buffer holds the newest `buffered` bytes: older messages are out.
        while inflight and self.inflight_bytes - inflight[0][2] >= buffered:
            self.inflight_bytes -= inflight.popleft()[2]

    # Connecting ---------------------------------------------------------

    def connect(self) -> None:
        loop = self.owner.loop
        if self.failures_in_row == 0:
            self.news = False
        self.connect_task = loop.create_task(self._open())

    async def _open(self) -> None:
        loop = self.owner.loop
        try:
            host, port = parse_address(self.address)
            timeout_s = self.owner.config.connect_timeout_ms / 1000
            tls = self.owner.tls
            if tls is None:
                opening = loop.create_connection(lambda: _Outbound(self), host, port)
            else:
                opening = loop.create_connection(
                    lambda: _Outbound(self), host, port, ssl=tls.client,
                    server_hostname=host, ssl_handshake_timeout=timeout_s)
            await asyncio.wait_for(opening, timeout_s)
        except Exception as exc:      # OSError, gaierror, InvalidError, TimeoutError...
            self.connect_task = None
            if not self.closed and self.transport is None:
                self.connect_failed(exc)
            return
        self.connect_task = None

    def connected(self, protocol: _Outbound, transport: asyncio.Transport) -> None:
        owner = self.owner
        self.protocol, self.transport = protocol, transport
        _set_nodelay(transport)
        transport.set_write_buffer_limits(high=owner.write_high_bytes)
        owner.stats.connects += 1
        self.failures_in_row = 0
        _log.debug("connected to %r", self)
        transport.write(owner.handshake)
        self.writable = True
        self.note_peak()
        self.flush()

    def connect_failed(self, exc: BaseException) -> None:
        self.owner.stats.connect_failures += 1
        self.failures_in_row += 1
        level = logging.INFO if self.failures_in_row == 1 else logging.DEBUG
        _log.log(level, "connect to %r failed: %s (retry in %d ms)", self, _reason(exc),
                 self.owner.config.connect_retry_delay_ms)
        self.note_peak()
        while len(self.queue) > _KEEP_AFTER_CONNECT_FAILURE:
            self._fail_oldest(NO_CONNECTION)
        if self.failures_in_row >= _IDLE_AFTER_FAILURES and not self.news:
            _log.debug("forgetting %r: %d connects failed, nothing new to send",
                       self, self.failures_in_row)
            self.owner.forget(self)
            return
        if self.failures_in_row % _IDLE_AFTER_FAILURES == 0:
            self.news = False         # count the next round of attempts afresh
        self._wait_then_retry()

    def lost(self, exc: Exception | None) -> None:
        self.owner.stats.connections_lost += 1
        _log.info("connection to %r lost: %s", self, _reason(exc) if exc else "closed by the peer")
        self.protocol = self.transport = None
        self.writable = False
        self._fail_inflight(CONNECTION_LOST)
        self._wait_then_retry()

    def _fail_inflight(self, reason: str) -> None:
        inflight, self.inflight = self.inflight, deque()
        self.inflight_bytes = 0
        for message, _, _ in inflight:
            self.owner.fail(self, message, reason)

    def _wait_then_retry(self) -> None:
        if self.retry_handle is None and not self.closed:
            delay_s = self.owner.config.connect_retry_delay_ms / 1000
            self.retry_handle = self.owner.loop.call_later(delay_s, self._retry)

    def _retry(self) -> None:
        self.retry_handle = None
        if not self.closed and self.queue and self.transport is None \
                and self.connect_task is None:
            self.connect()

    def close(self, reason: str | None) -> None:
        """Tear the client down; with a reason, report what it still held."""
        self.closed = True
        self.writable = False
        if self.connect_task is not None:
            self.connect_task.cancel()
            self.connect_task = None
        if self.retry_handle is not None:
            self.retry_handle.cancel()
            self.retry_handle = None
        if self.transport is not None:
            self.transport.abort()
            self.protocol = self.transport = None
        if reason is not None:
            self._fail_inflight(reason)
            while self.queue:
                self._fail_oldest(reason)
        self.queue.clear()
        self.inflight.clear()
        self.queue_bytes = self.inflight_bytes = 0


class _Inbound(asyncio.Protocol):
    """One accepted connection: a handshake, then messages, delivered to receive."""

    def __init__(self, owner: TcpTransport) -> None:
        self.owner = owner
        config = owner.config
        self.reader = Reader(config.message_header_max_bytes, config.message_payload_max_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.from_id = 0
        self.from_address = ""
        self.closed = False
        self.certificate: dict[str, Any] | None = None  # the peer's, with TLS
        # With TLS: the TLS state of this connection, kept in memory buffers
        # (the same on every event loop), and whether its handshake is on.
        self.tls: ssl.SSLObject | None = None
        self.tls_in: ssl.MemoryBIO | None = None
        self.tls_out: ssl.MemoryBIO | None = None
        self.securing = False
        self.tls_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        handshake = self.reader.handshake
        who = f" (server {handshake[0]}, {handshake[1]})" if handshake is not None else ""
        return f"connection from {self.peer}{who}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        name = transport.get_extra_info("peername")
        if isinstance(name, tuple) and len(name) >= 2:
            self.peer = f"{name[0]}:{name[1]}"
        if self.owner.closed:
            self.closed = True
            self.transport.abort()
            return
        self.owner.stats.connections_accepted += 1
        self.owner.inbound.add(self)
        if self.owner.tls is not None:
            self.tls_in, self.tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = self.owner.tls.server.wrap_bio(self.tls_in, self.tls_out,
                                                      server_side=True)
            self.securing = True
            self.tls_timer = self.owner.loop.call_later(
                self.owner.config.connect_timeout_ms / 1000, self._tls_timed_out)

    def _tls_timed_out(self) -> None:
        if self.securing:
            self.refuse(f"TLS handshake failed: not done within "
                        f"{self.owner.config.connect_timeout_ms} ms")

    def _tls_flush(self) -> None:
        assert self.tls_out is not None and self.transport is not None
        if self.tls_out.pending:
            self.transport.write(self.tls_out.read())

    def _tls_read(self, data: bytes) -> bytes | None:
        """data off the socket in, application bytes out (None: refused or closed)."""
        tls, tls_in = self.tls, self.tls_in
        assert tls is not None and tls_in is not None
        tls_in.write(data)
        if self.securing:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                self._tls_flush()
                return b""
            except (ssl.SSLError, OSError) as exc:
                self._tls_flush()                 # the alert says why, to the peer too
                self.refuse(f"TLS handshake failed: {_reason(exc)}")
                return None
            self.securing = False
            if self.tls_timer is not None:
                self.tls_timer.cancel()
            self.certificate = tls.getpeercert()
        chunks = []
        while True:
            try:
                chunk = tls.read(1 << 16)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:        # the peer closed TLS; EOF follows
                break
            except (ssl.SSLError, OSError) as exc:
                self.malformed(f"TLS: {_reason(exc)}")
                return None
            if not chunk:
                break
            chunks.append(chunk)
        self._tls_flush()                         # TLS 1.3 tickets, alerts
        return b"".join(chunks)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.owner.stats.bytes_received += len(data)
        if self.tls is not None:
            plain = self._tls_read(data)
            if not plain:
                return
            data = plain
        try:
            messages = self.reader.feed(data)
        except WireError as exc:
            self.deliver(exc.messages)        # what came before the damage
            self.malformed(str(exc))
            return
        if messages:
            self.deliver(messages)

    def deliver(self, messages: list[Message]) -> None:
        if not messages:
            return
        stats = self.owner.stats
        if not self.from_address:
            handshake = self.reader.handshake
            assert handshake is not None
            if self.owner.tls is not None and not self._named(handshake[1]):
                return
            self.from_id, self.from_address = handshake
        stats.messages_received += len(messages)
        receive, from_id, from_address = self.owner.receive, self.from_id, self.from_address
        owner = self.owner
        for i, message in enumerate(messages):
            if owner.closed:              # the callback closed the transport
                return
            try:
                receive(from_id, from_address, message)
            except Exception:
                # The Server's bug, not the peer's: say so and deliver the rest.
                _log.exception("receive callback failed on message %d from %r", i, self)

    def _named(self, address: str) -> bool:
        """Whether the peer's certificate names the host it announces; else refuse it."""
        try:
            host = parse_address(address)[0]
        except RaftError:
            host = address
        if names_host(self.certificate, host):
            return True
        self.refuse(f"its certificate does not name {host!r}, the host of the address "
                    f"its handshake announces")
        return False

    def refuse(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.owner.stats.connections_refused_tls += 1
        _log.warning("%r refused: %s", self, reason)
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool | None:
        if self.securing:
            self.refuse("TLS handshake failed: end of stream")
            return None
        if self.reader.handshake is None and self.reader.buffered_bytes:
            self.malformed("end of stream before the handshake")
        elif self.reader.buffered_bytes:
            self.malformed(f"end of stream in the middle of a frame "
                           f"({self.reader.buffered_bytes} bytes of it read)")
        else:
            _log.debug("%r closed by the peer", self)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.inbound.discard(self)
        if self.tls_timer is not None:
            self.tls_timer.cancel()
        if exc is not None and not self.closed:
            self.owner.stats.connections_read_errors += 1
            _log.warning("%r: read error: %s; closed", self, _reason(exc))
        self.closed = True

    def malformed(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.owner.stats.connections_closed_malformed += 1
        _log.warning("%r: %s; closing it", self, reason)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class TcpTransport:
    """libraft's TCP transport (contract: raftpy.io.interfaces; rules: module docstring).

    ``bind_address``, if given, is where to listen instead of the server's
    own address (raft_uv_tcp_set_bind_address); the handshake still
    announces the server's address, where peers send their replies.
    ``tls``: mutual TLS on every connection (module docstring).
    """



    def __init__(self, config: Config, bind_address: str | None = None, *,
                 tls: Tls | None = None) -> None:
        self.config = config
        self.bind_address = bind_address
        self.tls = tls
        self.stats = TransportStats()
        self.write_high_bytes = min(_WRITE_HIGH_BYTES_MAX, config.send_queue_max_bytes)
        self.closed = False
        self.inbound: set[_Inbound] = set()
        self.handshake = b""
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: dict[int, _Peer] = {}
        self._dirty: list[_Peer] = []
        self._failed: list[tuple[int, Message]] = []
        self._receive: ReceiveCallback | None = None
        self._send_failed: SendFailedCallback | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "TcpTransport used before start()"
        return self._loop

    @property
    def receive(self) -> ReceiveCallback:
        assert self._receive is not None
        return self._receive

    async def start(self, server_id: int, address: str, receive: ReceiveCallback,
                    send_failed: SendFailedCallback) -> None:
        """Listen on the bind address (else address); IOError_ if it is in use."""
        if self._loop is not None or self.closed:
            raise InvalidError("TcpTransport.start: already started")
        listen = self.bind_address or address
        host, port = parse_address(listen)
        parse_address(address)
        self.handshake = encode_handshake(server_id, address)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Inbound(self), host, port, backlog=_LISTEN_BACKLOG)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise IOError_(f"listen on {listen}: address already in use") from exc
            raise IOError_(f"listen on {listen}: {_reason(exc)}") from exc
        if self.closed:            # close() ran while create_server was awaited
            self._server.close()
            self._server = None
            raise InvalidError("TcpTransport.start: closed meanwhile")
        self._loop = loop
        self._receive, self._send_failed = receive, send_failed
        _log.debug("server %d listening on %s (announcing %s)", server_id, listen, address)

    @property
    def listen_addresses(self) -> list[tuple[Any, ...]]:
        """The socket addresses listened on (for tests and logs)."""
        if self._server is None:
            return []
        return [sock.getsockname() for sock in self._server.sockets]

    def send(self, to_id: int, to_address: str, message: Message) -> None:
        """Queue message for to_id at to_address (see the module docstring)."""
        if self.closed:
            return
        self._peer(to_id, to_address).send(message)

    def send_many(self, messages: Sequence[tuple[int, str, Message]]) -> None:
        """send() for each (to_id, to_address, message), in order, with one write
        per peer at the end instead of a write-through and a batched flush a
        loop iteration later (the Server hands over each Update's messages so)."""
        if self.closed:
            return
        touched: list[_Peer] = []
        for to_id, to_address, message in messages:
            peer = self._peer(to_id, to_address)
            if peer.enqueue(message) and peer not in touched:
                touched.append(peer)
        for peer in touched:
            if not peer.closed:
                peer.send_batch_end()

    def _peer(self, to_id: int, to_address: str) -> _Peer:
        peer = self._peers.get(to_id)
        if peer is None or peer.address != to_address:
            if peer is not None:
                _log.debug("%r: address changed to %s", peer, to_address)
                peer.close(ADDRESS_CHANGED)
            peer = self._peers[to_id] = _Peer(self, to_id, to_address)
        return peer

    def forget(self, peer: _Peer) -> None:
        """Drop a peer nobody sends to any more (its queue reported failed)."""
        if self._peers.get(peer.id) is peer:
            del self._peers[peer.id]
        peer.close(NO_CONNECTION)

    def queued(self, to_id: int) -> tuple[int, int]:
        """(messages, bytes) queued for to_id and not yet handed to its socket."""
        peer = self._peers.get(to_id)
        return (len(peer.queue), peer.queue_bytes) if peer is not None else (0, 0)

    def write_buffer_bytes(self, to_id: int) -> int:
        """Bytes in to_id's socket write buffer (handed over, not yet in the kernel)."""
        peer = self._peers.get(to_id)
        if peer is None or peer.transport is None:
            return 0
        return peer.transport.get_write_buffer_size()

    async def close(self) -> None:
        """Stop listening, abort every connection, drop every queue (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._failed.clear()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = [p.connect_task for p in self._peers.values() if p.connect_task is not None]
        for peer in self._peers.values():
            peer.close(None)
        self._peers.clear()
        self._dirty.clear()
        for conn in list(self.inbound):
            conn.close()
        self.inbound.clear()
        if server is not None:
            await server.wait_closed()
        # Let the cancelled connects end and the aborted transports run
        # their connection_lost callbacks (which do nothing now).
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)

    # Internal: batching writes and reporting failures -------------------

    def schedule_flush(self, peer: _Peer) -> None:
        if not self._dirty:
            self.loop.call_soon(self._flush_dirty)
        self._dirty.append(peer)

    def _flush_dirty(self) -> None:
        dirty, self._dirty = self._dirty, []
        for peer in dirty:
            if peer.dirty:
                peer.note_peak()
                peer.flush()

    def fail(self, peer: _Peer, message: Message, reason: str) -> None:
        stats = self.stats
        stats.send_failed += 1
        stats.dropped_by_reason[reason] = stats.dropped_by_reason.get(reason, 0) + 1
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("send to %r failed (%s): %s", peer, reason, message)
        if self.closed:
            return
        if not self._failed:
            self.loop.call_soon(self._report_failed)
        self._failed.append((peer.id, message))

    def _report_failed(self) -> None:
        failed, self._failed = self._failed, []
        callback = self._send_failed
        if self.closed or callback is None:
            return
        for to_id, message in failed:
            try:
                callback(to_id, message)
            except Exception:
                _log.exception("send_failed callback failed for server %d", to_id)


def _set_nodelay(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass      # the loop's default then (both loops already set it)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RaftError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
