"""Disk benchmark: durable writes through raftpy's AIO writer and DiskStore.

    python benchmarks/disk.py [--dir DIR] [--writes N] [--loop uvloop|asyncio]
                              [--store-seconds S] [--load-gib G] [--json] [--quick]
                              [--only writer|store|load]

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
append() to durable).  Beside them, in the same run, a plain loop writes the
same bytes (the batch one append encodes: 40 or 1056 bytes), each one
pwrite at the end of the last + fdatasync, into a file prepared as the store
prepares its segments (zero-filled); vs_plain is entries/s over that loop's
writes/s, p50_vs_plain that loop's p50 over the store's (both: above 1 means
the store is faster).  The "C loop" rows do one durable 4 KiB write at a
time with no Python at all (synchronous O_DIRECT RWF_DSYNC, and kernel AIO
waited for in epoll as the writer does): the ceiling of any AIO writer on
this disk, and in the target rows c_aio_vs_plain (that ceiling against the
plain loop) and vs_c_aio (the store against it).

Last, loading a data directory of --load-gib GiB (1 by default; 16 MiB with
--quick) filled through the store with 1 KiB entries: its files read
sequentially (buffered, 1 MiB reads, after posix_fadvise DONTNEED so that they
come from the disk) against DiskStore.load (after DONTNEED again), in MB/s of
the directory's bytes; then both with the files in the page cache.

The "target" rows give issue 11's disk-store ratios: 1 append in flight at
least 0.8x the plain loop; load at least 0.5x the sequential read.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

from _common import Report, parser, percentile

from raftpy import _bindings
from raftpy.core.types import Entry
from raftpy.io import aio
from raftpy.io.disk import DEFAULT_SEGMENT_SIZE, DiskStore

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
    p.add_argument("--load-gib", type=float, default=1.0,
                   help="size of the loaded directory in GiB (--quick: at most 16 MiB)")
    p.add_argument("--only", choices=["writer", "store", "load"], default=None,
                   help="run one part: the AIO writer and sync loops, the store appends "
                   "(with their plain loops), or the load (default: all three)")
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
        floor = float("nan")
        if args.only in (None, "writer"):
            floor = _raw_cases(report, directory, caps, n, run)
        if args.only in (None, "store"):
            _store_cases(report, directory, caps, run, floor,
                         0.5 if args.quick else args.store_seconds)
        if args.only in (None, "load"):
            mib = max(1, round(args.load_gib * 1024))
            _load_case(report, directory, run, min(16, mib) if args.quick else mib)
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
        if caps.direct_io:
            c_cases = [("C loop, O_DIRECT RWF_DSYNC", False)]
            if caps.async_io:
                c_cases.append(("C loop, AIO + epoll, no Python", True))
            for name, use_aio in c_cases:
                lat = c_loop(os.path.join(directory, f"c-{prep}-{use_aio}"), caps, n,
                             prep == "zeroed", use_aio)
                _add(report, f"{prep}: {name}", lat, n / sum(lat), floor)
        for depth in (1, 8, 32):
            path = os.path.join(directory, f"aio-{prep}-{depth}")
            aio.prepare_file(path, n * BLOCK, caps, zero_fill=prep == "zeroed")
            lat, elapsed = run(aio_run(path, caps, n, depth))
            os.unlink(path)
            mode = "AIO" if caps.async_io else "threads"
            _add(report, f"{prep}: writer {mode} depth {depth}", lat, n / elapsed, floor)
        zeroed_floor = floor
    return zeroed_floor


def c_loop(path: str, caps: aio.FsCaps, n: int, zeroed: bool, use_aio: bool) -> list[float]:
    """n durable BLOCK writes one at a time, the whole loop in C
    (_bindings.durable_write_loop): what a writer costs without Python."""
    aio.prepare_file(path, n * BLOCK, caps, zero_fill=zeroed)
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    try:
        buf = aio.aligned_buffer(BLOCK)
        buf[:] = b"w" * BLOCK
        return _bindings.durable_write_loop(fd, memoryview(buf), n, use_aio)
    finally:
        os.close(fd)
        os.unlink(path)


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


def plain_loop(path: str, caps: aio.FsCaps, batch: bytes, seconds: float
               ) -> tuple[list[float], float]:
    """batch written again and again after the last one, each pwrite followed
    by fdatasync, into a file prepared as DiskStore prepares a segment (8 MiB,
    zero-filled), after its 8-byte format word; bounded by seconds and the file."""
    aio.prepare_file(path, DEFAULT_SEGMENT_SIZE, caps, zero_fill=True)
    fd = os.open(path, os.O_WRONLY)
    lat: list[float] = []
    offset = 8
    try:
        os.pwrite(fd, (1).to_bytes(8, "little"), 0)
        os.fdatasync(fd)
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline and offset + len(batch) <= DEFAULT_SEGMENT_SIZE:
            t = time.perf_counter()
            os.pwrite(fd, batch, offset)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
            offset += len(batch)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        os.unlink(path)
    return lat, elapsed


def _store_cases(report: Report, directory: str, caps: aio.FsCaps, run, floor: float,
                 seconds: float) -> None:
    for size in (8, 1024):
        batch = bytes(_bindings.encode_batch([Entry(1, 1, b"e" * size)]))
        plain_lat, plain_elapsed = plain_loop(os.path.join(directory, f"plain-{size}"), caps,
                                              batch, seconds)
        plain_rate = len(plain_lat) / plain_elapsed
        plain_p50 = percentile(sorted(plain_lat), 50)
        _add(report, f"store: plain pwrite+fdatasync loop, the same {len(batch)}-byte batch",
             plain_lat, plain_rate, floor)
        c_rate = c_p50 = float("nan")
        if caps.direct_io and caps.async_io:
            # The ceiling of any store on kernel AIO: the same writes as the
            # store's (one zeroed block each), in C, right after the plain loop.
            lat = c_loop(os.path.join(directory, f"c-store-{size}"), caps,
                         min(len(plain_lat), 4000), True, True)
            c_rate, c_p50 = len(lat) / sum(lat), percentile(sorted(lat), 50)
            _add(report, "store: C loop, AIO + epoll, one 4 KiB block per write", lat, c_rate,
                 floor, vs_plain=c_rate / plain_rate, p50_vs_plain=plain_p50 / c_p50)
        for inflight in (1, 64, 1024):
            path = os.path.join(directory, f"store-{size}-{inflight}")
            os.mkdir(path)
            lat, done, elapsed = run(_store_run(path, size, inflight, seconds))
            _rmtree(path)
            p50 = percentile(sorted(lat), 50)
            rate = done / elapsed
            _add(report, f"store: {size}B entries, {inflight} appends in flight", lat,
                 rate, floor, unit="entries/s", vs_plain=rate / plain_rate,
                 p50_vs_plain=plain_p50 / p50)
            if inflight == 1:
                report.add(f"target: 1 append in flight ({size}B) / plain loop, rate (>= 0.8)",
                           rate / plain_rate, "x", p50_vs_plain=plain_p50 / p50,
                           c_aio_vs_plain=c_rate / plain_rate, vs_c_aio=rate / c_rate)


async def _fill(path: str, mib: int) -> None:
    store = DiskStore(path)
    await store.open()
    await store.load()
    batch = [Entry(1, 1, b"L" * 1024)] * 1024          # 1 MiB per append
    await asyncio.gather(*(store.append(1 + k * len(batch), batch) for k in range(mib)))
    await store.close()


async def _load(path: str) -> tuple[int, float]:
    """(entries loaded, seconds of DiskStore.load alone: not open, which probes
    the directory, nor close, which waits for the segments load starts preparing)."""
    store = DiskStore(path)
    await store.open()
    start = time.perf_counter()
    result = await store.load()
    elapsed = time.perf_counter() - start
    await store.close()
    return len(result.entries), elapsed


def _load_case(report: Report, directory: str, run, mib: int) -> None:
    path = os.path.join(directory, "load")
    os.mkdir(path)
    try:
        run(_fill(path, mib))
        files = [os.path.join(path, f) for f in sorted(os.listdir(path))]
        nbytes = sum(os.path.getsize(f) for f in files)
        label = f"{nbytes / 2**20:.0f} MiB directory ({len(files)} files)"
        rates: dict[str, float] = {}
        # From the disk first (each after dropping the files from the page
        # cache), then again with them cached: raftpy's own cost.
        for cached in (False, True):
            where = "cached" if cached else "from disk"
            for what in ("sequential read", "DiskStore.load"):
                if not cached:
                    _drop_cache(files)
                if what == "DiskStore.load":
                    count, elapsed = run(_load(path))
                else:
                    start = time.perf_counter()
                    count = _read_all(files)
                    elapsed = time.perf_counter() - start
                rates[f"{what} {where}"] = nbytes / elapsed / 1e6
                unit_count = "entries" if what == "DiskStore.load" else "bytes"
                report.add(f"store: {what} of the {label}, {where} ({count} {unit_count})",
                           nbytes / elapsed / 1e6, "MB/s", seconds=elapsed)
        for where in ("from disk", "cached"):
            report.add(f"target: load / sequential read, {where} (>= 0.5)",
                       rates[f"DiskStore.load {where}"] / rates[f"sequential read {where}"],
                       "x")
    finally:
        _rmtree(path)


def _drop_cache(files: list[str]) -> None:
    """Evict the files' pages (clean ones: the store synced them) from the page cache."""
    for name in files:
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _read_all(files: list[str]) -> int:
    """Read every file sequentially in 1 MiB reads; returns the bytes read."""
    buf = bytearray(1 << 20)
    total = 0
    for name in files:
        with open(name, "rb", buffering=0) as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            while n := f.readinto(buf):
                total += n
    return total


def _rmtree(path: str) -> None:
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


def _add(report: Report, name: str, lat: list[float], rate: float, floor: float,
         unit: str = "writes/s", **extra: float) -> None:
    lat = sorted(lat)
    report.add(name, rate, unit, p50_us=percentile(lat, 50) * 1e6,
               p99_us=percentile(lat, 99) * 1e6, vs_fdatasync=rate / floor, **extra)


if __name__ == "__main__":
    main()
