"""MemoryNetwork and MemoryTransport: an in-memory Transport for tests and benchmarks.

May import: the standard library, raftpy.core (values) and raftpy.errors.
Several MemoryTransports on one event loop join one MemoryNetwork (a registry
of listening addresses) and hand messages to each other by reference, with
``loop.call_soon``; nothing is encoded.  The Transport contract of
raftpy.io.interfaces holds:

- messages from one sender to one receiver arrive in the order sent (call_soon
  is FIFO), on the loop thread, never inside ``send``;
- ``send`` never raises for a peer's sake: a message to an address nobody
  listens on, or over a link the test cut with ``fail=True``, is reported
  with ``send_failed`` (soon, not inside ``send``), as a refused connection
  is; a link cut with ``fail=False`` (the default) loses messages silently,
  as a connection that broke after the write;
- after ``close`` nothing is delivered to or reported by that transport.

Test controls on the network: ``cut(a, b)`` (one way, by server id),
``partition(*groups)``, ``heal()``, and counters ``sent[(from, to)]``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable

from raftpy.core.messages import Message
from raftpy.errors import InvalidError, RaftError
from raftpy.io.interfaces import ReceiveCallback, SendFailedCallback

__all__ = ["MemoryNetwork", "MemoryTransport"]


class MemoryNetwork:
    """The addresses listening, the links cut, and counts of messages sent."""

    def __init__(self) -> None:
        self.listeners: dict[str, MemoryTransport] = {}
        self.cut_links: dict[tuple[int, int], bool] = {}    # (from, to) -> report failure
        self.sent: Counter[tuple[int, int]] = Counter()      # (from, to) -> messages handed over

    def transport(self) -> MemoryTransport:
        """A new transport on this network (start it to listen)."""
        return MemoryTransport(self)

    def cut(self, from_id: int, to_id: int, fail: bool = False) -> None:
        """Lose messages from from_id to to_id (reported as send failures if ``fail``)."""
        self.cut_links[(from_id, to_id)] = fail

    def partition(self, *groups: Iterable[int], fail: bool = False) -> None:
        """Cut every link between servers of different groups, both ways."""
        sides = [set(g) for g in groups]
        for k, a_side in enumerate(sides):
            for b_side in sides[k + 1:]:
                for a in a_side:
                    for b in b_side:
                        self.cut(a, b, fail)
                        self.cut(b, a, fail)

    def heal(self) -> None:
        self.cut_links.clear()


class MemoryTransport:
    """One server's end of a MemoryNetwork (see the module docstring)."""

    def __init__(self, network: MemoryNetwork) -> None:
        self.network = network
        self.server_id = 0
        self.address = ""
        self._receive: ReceiveCallback | None = None
        self._send_failed: SendFailedCallback | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open = False

    async def start(self, server_id: int, address: str, receive: ReceiveCallback,
                    send_failed: SendFailedCallback) -> None:
        if self._open:
            raise InvalidError("transport already started")
        if address in self.network.listeners:
            raise RaftError(f"listen {address}: address already in use")
        self._loop = asyncio.get_running_loop()
        self.server_id, self.address = server_id, address
        self._receive, self._send_failed = receive, send_failed
        self.network.listeners[address] = self
        self._open = True

    def send(self, to_id: int, to_address: str, message: Message) -> None:
        if not self._open:
            return
        assert self._loop is not None
        net = self.network
        link = (self.server_id, to_id)
        peer = net.listeners.get(to_address)
        cut = net.cut_links.get(link)
        if peer is None or cut:
            self._loop.call_soon(self._report, to_id, message)
            return
        if cut is not None:
            return          # cut silently: lost on the way
        net.sent[link] += 1
        self._loop.call_soon(peer._deliver, self.server_id, self.address, message)

    def _deliver(self, from_id: int, from_address: str, message: Message) -> None:
        if self._open and self._receive is not None:
            self._receive(from_id, from_address, message)

    def _report(self, to_id: int, message: Message) -> None:
        if self._open and self._send_failed is not None:
            self._send_failed(to_id, message)

    async def close(self) -> None:
        if self._open:
            self._open = False
            if self.network.listeners.get(self.address) is self:
                del self.network.listeners[self.address]
