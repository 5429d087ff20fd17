"""Durable positional writes for segment files: Linux AIO on an event loop.

What lives here:
- ``probe(dir)``: the filesystem capability probe libraft runs at start-up
  (spec §3.13): can we fallocate, use O_DIRECT (and with which block size),
  and submit AIO writes with RWF_NOWAIT|RWF_DSYNC?
- ``aligned_buffer(size)``: page-aligned zeroed memory, as O_DIRECT needs.
- ``prepare_file(path, size, caps)``: create a preallocated segment file.
- ``AioWriter``: ``await writer.write(fd, buf, offset)`` returns once the
  bytes are durable.  With AIO the write is submitted with RWF_DSYNC (and
  RWF_NOWAIT) and its completion arrives on an eventfd watched through
  ``loop.add_reader``; without AIO, or when the kernel answers EAGAIN, the
  write runs as pwrite + fdatasync in a worker thread.  Works on uvloop and
  on the plain asyncio loop.

Rules: a buffer handed to ``write`` must not change until the write returns
(the kernel reads it asynchronously); the number of writes in flight never
exceeds ``depth`` (later ones wait their turn); every failure reaches the
awaiting caller as a raftpy error.

Every call that decides what survives a crash (creating, writing, syncing
segment files; the writer's durable writes) goes through an ``fs.Fs`` object,
``fs.OS`` unless a test passes a recorder.

May import: raftpy._bindings, raftpy.errors, raftpy.io.fs, the standard library.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import mmap
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from raftpy import _bindings
from raftpy.errors import (
    InvalidError,
    IOError_,
    NoSpaceError,
    NotFoundError,
    RaftError,
    UnauthorizedError,
)
from raftpy.io.fs import OS, Fs

__all__ = ["FsCaps", "probe", "aligned_buffer", "prepare_file", "open_for_writing", "AioWriter"]

TMPFS_MAGIC = 0x01021994
ZFS_MAGIC = 0x2FC12FC1
UBIFS_MAGIC = 0x24051905
_NO_DIRECT_FS = (TMPFS_MAGIC, ZFS_MAGIC, UBIFS_MAGIC)
_PROBE_SIZES = (4096, 2048, 1024, 512)


@dataclass(frozen=True, slots=True)
class FsCaps:
    """What the filesystem under a data directory supports."""

    fallocate: bool
    direct_io: bool
    async_io: bool
    block_size: int


def aligned_buffer(size: int) -> mmap.mmap:
    """Zeroed, page-aligned memory of size bytes (anonymous mmap)."""
    if size <= 0:
        raise InvalidError(f"buffer size must be positive, not {size}")
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def _check_dir(path: str) -> None:
    if not os.path.exists(path):
        raise NotFoundError(f"directory '{path}' does not exist")
    if not os.path.isdir(path):
        raise InvalidError(f"'{path}' is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidError(f"directory '{path}' is not writable")


def _probe_fallocate(path: str) -> bool:
    name = os.path.join(path, ".probe_fallocate")
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, 4096)
        return True
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise NoSpaceError(f"not enough space to probe '{path}'") from err
        return False
    finally:
        os.close(fd)
        os.unlink(name)


def _probe_block_size(fd: int) -> int:
    """Set O_DIRECT on fd and find the smallest... largest working block size.

    Returns 0 when the filesystem does not do direct I/O."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise IOError_(f"set O_DIRECT: {err.strerror}") from err
        if _bindings.fs_type(fd) in _NO_DIRECT_FS:
            return 0
        raise IOError_("unsupported file system") from err
    buf = aligned_buffer(4096)
    for size in _PROBE_SIZES:
        try:
            os.pwrite(fd, memoryview(buf)[:size], 0)
            return size
        except OSError as err:
            if err.errno in (errno.EIO, errno.EOPNOTSUPP):
                continue
            if err.errno == errno.EINVAL and size == 4096:
                return 0
            if err.errno == errno.ENOSPC:
                raise NoSpaceError("not enough space to probe direct I/O") from err
            raise IOError_(f"probe direct I/O: {err.strerror}") from err
    return 0


def probe(path: str) -> FsCaps:
    """Probe the filesystem holding directory path (spec §3.13)."""
    _check_dir(path)
    try:
        fallocate = _probe_fallocate(path)
        name = os.path.join(path, ".probe")
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    except PermissionError as err:
        raise UnauthorizedError(f"directory '{path}': {err.strerror}") from err
    try:
        os.unlink(name)
        try:
            os.posix_fallocate(fd, 0, 4096) if fallocate else os.pwrite(fd, bytes(4096), 0)
        except OSError as err:
            raise NoSpaceError(f"not enough space to probe '{path}'") from err
        block_size = _probe_block_size(fd)
        async_io = False
        if block_size:
            async_io = _bindings.aio_probe(fd, memoryview(aligned_buffer(block_size)))
        return FsCaps(fallocate, block_size > 0, async_io, block_size or 4096)
    finally:
        os.close(fd)


def prepare_file(path: str, size: int, caps: FsCaps, zero_fill: bool = False,
                 fs: Fs = OS) -> None:
    """Create path (must not exist) with size bytes reserved, durably.

    With zero_fill the space is written once with zeros: later durable writes
    into it then skip the journal commit that converting an unwritten extent
    costs (DESIGN.md: about 2x the write rate); it costs one sequential pass.
    """
    fd = fs.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if zero_fill:
            if caps.fallocate:          # reserve first: a full disk fails here, whole
                fs.posix_fallocate(fd, 0, size)
            chunk = bytes(min(size, 1 << 20))
            off = 0
            while off < size:
                written = fs.pwrite(fd, chunk[:size - off], off)
                if written == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                off += written
        elif caps.fallocate:
            fs.posix_fallocate(fd, 0, size)
        else:   # libraft's emulation: touch one byte per block
            for off in range(0, size, 4096):
                fs.pwrite(fd, b"\0", off)
            if size % 4096 == 0 and size:
                fs.pwrite(fd, b"\0", size - 1)
        fs.fsync(fd)
    except OSError as err:
        fs.close(fd)
        fs.unlink(path)
        if err.errno == errno.ENOSPC:
            raise NoSpaceError(f"not enough space to allocate {size} bytes") from err
        raise IOError_(f"prepare {path}: {err.strerror}") from err
    fs.close(fd)
    fs.fsync_dir(os.path.dirname(os.path.abspath(path)))


def open_for_writing(path: str, caps: FsCaps, fs: Fs = OS) -> int:
    """Open an existing file for durable writes, with O_DIRECT if caps allow."""
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_DIRECT if caps.direct_io else 0)
    try:
        return fs.open(path, flags)
    except OSError as err:
        raise IOError_(f"open {path}: {err.strerror}") from err


def _write_error(res: int, length: int) -> RaftError | None:
    if res < 0:
        return _bindings.error_from_errno(-res, "write failed")
    if res < length:
        return NoSpaceError(f"short write: {res} bytes instead of {length}")
    return None


class AioWriter:
    """Awaitable durable writes; one AIO context shared by any number of files."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, depth: int = 32,
                 use_aio: bool = True, threads: int = 4, fs: Fs = OS) -> None:
        if depth < 1:
            raise InvalidError(f"depth must be at least 1, not {depth}")
        self._loop = loop or asyncio.get_running_loop()
        self._fs = fs
        self._traced = fs.traces_writes
        self._depth = depth
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="raftpy-io")
        self._ctx: _bindings.AioContext | None = None
        self.uses_aio = use_aio   # False: every write runs as pwrite + fdatasync in a thread
        if use_aio:
            self._ctx = _bindings.AioContext(depth)
            self._loop.add_reader(self._ctx.fileno(), self._on_ready)
        self._inflight: dict[int, tuple[asyncio.Future[None], int, memoryview, int, int]] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._running = 0
        self._next_id = 1
        self._closed = False
        self.fallbacks = 0  # writes that ran in the thread pool (no AIO, or EAGAIN)

    async def write(self, fd: int, buf: bytes | bytearray | memoryview | mmap.mmap,
                    offset: int) -> None:
        """Write buf at offset of fd; return when the data is durable."""
        if self._closed:
            raise IOError_("writer is closed")
        while self._running >= self._depth:
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            await waiter
        self._running += 1
        try:
            view = memoryview(buf)
            token = self._fs.write_started(fd, view, offset) if self._traced else 0
            if self._ctx is None:
                await self._in_thread(fd, view, offset)
            else:
                fut = self._loop.create_future()
                ident = self._next_id
                self._next_id += 1
                rv = self._ctx.submit(fd, view, offset, ident)
                if rv == -errno.EAGAIN:
                    await self._in_thread(fd, view, offset)
                elif rv < 0:
                    raise _bindings.error_from_errno(-rv, "io_submit")
                else:
                    self._inflight[ident] = (fut, fd, view, offset, len(view))
                    await fut
            if self._traced:
                self._fs.write_durable(token)     # not reached when the write failed
        finally:
            self._running -= 1
            if self._waiters:
                w = self._waiters.popleft()
                if not w.done():
                    w.set_result(None)

    async def _in_thread(self, fd: int, view: memoryview, offset: int) -> None:
        self.fallbacks += 1
        await self._loop.run_in_executor(self._pool, _bindings.pwrite_sync, fd, view, offset)

    def _on_ready(self) -> None:
        assert self._ctx is not None
        for ident, res in self._ctx.reap():
            fut, fd, view, offset, length = self._inflight.pop(ident)
            if fut.done():
                continue
            if res == -errno.EAGAIN:   # the kernel would have blocked: finish in a thread
                self.fallbacks += 1
                job = self._loop.run_in_executor(self._pool, _bindings.pwrite_sync,
                                                 fd, view, offset)
                job.add_done_callback(functools.partial(copy_result, fut=fut))
                continue
            err = _write_error(res, length)
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)

    async def close(self) -> None:
        """Wait for writes in flight, then release the context and threads."""
        self._closed = True
        while self._inflight:
            await asyncio.gather(*(f for f, *_ in list(self._inflight.values())),
                                 return_exceptions=True)
        if self._ctx is not None:
            self._loop.remove_reader(self._ctx.fileno())
            self._ctx.close()
            self._ctx = None
        self._pool.shutdown(wait=True)


def copy_result(job: asyncio.Future[None], fut: asyncio.Future[None]) -> None:
    """Done-callback: finish fut as job finished (unless fut is already done)."""
    if fut.done():
        return
    exc = job.exception()
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
