"""Child process for tests/io/test_disk_crash.py: write to a DiskStore until killed.

Usage: python crash_child.py DIR SEED [--mode append|mixed] [--no-aio] [--uvloop]
       [--segment-kib N]

The child opens DIR (small segments, so that they fill and close often), loads
it with auto-recovery off (so any damage a crash left behind is an error, not
a silent repair), and then writes forever, with several appends in flight.
Every entry's content is a pure function of its index (and, in ``mixed``
mode, of the generation, bumped by each truncation), so the parent can check
every entry it finds.  After each durable operation the child prints one line
and flushes it, so everything the parent has read was acknowledged:

    loaded START N TERM VOTE      after load (START: first index, N entries)
    ack LAST N GEN                append of entries LAST-N+1..LAST (generation GEN) durable
    term T                        set_term(T) durable
    vote T V                      set_vote(V) durable, in term T
    truncating K GEN              about to call truncate(K); later appends get GEN
    truncated K                   truncate(K) durable
    snapshotting I                about to call snapshot_put for index I
    snapshot I                    snapshot_put for index I durable

``mixed`` mode drains all appends before a truncation and runs snapshots
alongside appends.  The child never exits on its own: the parent SIGKILLs it.
Any error ends it with a traceback and exit status 1, which fails the test.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys

from raftpy.core.configuration import Configuration
from raftpy.core.types import Entry, EntryType
from raftpy.io.disk import DiskStore, Snapshot

CONF = Configuration.of((1, "127.0.0.1:9001"), (2, "127.0.0.1:9002"), (3, "127.0.0.1:9003"))
_MASK = (1 << 64) - 1


def payload_for(index: int, gen: int = 0) -> bytes:
    """The payload of the entry at index: 0 to 184 bytes, sometimes 8 KiB."""
    if index % 97 == 0:
        words = 1024
    else:
        words = (index * 7919 + gen) % 24
    base = (index * 0x9E3779B97F4A7C15 + gen * 0x2545F4914F6CDD1D) & _MASK
    return b"".join(((base + k) & _MASK).to_bytes(8, "little") for k in range(words))


def entry_for(index: int, gen: int = 0) -> Entry:
    """The entry at index (in generation gen): term, type and payload all derived."""
    type_ = EntryType.BARRIER if index % 17 == 0 else EntryType.COMMAND
    return Entry(1 + gen + index // 500, type_, payload_for(index, gen))


def vote_for(term: int) -> int:
    """Whom the child votes for in term (at most once per term, as Raft does)."""
    return term % 5 + 1


def snapshot_data(index: int) -> bytes:
    return f"state machine at {index}".encode() * 8


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Child:
    def __init__(self, store: DiskStore, rng: random.Random, mode: str,
                 truncate_rate: float = 0.01) -> None:
        self.store = store
        self.rng = rng
        self.mode = mode
        self.truncate_rate = truncate_rate
        self.next_index = 1
        self.gen = 0
        self.term = 0
        self.acked_last = 0          # every entry up to here is durable
        self.snapshot_index = 0
        self.log_terms: dict[int, int] = {}   # index -> term, of entries appended lately
        self.inflight: set[asyncio.Future[None]] = set()
        self.side: asyncio.Future[None] | None = None     # metadata or snapshot job
        self.depth = rng.choice((1, 2, 4, 8, 16, 32))
        self.max_batch = rng.choice((1, 4, 16, 64))

    async def run(self) -> None:
        r = await self.store.load()
        self.next_index = r.start_index + len(r.entries)
        self.term = r.term
        self.acked_last = self.next_index - 1
        self.snapshot_index = r.snapshot.index if r.snapshot is not None else 0
        if r.entries:
            self.gen = r.entries[-1].term - 1 - (self.next_index - 1) // 500
        for k, e in enumerate(r.entries[-2000:]):
            self.log_terms[self.next_index - min(2000, len(r.entries)) + k] = e.term
        out(f"loaded {r.start_index} {len(r.entries)} {r.term} {r.voted_for}")
        while True:
            self.fill()
            if self.side is None or self.side.done():
                if self.side is not None:
                    self.side.result()
                self.side = self.maybe_side_job()
            if self.mode == "mixed" and self.rng.random() < self.truncate_rate:
                await self.truncate()
                continue
            done, self.inflight = await asyncio.wait(
                self.inflight, return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                job.result()          # an append error ends the child with a traceback

    def fill(self) -> None:
        while len(self.inflight) < self.depth:
            n = self.rng.randint(1, self.max_batch)
            first = self.next_index
            batch = [entry_for(i, self.gen) for i in range(first, first + n)]
            for i, e in enumerate(batch, first):
                self.log_terms[i] = e.term
            self.log_terms.pop(first - 2000, None)
            job = asyncio.ensure_future(self.store.append(first, batch))
            job.add_done_callback(self._acker(first + n - 1, n, self.gen))
            self.next_index += n
            self.inflight.add(job)

    def maybe_side_job(self) -> asyncio.Future[None] | None:
        roll = self.rng.random()
        if roll < 0.04:
            return asyncio.ensure_future(self.new_term())
        if self.mode == "mixed" and roll < 0.06 and self.acked_last > self.snapshot_index:
            return asyncio.ensure_future(self.snapshot())
        return None

    async def new_term(self) -> None:
        self.term += 1
        await self.store.set_term(self.term)
        out(f"term {self.term}")
        if self.rng.random() < 0.7:
            vote = vote_for(self.term)
            await self.store.set_vote(vote)
            out(f"vote {self.term} {vote}")

    async def snapshot(self) -> None:
        # Snapshot an index that is durable already, like a state machine
        # snapshotting what it applied.
        # Its term is the term of the entry at its index (the snapshot is of
        # this log; one with another term there contradicts it).
        index = self.acked_last
        trailing = self.rng.choice((1, 8, 64))
        out(f"snapshotting {index}")
        await self.store.snapshot_put(trailing, Snapshot(
            self.log_terms[index], index, CONF, 1, snapshot_data(index)))
        out(f"snapshot {index}")
        self.snapshot_index = index

    async def truncate(self) -> None:
        await asyncio.gather(*self.inflight)
        self.inflight.clear()
        if self.side is not None:
            await self.side
            self.side = None
        # Never below the snapshot: entries it covers are committed.
        low = max(2, self.next_index - 300, self.snapshot_index + 1)
        if low >= self.next_index:
            return
        index = self.rng.randint(low, self.next_index - 1)
        self.gen += 1
        out(f"truncating {index} {self.gen}")
        await self.store.truncate(index)
        out(f"truncated {index}")
        self.next_index = index
        self.acked_last = index - 1

    def _acker(self, last: int, n: int, gen: int):
        def acked(job: asyncio.Future[None]) -> None:
            if not job.cancelled() and job.exception() is None:
                out(f"ack {last} {n} {gen}")
                self.acked_last = max(self.acked_last, last)
        return acked


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("seed", type=int)
    parser.add_argument("--mode", choices=("append", "mixed"), default="append")
    parser.add_argument("--no-aio", action="store_true")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--segment-kib", type=int, default=64)
    parser.add_argument("--truncate-rate", type=float, default=0.01)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    async def go() -> None:
        store = DiskStore(args.dir, segment_size_bytes=args.segment_kib * 1024,
                          auto_recovery=False, use_aio=False if args.no_aio else None,
                          prepared_segments=rng.choice((1, 2)))
        await store.open()
        await Child(store, rng, args.mode, args.truncate_rate).run()

    if args.uvloop:
        import uvloop
        uvloop.run(go())
    else:
        asyncio.run(go())


if __name__ == "__main__":
    main()
