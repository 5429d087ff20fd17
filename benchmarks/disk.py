"""Disk benchmark: durable 4 KiB appends through raftpy's AIO writer.

    python benchmarks/disk.py [--dir DIR] [--writes N] [--loop uvloop|asyncio] [--json]

Like libraft's os_disk_write, it writes sequentially into a preallocated file
and waits for each write to be durable.  The AIO writer runs at queue depths
1, 8 and 32 (latency p50/p99 from submit to durable, and throughput); in the
same run two synchronous loops give the floor of this disk: buffered
pwrite + fdatasync, and O_DIRECT pwritev2 with RWF_DSYNC.  Each case runs on a
file whose space was reserved with fallocate and on one written once with
zeros (DESIGN.md: the first write into an unwritten extent costs a journal
commit).  The ratio column is writes/s over the fdatasync loop's.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

from _common import Report, parser, percentile

from raftpy.io import aio

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
    finally:
        os.rmdir(directory)
    report.print_table()


def _add(report: Report, name: str, lat: list[float], rate: float, floor: float) -> None:
    lat = sorted(lat)
    report.add(name, rate, "writes/s", p50_us=percentile(lat, 50) * 1e6,
               p99_us=percentile(lat, 99) * 1e6, vs_fdatasync=rate / floor)


if __name__ == "__main__":
    main()
