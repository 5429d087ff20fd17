"""Every message type both ways between raftpy's wire code and a real libraft
0.15 server (issue 10, item 4): a counter_server (libraft's own raft_uv I/O
and TCP transport and its Raft core) in a configuration of three voters whose
two others, ids 2 and 3, are played by this test on 127.0.0.1.

What raftpy sends (``wire.encode_handshake`` and ``wire.encode`` on a plain
socket: the bytes raftpy's TcpTransport writes) must be ACTED ON by libraft,
seen through its control port or its replies: RequestVote with and without
pre_vote and disrupt_leader (a pre-vote granted without a term change, a
vote that bumps the term, leader stickiness refusing a vote the disrupt flag
then wins), RequestVoteResult with and without pre_vote (libraft goes from
pre-vote to a real round, then leads), AppendEntries with and without
entries (entries appended, acknowledged, committed and applied; a gap
rejected), AppendEntriesResult (libraft commits on our acknowledgements and
replicates after our snapshot reply), InstallSnapshot (the counter restored)
and TimeoutNow (libraft campaigns at once with disrupt_leader).

What libraft sends is captured raw off the sockets the test listens on, one
frame at a time, and decoded by raftpy's ``wire.Reader``.  Each message is
checked field by field against what the situation implies, and EVERY frame
libraft sent (heartbeats and retries included) must equal, byte for byte,
raftpy's own encoding of what it decoded, but for the bytes libraft leaves
uninitialised (spec §4: tests/wire_capture.frame_unused) and libraft 0.15's
AppendEntriesResult header of 24 bytes where raftpy writes 0.18's 32.

The test's peers are threads on blocking sockets (no event loop involved: the
loop-dependent transport is covered by test_tcp_libraft).  Every wait is
bounded; the server is killed by its handle.  Without libraft this skips with
the reason (fails under CI), as the other interop tests do.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from test_mixed_cluster import Node, counter_server  # noqa: F401 (a fixture)
from wire_capture import frame_end, frame_unused, handshake_unused

from raftpy.core.configuration import Configuration
from raftpy.core.messages import (
    AppendEntries,
    AppendEntriesResult,
    InstallSnapshot,
    Message,
    RequestVote,
    RequestVoteResult,
    TimeoutNow,
)
from raftpy.core.types import Entry, EntryType
from raftpy.io import wire

WAIT_S = 10.0


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def masked(data: bytes, ranges: list[range]) -> bytes:
    out = bytearray(data)
    for r in ranges:
        out[r.start:r.stop] = bytes(len(r))
    return bytes(out)


def our_encoding(message: Message) -> bytes:
    """raftpy's frame for message, in the header size libraft's decoded one had
    (raftpy always writes 0.18's AppendEntriesResult of 32 bytes; 0.15 sends
    24, without the features word)."""
    raw = b"".join(bytes(b) for b in wire.encode(message))
    if isinstance(message, AppendEntriesResult) and message.version == 0:
        assert message.features == 0
        raw = raw[:8] + u64(24) + raw[16:40]
    return raw


class Peer:
    """One voter played by the test: a listener that captures what libraft
    sends it, and one outbound connection to libraft for what it sends."""

    def __init__(self, server_id: int) -> None:
        self.id = server_id
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.frames: list[tuple[bytes, Message]] = []   # every frame libraft sent, raw
        self.handshakes: list[bytes] = []
        self.errors: list[str] = []
        self.follow_term: int | None = None   # acknowledge AppendEntries of this term
        self.out: socket.socket | None = None
        self.lock = threading.Lock()
        self.closed = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._read, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _read(self, conn: socket.socket) -> None:
        """Split the stream into raw frames and decode each with raftpy."""
        reader = wire.Reader(1 << 20, 1 << 24)
        stream, pos = b"", 0
        conn.settimeout(0.1)
        with conn:
            while not self.closed:
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                try:
                    messages = reader.feed(chunk)
                except wire.WireError as err:
                    self.errors.append(f"raftpy could not decode libraft's stream: {err}")
                    return
                stream += chunk
                if pos == 0 and len(stream) >= 24 and len(stream) >= 24 + _len(stream):
                    pos = 24 + _len(stream)
                    self.handshakes.append(stream[:pos])
                for message in messages:
                    end = frame_end(stream, pos) if pos else None
                    if end is None:   # the Reader and our framing disagree
                        self.errors.append(f"no whole frame at byte {pos} for {message}")
                        return
                    self._got(stream, pos, end, message)
                    pos = end

    def _got(self, stream: bytes, pos: int, end: int, message: Message) -> None:
        raw = stream[pos:end]
        ranges = [range(r.start - pos, r.stop - pos) for r in frame_unused(stream, pos)]
        mine = our_encoding(message)
        if masked(raw, ranges) != masked(mine, ranges):
            self.errors.append(f"{message}: libraft sent {raw.hex()}, raftpy encodes "
                               f"{mine.hex()}")
        self.frames.append((raw, message))
        if isinstance(message, AppendEntries) and message.term == self.follow_term:
            self.send(AppendEntriesResult(message.term, 0,
                                          message.prev_log_index + len(message.entries)))
        self.inbox.put(message)

    def connect(self, to_address: str) -> None:
        host, port = to_address.rsplit(":", 1)
        self.out = socket.create_connection((host, int(port)), timeout=WAIT_S)
        self.out.sendall(wire.encode_handshake(self.id, self.address))

    def send(self, message: Message) -> None:
        assert self.out is not None
        with self.lock:
            self.out.sendall(b"".join(bytes(b) for b in wire.encode(message)))

    def expect(self, kind: type, where: Callable[[Any], bool] = lambda m: True,
               timeout_s: float = WAIT_S) -> Any:
        """The next message of kind libraft sent us that satisfies where
        (others are skipped: heartbeats, retries)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"server {self.id}: no {kind.__name__} from libraft in " \
                             f"{timeout_s} s; got {[m for _, m in self.frames][-8:]}"
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(message, kind) and where(message):
                return message

    def drain(self) -> None:
        while not self.inbox.empty():
            self.inbox.get_nowait()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        if self.out is not None:
            self.out.close()
        for t in self.threads:
            t.join(timeout=5)


def _len(stream: bytes) -> int:
    return int.from_bytes(stream[16:24], "little")


def status(node: Node) -> dict[str, Any]:
    s = node.status()
    assert s is not None, "libraft's control port does not answer"
    return s


def wait_status(node: Node, check: Callable[[dict[str, Any]], bool], what: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while not check(s := status(node)):
        assert time.monotonic() < deadline, f"libraft never showed {what}: {s}"
        time.sleep(0.02)
    return s


def rv_fields(m: RequestVote) -> tuple:
    return (m.term, m.candidate_id, m.last_log_index, m.last_log_term, m.disrupt_leader,
            m.pre_vote)


def command(term: int, increment: int) -> Entry:
    return Entry(term, EntryType.COMMAND, u64(increment))


def test_every_message_type_both_ways_with_a_real_libraft_server(
        counter_server: Path, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    p2, p3 = Peer(2), Peer(3)
    node = Node(1, str(tmp_path / "1"))
    os.makedirs(node.directory)
    conf = Configuration.of((1, node.address), (2, p2.address), (3, p3.address))
    proc = subprocess.Popen(
        [str(counter_server), node.directory, "1", "--address", node.address,
         "--control", f"127.0.0.1:{node.control_port}", "--cluster",
         ",".join(f"{s.id}={s.address}" for s in conf.servers),
         "--snapshot-threshold", "4", "--snapshot-trailing", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pool = ThreadPoolExecutor(1)
    try:
        node.process = proc
        wait_for_control(node)
        p2.connect(node.address)
        p3.connect(node.address)
        script(node, conf, p2, p3, pool)
    finally:
        proc.kill()  # our own child, by its handle
        proc.wait(timeout=10)
        pool.shutdown(wait=False, cancel_futures=True)
        p2.close()
        p3.close()
        assert proc.stdout is not None
        log = proc.stdout.read().decode(errors="replace")
        proc.stdout.close()
    assert p2.errors == [] and p3.errors == [], (p2.errors + p3.errors, log[-2000:])
    for peer in (p2, p3):
        for handshake in peer.handshakes:
            mine = wire.encode_handshake(1, node.address)
            unused = [handshake_unused(handshake)]
            assert masked(handshake, unused) == masked(mine, unused)
    seen = {type(m).__name__ for peer in (p2, p3) for _, m in peer.frames}
    print(f"frames from libraft checked byte for byte: {len(p2.frames) + len(p3.frames)} "
          f"({', '.join(sorted(seen))})")
    assert seen == {"RequestVote", "RequestVoteResult", "AppendEntries", "AppendEntriesResult",
                    "InstallSnapshot", "TimeoutNow"}


def wait_for_control(node: Node) -> None:
    deadline = time.monotonic() + WAIT_S
    while node.status() is None:
        assert node.alive(), "counter_server exited"
        assert time.monotonic() < deadline, "counter_server's control port never answered"
        time.sleep(0.02)


def script(node: Node, conf: Configuration, p2: Peer, p3: Peer, pool: ThreadPoolExecutor
           ) -> None:
    t0 = time.monotonic()
    elections(node, p2, p3)
    t1 = time.monotonic()
    follow_raftpy_leaders(node, conf, p2, p3)
    t2 = time.monotonic()
    lead_under_libraft(node, conf, p2, p3, pool)
    # libraft's election timeout is 1 s at least: the phases where a peer of
    # ours leads without heartbeats must stay well inside it.
    print(f"elections {t1 - t0:.2f} s, following raftpy leaders {t2 - t1:.2f} s, "
          f"leading {time.monotonic() - t2:.2f} s")


def elections(node: Node, p2: Peer, p3: Peer) -> None:
    # libraft times out (no leader: we say nothing) and asks for pre-votes at
    # term + 1 without persisting it.
    for peer in (p2, p3):
        pre = peer.expect(RequestVote)
        assert rv_fields(pre) == (2, 1, 1, 1, False, True), pre
    assert status(node)["term"] == 1
    # Our pre-vote grant: libraft leaves pre-vote and runs the real round.
    p2.send(RequestVoteResult(2, True, pre_vote=True))
    real = p2.expect(RequestVote, lambda m: not m.pre_vote)
    assert rv_fields(real) == (2, 1, 1, 1, False, False), real
    s = wait_status(node, lambda s: s["term"] == 2, "the term of its real round")
    assert s["state"] == "CANDIDATE", s
    # Our pre-vote at term 10 is granted with the term echoed, and changes
    # nothing; our real vote request at 10 is granted and bumps libraft's term.
    p2.drain()
    p2.send(RequestVote(10, 2, 1, 1, pre_vote=True))
    r = p2.expect(RequestVoteResult)
    assert (r.term, r.vote_granted, r.pre_vote) == (10, True, True), r
    assert status(node)["term"] < 10
    p2.send(RequestVote(10, 2, 1, 1))
    r = p2.expect(RequestVoteResult)
    assert (r.term, r.vote_granted, r.pre_vote) == (10, True, False), r
    s = status(node)
    assert (s["term"], s["state"]) == (10, "FOLLOWER"), s


def follow_raftpy_leaders(node: Node, conf: Configuration, p2: Peer, p3: Peer) -> None:
    # Server 2 leads term 10: a heartbeat, then two entries, then the commit.
    p2.send(AppendEntries(10, 1, 1, 0))
    r = p2.expect(AppendEntriesResult)
    assert (r.term, r.rejected, r.last_log_index) == (10, 0, 1), r
    assert status(node)["leader"] == 2
    p2.send(AppendEntries(10, 1, 1, 1, [command(10, 5), command(10, 7)]))
    r = p2.expect(AppendEntriesResult)
    assert (r.term, r.rejected, r.last_log_index) == (10, 0, 3), r
    p2.send(AppendEntries(10, 3, 10, 3))
    p2.expect(AppendEntriesResult)
    s = wait_status(node, lambda s: s["applied"] == 3, "our entries applied")
    assert (s["commit"], s["counter"]) == (3, 12), s
    # A gap: refused with rejected = prev_log_index and its last index.
    p2.send(AppendEntries(10, 7, 10, 3))
    r = p2.expect(AppendEntriesResult)
    assert (r.term, r.rejected, r.last_log_index) == (10, 7, 3), r

    # Leader stickiness: a follower that knows its leader refuses a vote, and
    # does not even take the term ...
    p3.send(RequestVote(11, 3, 3, 10))
    r = p3.expect(RequestVoteResult)
    assert (r.term, r.vote_granted, r.pre_vote) == (10, False, False), r
    assert status(node)["term"] == 10
    # ... unless the request carries disrupt_leader (a leadership transfer).
    p3.send(RequestVote(11, 3, 3, 10, disrupt_leader=True))
    r = p3.expect(RequestVoteResult)
    assert (r.term, r.vote_granted, r.pre_vote) == (11, True, False), r
    assert status(node)["term"] == 11

    # Server 3 leads term 11 and installs a snapshot at 20 whose counter is 1000.
    p3.send(AppendEntries(11, 3, 10, 3))
    p3.expect(AppendEntriesResult)
    p3.send(InstallSnapshot(11, 20, 11, 1, conf, u64(1000)))
    r = p3.expect(AppendEntriesResult)
    assert (r.term, r.rejected, r.last_log_index) == (11, 0, 20), r
    s = wait_status(node, lambda s: s["applied"] == 20, "our snapshot installed")
    assert (s["commit"], s["counter"], s["leader"]) == (20, 1000, 3), s

    # TimeoutNow: libraft campaigns at once, skipping pre-vote, with the flag.
    p3.send(TimeoutNow(11, 20, 11))
    for peer in (p2, p3):
        rv = peer.expect(RequestVote, lambda m: m.term == 12)
        assert rv_fields(rv) == (12, 1, 20, 11, True, False), rv
    assert status(node)["state"] == "CANDIDATE"


def lead_under_libraft(node: Node, conf: Configuration, p2: Peer, p3: Peer,
                       pool: ThreadPoolExecutor) -> None:
    # Our vote makes it leader; it sends heartbeats, server 2 acknowledges
    # what it gets from now on, server 3 stays silent.
    p2.follow_term = 12
    p2.send(RequestVoteResult(12, True))
    wait_status(node, lambda s: s["state"] == "LEADER", "leadership")
    hb = p2.expect(AppendEntries)
    assert (hb.term, hb.prev_log_index, hb.prev_log_term, hb.leader_commit,
            len(hb.entries)) == (12, 20, 11, 20, 0), hb
    # A write commits on server 2's acknowledgement alone.
    applied = pool.submit(node.request, {"op": "apply", "n": 1})
    ae = p2.expect(AppendEntries, lambda m: len(m.entries) > 0)
    assert (ae.term, ae.prev_log_index, ae.prev_log_term) == (12, 20, 11), ae
    assert [(e.term, e.type, bytes(e.payload)) for e in ae.entries] == \
        [(12, EntryType.COMMAND, u64(1))]
    assert applied.result(timeout=WAIT_S) == {"ok": True, "values": [1001]}
    # Four more: libraft takes a snapshot (threshold 4, trailing 1).
    assert pool.submit(node.request, {"op": "apply", "n": 4}).result(timeout=WAIT_S) == \
        {"ok": True, "values": [1002, 1003, 1004, 1005]}
    # Server 3 refuses what libraft last sent it, its log ending at 3: the
    # entries it lacks are gone, so libraft sends it the snapshot.
    p3.drain()
    probe = p3.expect(AppendEntries)
    p3.send(AppendEntriesResult(12, probe.prev_log_index, 3))
    snap = p3.expect(InstallSnapshot)
    assert (snap.term, snap.last_term, snap.conf_index, snap.conf) == (12, 12, 1, conf), snap
    assert 21 <= snap.last_index <= 25
    assert bytes(snap.data) == u64(1000 + snap.last_index - 20), snap
    # Our success reply: libraft goes on from the snapshot's index.
    p3.drain()
    p3.send(AppendEntriesResult(12, 0, snap.last_index))
    ae = p3.expect(AppendEntries, lambda m: m.prev_log_index == snap.last_index)
    assert ae.term == 12, ae
    # A transfer to server 2 (up to date): libraft sends it TimeoutNow.
    pool.submit(node.request, {"op": "transfer", "id": 2})  # its reply: not awaited
    tn = p2.expect(TimeoutNow)
    assert (tn.term, tn.last_log_index, tn.last_log_term) == (12, 25, 12), tn
