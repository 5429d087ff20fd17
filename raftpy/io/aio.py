"""Durable positional writes for segment files: Linux AIO on an event loop.

What lives here:
- ``probe(dir)``: the filesystem capability probe libraft runs at start-up
  (spec §3.13): can we fallocate, use O_DIRECT (and with which block size),
  and submit AIO writes with RWF_NOWAIT|RWF_DSYNC?
- ``aligned_buffer(size)``: page-aligned zeroed memory, as O_DIRECT needs.
- ``prepare_file(path, size, caps)``: create a preallocated segment file.
- ``AioWriter``: ``await writer.write(fd, buf, offset)`` returns once the
  bytes are durable; ``writer.submit(fd, buf, offset, done)`` starts the same
  write without a task or future and calls ``done(error or None)`` from the
  completion (the store's hot path: no loop iteration between the kernel's
  completion and the store's bookkeeping).  With AIO the write is submitted with RWF_DSYNC (and
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
import logging
import mmap
import os
from collections import deque
from collections.abc import Callable
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

__all__ = ["FsCaps", "probe", "aligned_buffer", "prepare_file", "open_for_writing", "AioWriter",
           "WriteDone", "settle"]

log = logging.getLogger(__name__)

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
                 fs: Fs = OS, zero_bytes: int | None = None) -> None:
    """Create path (must not exist) with size bytes reserved, durably.

    With zero_fill the space is written once with zeros: later durable writes
    into it then skip the journal commit that converting an unwritten extent
    costs (DESIGN.md: about 2x the write rate); it costs one sequential pass.
    zero_bytes (a multiple of the block size; all of it by default) limits
    the zeros to the file's start when fallocate reserves the rest: reads of
    reserved space give zeros too, so the file's content is the same, and a
    write past the zeroed start only pays that journal commit.
    """
    if not zero_fill or not caps.fallocate or zero_bytes is None:
        zero_bytes = size
    zero_bytes = min(size, zero_bytes)
    # The zeros go around the page cache when they can: a buffered pass
    # leaves size bytes of cached zero pages, which each later O_DIRECT write
    # into the segment must first invalidate, and copying them in costs
    # several ms of kernel time per segment (a segment is started at every
    # snapshot, so about once per 1024 entries under libraft's policy).
    direct = zero_fill and caps.direct_io and zero_bytes % caps.block_size == 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | (os.O_DIRECT if direct else 0)
    fd = fs.open(path, flags, 0o600)
    try:
        if zero_fill:
            if caps.fallocate:          # reserve first: a full disk fails here, whole
                fs.posix_fallocate(fd, 0, size)
            n = max(1, min(zero_bytes, 1 << 20))
            chunk = memoryview(aligned_buffer(n) if direct else bytes(n))
            off = 0
            while off < zero_bytes:
                written = fs.pwrite(fd, chunk[:zero_bytes - off], off)
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


WriteDone = Callable[[RaftError | None], None]
"""Called once per write, on the loop thread: None once durable, else the error."""


class AioWriter:
    """Durable writes; one AIO context shared by any number of files.

    Two ways in: ``await write(...)``, and ``submit(..., done)``, which starts
    the write at once (no task, no future) and calls ``done`` from the
    completion itself: the eventfd reader, or the worker thread's result.
    Both keep at most ``depth`` writes in flight; later ones wait in order."""

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
        # ident -> (done, fd, view, offset, fs token), while the kernel has it
        self._inflight: dict[int, tuple[WriteDone, int, memoryview, int, int]] = {}
        self._waiting: deque[tuple[int, memoryview, int, WriteDone]] = deque()
        self._running = 0
        self._next_id = 1
        self._closed = False
        self._drained: list[asyncio.Future[None]] = []   # close() waits here
        self.fallbacks = 0  # writes that ran in the thread pool (no AIO, or EAGAIN)

    async def write(self, fd: int, buf: bytes | bytearray | memoryview | mmap.mmap,
                    offset: int) -> None:
        """Write buf at offset of fd; return when the data is durable."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self.submit(fd, buf, offset, functools.partial(settle, fut))
        await fut

    def submit(self, fd: int, buf: bytes | bytearray | memoryview | mmap.mmap,
               offset: int, done: WriteDone) -> None:
        """Start writing buf at offset of fd now (or once a slot of ``depth`` is
        free); ``done(None)`` once durable, ``done(error)`` if not.  ``done``
        is never called from inside submit; buf must not change until then."""
        if self._closed:
            raise IOError_("writer is closed")
        view = memoryview(buf)
        if self._running >= self._depth:
            self._waiting.append((fd, view, offset, done))
            return
        self._start(fd, view, offset, done)

    def _start(self, fd: int, view: memoryview, offset: int, done: WriteDone) -> None:
        self._running += 1
        token = 0
        if self._traced:
            try:
                token = self._fs.write_started(fd, view, offset)
            except RaftError as err:      # a recorder's injected failure: a failed write
                self._loop.call_soon(self._finished, done, 0, err)
                return
        if self._ctx is None:
            self._in_thread(fd, view, offset, done, token)
            return
        ident = self._next_id
        self._next_id += 1
        rv = self._ctx.submit(fd, view, offset, ident)
        if rv == 0:
            self._inflight[ident] = (done, fd, view, offset, token)
        elif rv == -errno.EAGAIN:
            self._in_thread(fd, view, offset, done, token)
        else:
            self._loop.call_soon(self._finished, done, token,
                                 _bindings.error_from_errno(-rv, "io_submit"))

    def _in_thread(self, fd: int, view: memoryview, offset: int, done: WriteDone,
                   token: int) -> None:
        self.fallbacks += 1
        job = self._loop.run_in_executor(self._pool, _bindings.pwrite_sync, fd, view, offset)
        job.add_done_callback(functools.partial(self._thread_done, done, token))

    def _thread_done(self, done: WriteDone, token: int, job: asyncio.Future[None]) -> None:
        exc = job.exception()
        if exc is not None and not isinstance(exc, RaftError):
            exc = IOError_(f"write failed: {exc!r}")
        self._finished(done, token, exc)

    def _on_ready(self) -> None:
        assert self._ctx is not None
        for ident, res in self._ctx.reap():
            done, fd, view, offset, token = self._inflight.pop(ident)
            if res == -errno.EAGAIN:   # the kernel would have blocked: finish in a thread
                self._in_thread(fd, view, offset, done, token)
                continue
            self._finished(done, token, _write_error(res, len(view)))

    def _finished(self, done: WriteDone, token: int, err: BaseException | None) -> None:
        """A write ended: free its slot, start the next waiting one, report it."""
        self._running -= 1
        if self._waiting and not self._closed:
            self._start(*self._waiting.popleft())
        if err is None and self._traced:
            self._fs.write_durable(token)     # not reached when the write failed
        try:
            done(err if err is None or isinstance(err, RaftError)
                 else IOError_(f"write failed: {err!r}"))
        except Exception:         # the caller's bug must not stop other completions
            log.exception("write completion callback failed")
        if not self._running and self._drained:
            _resolve_all(self._drained)

    async def close(self) -> None:
        """Wait for writes in flight, then release the context and threads."""
        self._closed = True
        waiting, self._waiting = self._waiting, deque()
        for *_, done in waiting:          # never started: nothing reached the disk
            self._loop.call_soon(done, IOError_("writer is closed"))
        while self._running:
            fut: asyncio.Future[None] = self._loop.create_future()
            self._drained.append(fut)
            await fut
        if self._ctx is not None:
            self._loop.remove_reader(self._ctx.fileno())
            self._ctx.close()
            self._ctx = None
        self._pool.shutdown(wait=True)


def settle(fut: asyncio.Future[None], err: RaftError | None) -> None:
    """A WriteDone for a future: finish fut with the outcome (unless it is done)."""
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(err)


def _resolve_all(futures: list[asyncio.Future[None]]) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_result(None)
    futures.clear()


def copy_result(job: asyncio.Future[None], fut: asyncio.Future[None]) -> None:
    """Done-callback: finish fut as job finished (unless fut is already done)."""
    if fut.done():
        return
    exc = job.exception()
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
