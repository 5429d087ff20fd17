"""Disk benchmark: durable writes through raftpy's AIO writer and DiskStore.

    python benchmarks/disk.py [--dir DIR] [--writes N] [--loop uvloop|asyncio]
                              [--store-seconds S] [--load-mib M] [--json] [--quick]

Like libraft's os_disk_write, it writes sequentially into a preallocated file
and waits for each write to be durable.  The AIO writer runs at queue depths
1, 8 and 32 (latency p50/p99 from submit to durable, and throughput); in the
same run two synchronous loops give the floor of this disk: buffered
pwrite + fdatasync, and O_DIRECT pwritev2 with RWF_DSYNC.  Each case runs on a
file whose space was reserved with fallocate and on one written once with
zeros (DESIGN.md: the first write into an unwritten extent costs a journal
commit).  The ratio column is writes/s over the fdatasync loop's.

Then the store level: DiskStore appends of one 8-byte or 1 KiB entry each,
with 1, 64 and 1024 appends in flight (entries/s and p50/p99 latency from
append() to durable), against the same fdatasync floor; and the time to load a
data directory of --load-mib MiB (1 GiB by default), in MB/s.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

from _common import Report, parser, percentile

from raftpy.core.types import Entry
from raftpy.io import aio
from raftpy.io.disk import DiskStore

BLOCK = 4096


def sync_loop(path: str, n: int, direct: bool) -> list[float]:
    flags = os.O_WRONLY | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags)
    buf = aio.aligned_buffer(BLOCK)
    lat = []
    try:
        for i in range(n):
            t = time.perf_counter()
            if direct:
                os.pwritev(fd, [buf], i * BLOCK, os.RWF_DSYNC)
            else:
                os.pwrite(fd, buf, i * BLOCK)
                os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    return lat


async def aio_run(path: str, caps: aio.FsCaps, n: int, depth: int) -> tuple[list[float], float]:
    fd = aio.open_for_writing(path, caps)
    writer = aio.AioWriter(depth=depth, use_aio=caps.async_io)
    bufs = [aio.aligned_buffer(BLOCK) for _ in range(depth)]
    lat: list[float] = []
    next_i = 0

    async def worker(k: int) -> None:
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            t = time.perf_counter()
            await writer.write(fd, bufs[k], i * BLOCK)
            lat.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(depth)))
    elapsed = time.perf_counter() - start
    await writer.close()
    os.close(fd)
    return lat, elapsed


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dir", default=None, help="directory on the disk to measure "
                   "(default: a temporary directory under the current one)")
    p.add_argument("--writes", type=int, default=2000)
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--store-seconds", type=float, default=2.0,
                   help="duration of each store append case")
    p.add_argument("--load-mib", type=int, default=1024, help="size of the loaded directory")
    args = p.parse_args()
    n = 300 if args.quick else args.writes
    directory = tempfile.mkdtemp(prefix="raftpy-bench-", dir=args.dir or ".")
    caps = aio.probe(directory)
    report = Report(f"raftpy disk benchmark: {n} durable {BLOCK}-byte writes in {directory} "
                    f"({caps}, loop {args.loop})", args.json)
    run = asyncio.run
    if args.loop == "uvloop":
        import uvloop
        run = uvloop.run
    try:
        floor = _raw_cases(report, directory, caps, n, run)
        _store_cases(report, directory, run, floor, 0.5 if args.quick else args.store_seconds)
        _load_case(report, directory, run, min(16, args.load_mib) if args.quick else args.load_mib)
    finally:
        os.rmdir(directory)
    report.print_table()


def _raw_cases(report: Report, directory: str, caps: aio.FsCaps, n: int, run) -> float:
    """The AIO writer and the synchronous floors; returns the zeroed fdatasync rate."""
    zeroed_floor = 0.0
    for prep in ("fallocate", "zeroed"):
        floor = None
        cases: list[tuple[str, object]] = [("fdatasync loop", False)]
        if caps.direct_io:
            cases.append(("O_DIRECT RWF_DSYNC loop", True))
        for name, direct in cases:
            path = os.path.join(directory, f"sync-{prep}-{direct}")
            aio.prepare_file(path, n * BLOCK, caps, zero_fill=prep == "zeroed")
            lat = sync_loop(path, n, bool(direct))
            os.unlink(path)
            rate = n / sum(lat)
            floor = floor or rate
            _add(report, f"{prep}: {name}", lat, rate, floor)
        for depth in (1, 8, 32):
            path = os.path.join(directory, f"aio-{prep}-{depth}")
            aio.prepare_file(path, n * BLOCK, caps, zero_fill=prep == "zeroed")
            lat, elapsed = run(aio_run(path, caps, n, depth))
            os.unlink(path)
            mode = "AIO" if caps.async_io else "threads"
            _add(report, f"{prep}: writer {mode} depth {depth}", lat, n / elapsed, floor)
        zeroed_floor = floor
    return zeroed_floor


async def _store_run(path: str, size: int, inflight: int, seconds: float,
                     ) -> tuple[list[float], int, float]:
    store = DiskStore(path)
    await store.open()
    await store.load()
    payload = b"e" * size
    lat: list[float] = []
    done = 0
    deadline = time.perf_counter() + seconds

    async def appender() -> None:
        nonlocal done
        while time.perf_counter() < deadline and done < 2_000_000:
            t = time.perf_counter()
            await store.append(store.next_index, [Entry(1, 1, payload)])
            lat.append(time.perf_counter() - t)
            done += 1
    start = time.perf_counter()
    await asyncio.gather(*(appender() for _ in range(inflight)))
    elapsed = time.perf_counter() - start
    await store.close()
    return lat, done, elapsed


def _store_cases(report: Report, directory: str, run, floor: float, seconds: float) -> None:
    for size in (8, 1024):
        for inflight in (1, 64, 1024):
            path = os.path.join(directory, f"store-{size}-{inflight}")
            os.mkdir(path)
            lat, done, elapsed = run(_store_run(path, size, inflight, seconds))
            _rmtree(path)
            _add(report, f"store: {size}B entries, {inflight} appends in flight", lat,
                 done / elapsed, floor, unit="entries/s")


async def _fill(path: str, mib: int) -> None:
    store = DiskStore(path)
    await store.open()
    await store.load()
    batch = [Entry(1, 1, b"L" * 1024)] * 1024          # 1 MiB per append
    await asyncio.gather(*(store.append(1 + k * len(batch), batch) for k in range(mib)))
    await store.close()


async def _load(path: str) -> int:
    store = DiskStore(path)
    await store.open()
    result = await store.load()
    await store.close()
    return len(result.entries)


def _load_case(report: Report, directory: str, run, mib: int) -> None:
    path = os.path.join(directory, "load")
    os.mkdir(path)
    try:
        run(_fill(path, mib))
        nbytes = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
        # The first load reads from the disk (O_DIRECT writes left nothing in the
        # page cache); the second measures raftpy's own cost with the files cached.
        for what in ("from disk", "cached"):
            start = time.perf_counter()
            count = run(_load(path))
            elapsed = time.perf_counter() - start
            report.add(f"store: load {nbytes / 2**20:.0f} MiB directory, {what} "
                       f"({count} entries)", nbytes / elapsed / 1e6, "MB/s", seconds=elapsed)
    finally:
        _rmtree(path)


def _rmtree(path: str) -> None:
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


def _add(report: Report, name: str, lat: list[float], rate: float, floor: float,
         unit: str = "writes/s") -> None:
    lat = sorted(lat)
    report.add(name, rate, unit, p50_us=percentile(lat, 50) * 1e6,
               p99_us=percentile(lat, 99) * 1e6, vs_fdatasync=rate / floor)


if __name__ == "__main__":
    main()
