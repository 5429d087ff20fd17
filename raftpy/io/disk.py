"""DiskStore: libraft's data directory, written and read by raftpy (spec §3).

What lives here: the stock log and snapshot store.  It keeps term and vote in
metadata1/metadata2, the log in segment files (closed ``first-last`` and
preallocated ``open-N``), and snapshots as ``snapshot-T-I-TS`` + ``.meta``,
byte for byte as libraft's uv backend does, so that either can open a
directory the other wrote.

May import: the standard library, raftpy._bindings, raftpy.core (values only),
raftpy.errors, raftpy.io.aio/fs/layout/metadata.

Rules kept:
- ``set_term``/``set_vote`` return only once the metadata file is durable (a
  short write is an error, never acknowledged).
- ``append(first_index, entries)`` returns only once its entries are durable,
  and only at first_index: a caller whose idea of the log's end is wrong (an
  earlier write failed, say) gets an InvalidError naming both indexes.
  Appends are ordered; while one write is in flight, later appends queue and
  go out together in the next write (each request still its own batch, as
  libraft does), at most write_max_bytes per write.  One write in flight means
  a crash can only tear the last write (layout.torn_reach).  The hot path
  has no task: ``append_nowait`` submits the write at once when the writer
  is idle and the open segment has room, and the writer's completion
  callback reports it and submits what queued meanwhile; only a segment
  change (or a failure) goes through a task.
- Writes are block-granular: the partly filled last block is rewritten with
  more data by the next write, and its unused tail is zero.
- A failed write fails its appends and those queued behind it, and the next
  index goes back to the first failed one.  Its data may still have reached
  the disk, so its segment is cut back to what was durable (or unlinked) and
  nothing is written into a later segment until that is durable; when the
  cut-back fails the store stops (_await_cutback).
- Open segments are prepared (created, preallocated, and by default written
  once with zeros so that durable writes skip the unwritten-extent journal
  commit) in worker threads ahead of need.
- Barriers take turns in call order: ``truncate`` and ``snapshot_install``
  block later appends until done (spec §3.8, §3.9); ``snapshot_put`` only
  waits for the appends called before it and closes their segment, later
  appends go on.  Whatever lists the directory and deletes or rewrites
  segments runs under one lock, and deletes in an order every crash state of
  which loads as before or after (_delete_log, _truncate_sync).
- An open segment's first index is inferred from the closed segment before it
  (or the snapshot): retention never deletes the newest closed segment, a
  snapshot never reaches the disk before the segment holding the entries it
  covers is closed, and a failed finalize leaves every later segment open.
- Load follows spec §3.7, plus what a power loss can leave (the rules and
  why: _load_open): a torn tail of an open segment (within the reach of its
  last write, valid batches after the damage included) is cut off, and so is
  the last open segment holding data whose format word is 0 (a torn first
  write, of any length); entries that end behind the snapshot or disagree
  with it at its index are dropped, durably, as are closed segments the
  filter passes over; everything else that is damaged is a CorruptError
  naming file and offset.  With auto-recovery, damage inside an open segment
  keeps the batches before it (a copy of the file is saved as
  ``corrupt-<ns>-<name>``, later segments are moved aside, an error is
  logged); other damaged segments (and those after them) are renamed
  ``corrupt-<ns>-<name>`` only where libraft does so, and the load is
  retried once if something was moved.  Damaged data is never returned as
  entries.
- Every durability-relevant call goes through ``fs`` (raftpy.io.fs), so that
  tests can record them and rebuild the crash states (tests/io/test_power_loss.py).
- A directory is used by one process at a time: ``open`` takes an exclusive
  lock on ``raftpy.lock`` inside it (libraft ignores the file).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from raftpy import _bindings
from raftpy._bindings import ScanOutcome, Status
from raftpy.core.configuration import Configuration
from raftpy.core.types import Entry, EntryType
from raftpy.errors import (
    BusyError,
    CantBootstrapError,
    CorruptError,
    InvalidError,
    IOError_,
    MalformedError,
    NoSpaceError,
    RaftError,
    ShutdownError,
    TooBigError,
    UnauthorizedError,
)
from raftpy.io import aio, layout, metadata
from raftpy.io.fs import OS, Fs
from raftpy.io.interfaces import SnapshotLike
from raftpy.io.layout import SegmentFile

__all__ = ["DiskStore", "Snapshot", "LoadResult", "LOCK_FILE"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

LOCK_FILE = "raftpy.lock"
DEFAULT_SEGMENT_SIZE = 8 * 1024 * 1024
# Segments load asks the kernel to read ahead of the one it decodes (_prefetch):
# two keep the disk busy while one 8 MiB segment is decoded.
_PREFETCH_SEGMENTS = 2
_USED_HISTORY = 4              # closed segments whose use sizes the next zero-fill
# Segments load's reader threads read into memory ahead of the one it decodes
# (_read_ahead): one keeps a thread busy, two absorb a slow read.
_READ_AHEAD_SEGMENTS = 2
# Load's reader threads.  Reading a segment into fresh memory costs more than
# building its entries (cached 1 GiB: 0.6-1.0 s of reads against 0.4 s of
# entries), so one reader kept the decoding thread waiting; with two (one per
# core here) benchmarks/disk.py's 1 GiB load, alternated runs, took 1.51-1.58 s
# from the disk instead of 1.87-2.13 s, and 1.01-1.22 s cached instead of
# 1.28-1.54 s.
_READERS = 2
_FORMAT_WORD = (1).to_bytes(8, "little")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot: the state machine's data at ``index`` and the configuration then."""

    term: int
    index: int
    configuration: Configuration
    configuration_index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What ``load`` found: entries[i] has index start_index + i."""

    term: int
    voted_for: int
    snapshot: Snapshot | None
    start_index: int
    entries: list[Entry]


AppendDone = Callable[[RaftError | None], None]
"""append_nowait's completion: None once the entries are durable, else the error."""


@dataclass(eq=False, slots=True)
class _Append:
    """One append request: its encoded batch, where it goes, who waits for it."""

    batch: bytes | bytearray
    n: int
    done: AppendDone
    first_index: int
    finished: bool = False
    watchers: list[asyncio.Future[None]] | None = None    # _close_earlier_appends

    def finish(self, err: RaftError | None) -> None:
        """Report the outcome, once (later calls do nothing)."""
        if self.finished:
            return
        self.finished = True
        try:
            self.done(err)
        except Exception:         # the caller's bug must not break the writer
            log.exception("append completion callback failed")
        for fut in self.watchers or ():
            if not fut.done():
                fut.set_result(None)


def _encode_batches(entries: Sequence[Entry]) -> bytes | bytearray:
    """entries as one batch, or as several if there are more than a batch holds:
    every loader refuses a batch of more than MAX_BATCH_ENTRIES (libraft:
    "entries count in preamble is too high"), and a leader's Update may
    append more (one apply_many, or the proposals of one loop iteration)."""
    step = _bindings.MAX_BATCH_ENTRIES
    if len(entries) <= step:
        return _bindings.encode_batch(entries)
    return b"".join([_bindings.encode_batch(entries[k:k + step])
                     for k in range(0, len(entries), step)])


@dataclass(eq=False, slots=True)
class _OpenSegment:
    """The open segment being written, and the aligned buffer of its tail."""

    name: str
    path: str
    fd: int
    first_index: int = 0          # index of its first entry (0: none yet)
    last_index: int = 0           # index of its last durable entry
    used: int = 8                 # bytes of the file that hold data (format word + batches)
    reserved: int = 8             # used + bytes of batches being written
    buf_block: int = 0            # block number of buf[0] in the file
    buf_len: int = 8              # valid bytes in buf
    closing: bool = False         # no more appends go here
    failed: bool = False
    finalized: asyncio.Future[None] | None = None   # set once closing on disk is done


@dataclass(eq=False)
class _Prepared:
    path: str
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop()
                                        .create_future())


class DiskStore:
    """libraft-compatible durable storage for one Raft server's log, vote and snapshots.

    Use: ``store = DiskStore(path)``; ``await store.open()``; ``result = await
    store.load()``; then ``append``/``truncate``/``set_term``/``set_vote``/
    ``snapshot_put``/``snapshot_install``/``snapshot_get``; finally ``await
    store.close()``.
    """

    def __init__(self, path: str, *, segment_size_bytes: int = DEFAULT_SEGMENT_SIZE,
                 snapshot_compression: bool = True, auto_recovery: bool = True,
                 prepared_segments: int = 2, zero_fill_segments: bool = True,
                 write_max_bytes: int = 4 * 1024 * 1024, aio_depth: int = 8,
                 use_aio: bool | None = None, fs: Fs = OS) -> None:
        if segment_size_bytes < 4096 or segment_size_bytes % 4096:
            raise InvalidError(f"segment size must be a positive multiple of 4096, "
                               f"not {segment_size_bytes}")
        if prepared_segments < 1:
            raise InvalidError("at least one prepared segment is needed")
        if write_max_bytes < 4096:
            raise InvalidError(f"write_max_bytes must be at least 4096, not {write_max_bytes}")
        self.path = os.path.abspath(path)
        self.segment_size_bytes = segment_size_bytes
        self.snapshot_compression = snapshot_compression
        self.auto_recovery = auto_recovery
        self.prepared_segments = prepared_segments
        self.zero_fill_segments = zero_fill_segments
        self.write_max_bytes = write_max_bytes
        self._torn_reach = layout.torn_reach(write_max_bytes)
        self._moved_aside = False
        self._aio_depth = aio_depth
        self._use_aio = use_aio
        self._fs = fs                 # every durability-relevant call goes through it
        self.caps: aio.FsCaps | None = None
        self._meta = metadata.FRESH
        self._meta_lock = asyncio.Lock()
        self._lock_fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._writer: aio.AioWriter | None = None
        self._loaded = False
        self._closed = False
        self._next_index = 1          # index the next append gets
        self.bytes_appended = 0       # batch bytes made durable by append (metrics)
        self._counter = 0             # last open-N counter used in this process
        self._current: _OpenSegment | None = None
        self._prepared: deque[_Prepared] = deque()
        self._used_bytes: deque[int] = deque(maxlen=_USED_HISTORY)
        self._queue: deque[_Append] = deque()
        # Barriers (truncate, installation, the start of a snapshot) take turns
        # in call order; while one is active, later appends and barriers wait
        # in _held, in call order (an asyncio future stands for a barrier).
        self._held: deque[_Append | asyncio.Future[None]] = deque()
        self._barrier_active = False
        self._no_barrier = asyncio.Event()
        self._no_barrier.set()
        # Everything that lists the directory and deletes or rewrites segments
        # (truncation, installation, snapshot retention) runs under this lock.
        self._dir_lock = asyncio.Lock()
        self._write_index = 1         # index the next append handed to the writer gets
        self._floor = 0               # highest snapshot index called: truncate never goes below
        self._done_floor = 0          # the same, of snapshots written (barriers run in order)
        self._broken: RaftError | None = None    # a failed finalize: no more appends
        # The cut-back of a segment whose write failed (ftruncate to what was
        # durable, or unlink), while it is not known durable: nothing is
        # written into a later segment before it is (_await_cutback).
        self._cutback: asyncio.Future[None] | None = None
        self._writing = False
        self._idle = asyncio.Event()
        self._finalizing: asyncio.Future[None] | None = None
        self._buf = aio.aligned_buffer(write_max_bytes + 2 * 4096)
        self._snapshot_busy = False

    # ----------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Check and lock the directory, probe it, tidy it, read term and vote."""
        self._loop = asyncio.get_running_loop()
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="raftpy-disk")
        self._idle.set()
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._threads.shutdown(wait=False)
            self._unlock()
            raise
        assert self.caps is not None
        use_aio = self.caps.async_io if self._use_aio is None else (
            self._use_aio and self.caps.async_io)
        self._writer = aio.AioWriter(self._loop, depth=self._aio_depth, use_aio=use_aio,
                                     fs=self._fs)

    def _open_sync(self) -> None:
        self._lock()
        self.caps = aio.probe(self.path)
        listing = layout.list_dir(self.path)
        for name in listing.tmp_files + listing.orphans:   # spec §3.7 step 0
            self._fs.unlink(self._p(name))
        self._meta = self._read_metadata()

    def _lock(self) -> None:
        if not os.path.isdir(self.path):
            aio.probe(self.path)          # raises the libraft-style error for the path
        try:
            fd = os.open(self._p(LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except PermissionError as err:
            raise UnauthorizedError(f"directory '{self.path}': {err.strerror}") from err
        except OSError as err:
            if err.errno == errno.EROFS:
                raise InvalidError(f"directory '{self.path}' is not writable") from err
            raise IOError_(f"open lock file: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise BusyError(f"directory '{self.path}' is in use by another process"
                            f"{f' (pid {holder})' if holder else ''}") from err
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    async def close(self) -> None:
        """Write out what was appended, close the open segment, release the directory."""
        if self._closed or self._loop is None:
            return
        self._closed = True
        # Let every operation already called finish: barriers in progress or
        # waiting their turn release the appends held behind them.
        while self._barrier_active or self._queue or self._writing:
            if self._barrier_active:
                await self._no_barrier.wait()
            else:
                await self._wait_idle()
        if self._current is not None:
            self._finalize(self._current)
            self._current = None
        if self._finalizing is not None:
            await asyncio.gather(self._finalizing, return_exceptions=True)
        for prep in list(self._prepared):
            await asyncio.gather(prep.ready, return_exceptions=True)
            if os.path.exists(prep.path):
                self._fs.unlink(prep.path)
        self._prepared.clear()
        if self._writer is not None:
            await self._writer.close()
        assert self._threads is not None
        self._threads.shutdown(wait=True)
        self._unlock()

    async def __aenter__(self) -> DiskStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------ term and vote

    @property
    def term(self) -> int:
        return self._meta.term

    @property
    def voted_for(self) -> int:
        return self._meta.voted_for

    @property
    def next_index(self) -> int:
        """Index the next append will get (counting appends not yet durable)."""
        return self._next_index

    async def set_term(self, term: int) -> None:
        """Durably store term and reset the vote (spec §3.4)."""
        await self._write_metadata(term, None)

    async def set_vote(self, server_id: int) -> None:
        """Durably store the vote for the current term."""
        await self._write_metadata(None, server_id)

    async def _write_metadata(self, term: int | None, voted_for: int | None) -> None:
        """One metadata write at a time, each from the state the previous one left
        (two in flight must not both take version+1)."""
        self._check_usable()
        async with self._meta_lock:
            new = metadata.Metadata(self._meta.version + 1,
                                    self._meta.term if term is None else term,
                                    0 if voted_for is None else voted_for)
            await self._run(self._write_metadata_sync, new)
            self._meta = new

    def _write_metadata_sync(self, new: metadata.Metadata) -> None:
        path = self._p(metadata.metadata_file_for(new.version))
        existed = os.path.exists(path)
        data = metadata.encode_metadata(new.version, new.term, new.voted_for)
        fd = self._fs.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            written = self._fs.pwrite(fd, data, 0)
            if written != len(data):    # not durable as asked: never acknowledge it
                raise NoSpaceError(f"write {os.path.basename(path)}: short write: "
                                   f"{written} bytes instead of {len(data)}")
            self._fs.fdatasync(fd) if existed else self._fs.fsync(fd)
        except OSError as err:
            raise _os_error(err, f"write {os.path.basename(path)}") from err
        finally:
            self._fs.close(fd)
        if not existed:
            self._fsync_dir()

    def _read_metadata(self) -> metadata.Metadata:
        found: list[metadata.Metadata | None] = []
        for name in metadata.METADATA_FILES:
            try:
                with open(self._p(name), "rb") as f:
                    data = f.read(metadata.METADATA_SIZE + 1)
            except FileNotFoundError:
                found.append(None)
                continue
            meta = metadata.decode_metadata(data, name)
            if meta is None:           # shorter than 32 bytes: a crash in the first write
                self._fs.unlink(self._p(name))
            found.append(meta)
        return metadata.choose_metadata(found[0], found[1])

    # ------------------------------------------------------------ loading

    async def load(self) -> LoadResult:
        """Load snapshot and entries (spec §3.7); call once, before appending."""
        self._check_usable()
        if self._loaded:
            raise InvalidError("the store was already loaded")
        result = await self._run(self._load_with_recovery)
        self._loaded = True
        self._next_index = self._write_index = result.start_index + len(result.entries)
        self._floor = self._done_floor = (result.snapshot.index if result.snapshot is not None
                                          else 0)
        self._fill_pool()
        return result

    def _load_with_recovery(self) -> LoadResult:
        self._moved_aside = False
        try:
            with _bindings.gc_paused():
                return self._load_sync()
        except CorruptError as err:
            # libraft retries once after auto-recovery; when nothing was moved
            # aside the retry would fail the same way, so it is not made.
            if not (self.auto_recovery and self._moved_aside):
                raise
            log.warning("load %s failed, retrying once after auto-recovery: %s",
                        self.path, err)
        with _bindings.gc_paused():
            return self._load_sync()

    def _load_sync(self) -> LoadResult:
        listing = layout.list_dir(self.path)
        snapshot = self._read_snapshot(listing.snapshots[-1]) if listing.snapshots else None
        # Open segments never written (prepared, all zeros) hold nothing: they
        # must not count as "open segments follow" when filtering (spec §3.7).
        segments = [s for s in self._drop_superseded(listing.segments)
                    if not s.is_open or self._has_data(s)]
        segments, start_index, stale = _segments_to_load(segments, snapshot)
        if stale:
            # Closed segments the filter passes over end before the snapshot.
            # libraft leaves them; we delete them, because one left behind
            # becomes the segment a later open segment's first index is
            # inferred from once the ones after it are gone (issue 8, A2).
            assert snapshot is not None
            log.warning("deleting %s: behind snapshot %d and not part of the log",
                        ", ".join(s.name for s in stale), snapshot.index)
            self._delete_log([(s.name, s.last) for s in stale], snapshot.index)
        with ThreadPoolExecutor(_READERS, thread_name_prefix="raftpy-load") as reader:
            try:
                start_index, entries = self._load_segments(reader, segments, snapshot,
                                                           start_index)
            finally:
                reader.shutdown(cancel_futures=True)
        return LoadResult(self._meta.term, self._meta.voted_for, snapshot, start_index, entries)

    def _load_segments(self, reader: ThreadPoolExecutor, segments: Sequence[SegmentFile],
                       snapshot: Snapshot | None, start_index: int,
                       ) -> tuple[int, list[Entry]]:
        """The segments' entries in log order (start index, entries).  reader's
        threads read the next segments while this thread decodes one (the
        read releases the GIL), so that reading and decoding overlap."""
        entries: list[Entry] = []
        loaded: list[tuple[str, int]] = []       # (name now, last index) in log order
        next_index = start_index
        images: list[Future[_Image]] = []
        self._prefetch(segments[:_PREFETCH_SEGMENTS + _READ_AHEAD_SEGMENTS])
        for k, seg in enumerate(segments):
            self._read_ahead(reader, segments, images, k + _READ_AHEAD_SEGMENTS)
            later = [s.name for s in segments[k + 1:]]     # open ones holding data
            damaged = False
            try:
                data, walked = images[k].result()
                images[k] = _DONE           # the entries keep it alive, not this list
                if seg.is_open:
                    got, name, damaged = self._load_open(seg, next_index, later, data, walked)
                else:
                    got, name = self._load_closed(seg, next_index, walked), seg.name
            except CorruptError as err:
                self._quarantine(segments, k)
                raise err.wrap(f"load {'open' if seg.is_open else 'closed'} segment "
                               f"{seg.name}") from err
            except RaftError as err:
                raise err.wrap(f"load segment {seg.name}") from err
            entries.extend(got)
            next_index += len(got)
            if name is not None:
                loaded.append((name, next_index - 1))
            if damaged:
                # Entries after the damage are lost, so no later segment can be
                # placed (open ones do not record their first index).
                self._quarantine(segments, k + 1)
                break
        if snapshot is not None and entries:
            why = _disagrees(snapshot, start_index, entries)
            if why:
                # Every entry loaded is then either covered by the snapshot or
                # not part of the log it belongs to: the log restarts after it.
                log.warning("dropping entries %d..%d: %s", start_index, next_index - 1, why)
                self._delete_log(loaded, snapshot.index)
                start_index, entries = snapshot.index + 1, []
        return start_index, entries

    def _read_ahead(self, reader: ThreadPoolExecutor, segments: Sequence[SegmentFile],
                    images: list[Future[_Image]], upto: int) -> None:
        """Have reader read and walk (_read_and_walk) every segment up to index
        upto (included) not yet asked for, each time asking the kernel to read
        ahead the segment _PREFETCH_SEGMENTS further (there, not here: each
        system call this thread makes is a chance to wait for the GIL).
        Reading one that is then renamed or moved aside is harmless: the open
        file is read, and load only uses images of segments it is at."""
        while len(images) <= min(upto, len(segments) - 1):
            seg = segments[len(images)]
            later = len(images) + _PREFETCH_SEGMENTS
            hint = self._p(segments[later].name) if later < len(segments) else None
            images.append(reader.submit(_read_and_walk, self._p(seg.name),
                                        self._torn_reach if seg.is_open else 0, hint,
                                        self.segment_size_bytes))

    def _prefetch(self, segments: Sequence[SegmentFile]) -> None:
        """Have the kernel read segments ahead into the page cache while earlier
        ones are decoded (POSIX_FADV_WILLNEED starts readahead and returns), so
        that load overlaps the disk with its own CPU work instead of taking
        turns.  A hint only: what fails here is found by the read itself."""
        for seg in segments:
            _will_need(self._p(seg.name))

    def _delete_log(self, segments: Sequence[tuple[str, int]], snapshot_index: int) -> None:
        """Delete segments (name, last index; in log order) so that every state a
        crash can leave on the way loads as before or after: newest first, and
        each one holding entries past snapshot_index made durably gone before
        the next (were an older one gone and a newer one left, the newer would
        follow a gap, or an open one would be placed after the wrong segment).
        The rest (all behind the snapshot, which load passes over in any
        combination) go with one directory sync."""
        for name, last in reversed(segments):
            self._fs.unlink(self._p(name))
            if last > snapshot_index:
                self._fsync_dir()
        self._fsync_dir()

    def _has_data(self, seg: SegmentFile) -> bool:
        """False for an open segment never written: empty or all zeros, of any
        length (a process killed while preparing it leaves a shorter file, one
        zero byte when preallocation is emulated); it is deleted right away."""
        data = self._read(seg.name)
        if data[:8].count(0) != len(data[:8]):       # a non-zero format word
            return True
        if data.count(0) == len(data):
            self._fs.unlink(self._p(seg.name))
            return False
        return True

    def _drop_superseded(self, segments: Sequence[SegmentFile]) -> list[SegmentFile]:
        """Finish a truncation a crash cut short: of closed segments sharing a first
        index, the shortest is the rewritten one and the others are superseded."""
        kept: list[SegmentFile] = []
        for seg in segments:
            if kept and not seg.is_open and not kept[-1].is_open and kept[-1].first == seg.first:
                log.warning("finishing an interrupted truncation: %s supersedes %s",
                            kept[-1].name, seg.name)
                self._fs.unlink(self._p(seg.name))      # sorted by (first, last): seg is longer
                continue
            kept.append(seg)
        if len(kept) != len(segments):
            self._fsync_dir()
        return kept

    def _load_closed(self, seg: SegmentFile, next_index: int,
                     walked: _bindings.PrescannedSegment) -> list[Entry]:
        if seg.first != next_index:
            raise CorruptError(f"unexpected closed segment {seg.name}: first index should "
                               f"have been {next_index}")
        scan = walked.scan()
        if scan.outcome != ScanOutcome.CLEAN:
            assert scan.error is not None
            raise _as_corrupt(scan.error) if scan.status == Status.SHORT else scan.error
        expected = seg.last - seg.first + 1
        if len(scan.entries) != expected:
            raise CorruptError(f"found {len(scan.entries)} entries (expected {expected})")
        return scan.entries

    def _load_open(self, seg: SegmentFile, next_index: int, later: Sequence[str],
                   data: memoryview | bytes, walked: _bindings.PrescannedSegment,
                   ) -> tuple[list[Entry], str | None, bool]:
        """Entries of an open segment placed at next_index, the closed name it is
        renamed to (None when it held nothing and was deleted), and whether it
        was damaged (then auto-recovery kept the batches before the damage).

        What the writer can leave decides the rules: one write is in flight
        at a time, over all segments (the store's single writer task); a
        segment's first write carries block 0 with the format word, and a
        later write, into it or into any later segment, starts only once that
        one is durable (a failed write's segment is cut back first:
        _await_cutback).  So:

        - format word 0 (data elsewhere: _has_data): the segment's first write
          never completed and nothing in it was acknowledged.  In the last
          open segment holding data that is a torn first write, whatever its
          length (one batch larger than write_max_bytes is written alone, in
          one write of any size): it is deleted.  With data in a later open
          segment it is corruption (that write could not have started).
        - damage followed by a valid batch only within the reach of the last
          write (layout.torn_reach): a torn tail, cut off.
        - damage that is not a torn write (a valid batch beyond the reach, or
          too many batch-like headers to tell): corruption.  Without
          auto-recovery a CorruptError, nothing changed.  With it, every
          batch before the damage is kept (libraft cuts at the first damage,
          spec §3.7 step 3: a libraft writer has no write_max_bytes cap), a
          copy of the file is saved as corrupt-<ns>-<name> for diagnosis,
          an error is logged, and the caller moves later segments aside.
          Damaged data is never returned."""
        if data[:8] == bytes(8):
            if later:
                raise CorruptError(f"unexpected format version 0: the segment's first "
                                   f"write never completed, yet {later[0]} after it holds "
                                   f"data, so this is not a torn first write")
            log.warning("open segment %s: format word 0: its first write was torn "
                        "(nothing in it was acknowledged); deleted", seg.name)
            self._fs.unlink(self._p(seg.name))
            return [], None, False
        scan = walked.scan()          # walked with self._torn_reach
        if scan.status in (Status.BAD_TYPE, Status.UNALIGNED):
            # The header checksum matched, so this batch was written like this:
            # malformed, not torn (libraft's load fails too).
            assert scan.error is not None
            raise scan.error
        damaged = scan.outcome == ScanOutcome.CORRUPT
        if damaged:
            assert scan.error is not None
            err = scan.error
            if scan.next_valid >= 0:
                err = CorruptError(f"{scan.error}; a valid batch follows at byte "
                                   f"{scan.next_valid}, beyond what the last write can "
                                   f"have reached, so this is not a torn write")
            if not self.auto_recovery or scan.status in (Status.BAD_FORMAT,
                                                         Status.TOO_SMALL):
                raise err
            copy = self._save_damaged(seg.name, data)
            log.error("open segment %s: damage at byte %d: %s; keeping the %d entries "
                      "before it (%d..%d), the rest is lost; a copy of the file is %s",
                      seg.name, scan.end, err, len(scan.entries), next_index,
                      next_index + len(scan.entries) - 1, copy)
        elif scan.outcome == ScanOutcome.TORN_TAIL:
            log.warning("open segment %s: torn tail at byte %d cut off (%s)",
                        seg.name, scan.end, scan.error)
        if not scan.entries:
            self._fs.unlink(self._p(seg.name))
            return [], None, damaged
        # A zero or torn tail (also a file ending inside its last batch, which
        # libraft calls a short read: only a write that grew the file past its
        # preallocation can end so) is the crash's unfinished write: cut it off.
        last = next_index + len(scan.entries) - 1
        fd = self._fs.open(self._p(seg.name), os.O_WRONLY | os.O_CLOEXEC)
        try:
            self._fs.ftruncate(fd, scan.end)
            self._fs.fsync(fd)
        finally:
            self._fs.close(fd)
        name = layout.closed_name(next_index, last)
        self._fs.rename(self._p(seg.name), self._p(name))
        self._fsync_dir()
        return scan.entries, name, damaged

    def _save_damaged(self, name: str, data: memoryview | bytes) -> str:
        """Keep a copy of a damaged segment beside it (durably, before it is cut)."""
        copy = f"corrupt-{time.clock_gettime_ns(time.CLOCK_REALTIME)}-{name}"
        self._write_atomically(copy, data)
        return copy

    def _quarantine(self, segments: Sequence[SegmentFile], k: int) -> None:
        """Auto-recovery (spec §3.7 step 5): move the damaged segment aside, with
        every later one, if it is open or the last closed segment."""
        if not self.auto_recovery or k >= len(segments):
            return
        seg = segments[k]
        later_closed = any(not s.is_open for s in segments[k + 1:])
        if not seg.is_open and later_closed:
            return
        stamp = time.clock_gettime_ns(time.CLOCK_REALTIME)
        self._moved_aside = True
        for victim in segments[k:]:
            self._fs.rename(self._p(victim.name), self._p(f"corrupt-{stamp}-{victim.name}"))
            log.warning("auto-recovery: moved %s aside as corrupt-%d-%s",
                        victim.name, stamp, victim.name)
        self._fsync_dir()

    # ------------------------------------------------------------ appends

    async def append(self, first_index: int, entries: Sequence[Entry]) -> None:
        """Append entries at first_index, which must be where the log ends (counting
        every append, truncation and installation called before); return once
        they are durable.

        A mismatch is refused with an InvalidError naming both indexes, here or,
        when an earlier write failed meanwhile (the log then ends where that
        write began), when the append reaches the writer: entries never land at
        another index than the caller's."""
        if self._loop is None:
            self._check_usable()        # raises: not opened
        assert self._loop is not None
        # The store's loop, not asyncio.get_running_loop(): that one makes a
        # getpid system call on every append (CPython 3.11).
        fut: asyncio.Future[None] = self._loop.create_future()
        self.append_nowait(first_index, entries, functools.partial(aio.settle, fut))
        await fut

    def append_nowait(self, first_index: int, entries: Sequence[Entry],
                      done: AppendDone) -> None:
        """``append`` without a task: checks as append does (raising at once), then
        calls ``done(None)`` once the entries are durable or ``done(error)``,
        on the loop, never from inside this call.  Calls complete in order;
        when the writer is idle the write is submitted before this returns."""
        self._check_usable()
        if not self._loaded:
            raise InvalidError("load the store before appending")
        if not entries:
            raise InvalidError("nothing to append")
        if first_index != self._next_index:
            raise InvalidError(f"cannot append at {first_index}: the log's next index is "
                               f"{self._next_index}")
        if self._broken is not None:
            raise self._broken_error()
        batch = _encode_batches(entries)     # raises for bad entries, before queuing
        req = _Append(batch, len(entries), done, first_index)
        self._next_index += req.n
        if self._barrier_active:
            self._held.append(req)
        else:
            self._enqueue(req)

    def _enqueue(self, req: _Append) -> None:
        """Hand req to the writer, unless the log no longer ends where req begins."""
        if req.first_index != self._write_index:
            err = InvalidError(f"cannot append at {req.first_index}: the log's next index "
                               f"is {self._write_index} (an earlier write or truncation "
                               "failed)")
            assert self._loop is not None
            self._loop.call_soon(req.finish, err)     # never from inside append_nowait
            return
        self._write_index += req.n
        self._queue.append(req)
        self._kick()

    def _kick(self) -> None:
        """Start the next write if none is in flight: at once when the open
        segment has room (the hot path), else in a task that gets a segment."""
        if self._writing or not self._queue:
            return
        self._writing = True
        self._idle.clear()
        seg = self._current
        size = len(self._queue[0].batch)
        if (self._broken is None and seg is not None and not seg.closing and not seg.failed
                and seg.reserved + size <= self.segment_size_bytes):
            self._start_write(seg)
        else:
            asyncio.ensure_future(self._write_next())

    async def _write_next(self) -> None:
        """Slow path: fail on a broken store, or wait for a segment, then write."""
        first = self._queue[0]
        if self._broken is not None:
            self._fail_queue(self._broken_error(), first.first_index)
            self._write_ended()
            return
        try:
            seg = await self._segment_for(len(first.batch))
        except RaftError as err:
            self._fail_queue(err, first.first_index)
            self._write_ended()
            return
        except Exception as exc:       # a bug must not leave appends hanging
            self._unexpected(exc)
            return
        self._start_write(seg)

    def _start_write(self, seg: _OpenSegment) -> None:
        """Write the queue's head requests (up to write_max_bytes) into seg."""
        try:
            first = self._queue[0]
            taken = [first]
            size = len(first.batch)
            for req in itertools.islice(self._queue, 1, None):
                nxt = len(req.batch)
                if (seg.reserved + size + nxt > self.segment_size_bytes
                        or size + nxt > self.write_max_bytes):
                    break
                taken.append(req)
                size += nxt
            if seg.first_index == 0:
                seg.first_index = first.first_index
            seg.reserved += size
            view, offset = self._fill_buffer(seg, taken, size)
            assert self._writer is not None
            self._writer.submit(seg.fd, view, offset,
                                functools.partial(self._written, seg, taken, size))
        except Exception as exc:
            self._unexpected(exc)

    def _written(self, seg: _OpenSegment, taken: list[_Append], size: int,
                 err: RaftError | None) -> None:
        """The writer's completion: account, report, and start the next write."""
        try:
            if err is not None:
                self._write_failed(seg, taken, err.wrap(f"append to {seg.name}"))
            else:
                for _ in taken:             # requests leave the queue only once written
                    self._queue.popleft()
                self._wrote(seg, size)
                seg.last_index = taken[-1].first_index + taken[-1].n - 1
                for req in taken:
                    self.bytes_appended += len(req.batch)
                    req.finish(None)
                if seg.closing and self._current is seg:
                    self._finalize(seg)
                    self._current = None
        except Exception as exc:
            self._unexpected(exc)
            return
        self._write_ended()

    def _write_ended(self) -> None:
        self._writing = False
        if self._queue:
            self._kick()
        else:
            self._idle.set()

    def _unexpected(self, exc: Exception) -> None:
        log.error("append failed unexpectedly", exc_info=exc)
        self._fail_queue(IOError_(f"append: {exc!r}"), self._queue[0].first_index
                         if self._queue else self._next_index)
        self._write_ended()

    def _write_failed(self, seg: _OpenSegment, taken: list[_Append], err: RaftError) -> None:
        log.error("%s", err)
        seg.failed = True
        self._fail_queue(err, taken[0].first_index)     # taken are still at its head

    def _fill_buffer(self, seg: _OpenSegment, taken: list[_Append],
                     size: int) -> tuple[memoryview, int]:
        """Put the batches after the kept partial block; return what to write, where."""
        bs = self._block_size
        need = seg.buf_len + size + bs
        if need > len(self._buf):
            grown = aio.aligned_buffer(need)
            grown[:seg.buf_len] = self._buf[:seg.buf_len]
            self._buf = grown
        pos = seg.buf_len
        for req in taken:
            self._buf[pos:pos + len(req.batch)] = req.batch
            pos += len(req.batch)
        end = -(-pos // bs) * bs
        self._buf[pos:end] = bytes(end - pos)      # the rest of the last block is zeros
        return memoryview(self._buf)[:end], seg.buf_block * bs

    def _wrote(self, seg: _OpenSegment, size: int) -> None:
        """After a durable write: account for it and keep only the partial last block."""
        bs = self._block_size
        seg.buf_len += size
        seg.used += size
        full = seg.buf_len // bs
        if full:
            tail = seg.buf_len - full * bs
            self._buf[:tail] = self._buf[full * bs:seg.buf_len]
            seg.buf_block += full
            seg.buf_len = tail

    @property
    def _block_size(self) -> int:
        assert self.caps is not None
        return self.caps.block_size

    def _fail_queue(self, err: RaftError, first_failed: int) -> None:
        """A failed write fails everything queued behind it too (libraft 0.18),
        and the next append goes where the first failed one would have."""
        queue, self._queue = self._queue, deque()
        assert self._loop is not None
        for req in queue:           # from a later callback: never inside append_nowait
            self._loop.call_soon(req.finish, err)
        self._write_index = first_failed
        if not self._barrier_active:
            self._next_index = first_failed
        if self._current is not None and self._current.failed:
            self._finalize(self._current)
            self._cutback = self._current.finalized
            self._current = None

    async def _segment_for(self, size: int) -> _OpenSegment:
        seg = self._current
        if seg is not None and not seg.closing and not seg.failed and (
                seg.reserved + size <= self.segment_size_bytes or seg.reserved == 8):
            return seg
        if seg is not None:
            self._finalize(seg)
            self._current = None
        await self._await_cutback()
        return await self._take_prepared()

    async def _await_cutback(self) -> None:
        """Before the first write into a later segment, wait until the segment
        whose write failed is durably cut back; if that failed, stop.

        A failed write may still have put its data on disk (EIO from
        fdatasync after the pwrite, a short write, an AIO error after some
        blocks landed).  Until the failed segment is cut back to what was
        durable (or, if nothing was, unlinked) and that is synced, a power
        loss can leave the failed batch there; load would read it at the index
        the re-issued append got, with the re-issued (acknowledged) batch
        pushed after it into the next segment.  Finalizations run in order, so
        this also waits for those before it."""
        cut = self._cutback
        if cut is None:
            return
        await asyncio.gather(cut, return_exceptions=True)
        if self._cutback is cut:
            self._cutback = None
        if self._broken is not None:
            raise self._broken_error()

    # ------------------------------------------------- segment preparation

    def _fill_pool(self) -> None:
        """Keep prepared_segments open segments being made ready ahead of need."""
        while len(self._prepared) < self.prepared_segments and not self._closed:
            self._prepare_one()

    def _prepare_one(self) -> None:
        self._counter += 1
        prep = _Prepared(self._p(layout.open_name(self._counter)))
        self._prepared.append(prep)
        job = self._run(self._prepare_sync, prep.path, self._zero_bytes())
        job.add_done_callback(functools.partial(aio.copy_result, fut=prep.ready))

    def _prepare_sync(self, path: str, zero_bytes: int) -> None:
        assert self.caps is not None
        aio.prepare_file(path, self.segment_size_bytes, self.caps,
                         zero_fill=self.zero_fill_segments, fs=self._fs,
                         zero_bytes=zero_bytes)

    def _zero_bytes(self) -> int:
        """How much of a new segment to zero-fill: twice the most that any of the
        last few closed segments used, in whole MiB, at most all of it.  Every
        snapshot closes the open segment (snapshot_put), so under libraft's
        policy (a snapshot per 1024 entries) a segment is closed after ~1024
        entries, and zero-filling all 8 MiB of it is mostly wasted work; a
        segment written past its zeroed start is still correct (_prepare_sync)."""
        if len(self._used_bytes) < _USED_HISTORY:
            return self.segment_size_bytes
        mib = 1 << 20
        return min(self.segment_size_bytes, (2 * max(self._used_bytes) + mib - 1) // mib * mib)

    async def _take_prepared(self) -> _OpenSegment:
        if not self._prepared:          # also while closing, to write out what is queued
            self._prepare_one()
        prep = self._prepared.popleft()
        try:
            await prep.ready
        except Exception as err:
            # Preparations that failed (a full disk, say) are not kept: drop
            # every failed one and try once afresh, so that freed space is used.
            log.warning("preparing %s failed: %s", os.path.basename(prep.path), err)
            self._prepared = deque(p for p in self._prepared
                                   if not (p.ready.done() and p.ready.exception()))
            if not self._prepared:
                self._prepare_one()
            prep = self._prepared.popleft()
            try:
                await prep.ready
            except RaftError:
                raise
            except OSError as err2:
                raise _os_error(err2, f"prepare {os.path.basename(prep.path)}") from err2
        self._fill_pool()
        assert self.caps is not None
        fd = aio.open_for_writing(prep.path, self.caps, self._fs)
        seg = _OpenSegment(os.path.basename(prep.path), prep.path, fd)
        seg.finalized = asyncio.get_running_loop().create_future()
        self._buf[:8] = _FORMAT_WORD
        self._current = seg
        return seg

    # --------------------------------------------------------- finalizing

    def _finalize(self, seg: _OpenSegment) -> None:
        """Close seg in the background, after any earlier finalization (in order).

        A finalization that fails (ftruncate, fsync or rename) leaves open-N on
        disk; every later segment is then left open too (closing N+1 would put
        a closed segment before open-N, and load would place open-N after it),
        and the store is broken: later appends and barriers get the error.
        Load places open segments by counter, after the closed ones, so
        open-N, open-N+1 ... still load at the right indexes."""
        seg.closing = True
        self._used_bytes.append(seg.used)
        prev = self._finalizing
        assert self._loop is not None and seg.finalized is not None

        async def run() -> None:
            if prev is not None:
                await asyncio.gather(prev, return_exceptions=True)
                if self._broken is not None:
                    await self._run(self._fs.close, seg.fd)
                    raise self._broken_error()
            try:
                await self._run(self._finalize_sync, seg.path, seg.fd, seg.used,
                                seg.first_index, seg.last_index)
            except OSError as err:
                what = (f"cut back {seg.name} after a failed write" if seg.failed else
                        f"close segment {seg.name}")
                raise _os_error(err, what) from err

        self._finalizing = asyncio.ensure_future(run())
        self._finalizing.add_done_callback(self._finalized)
        done = seg.finalized
        done.add_done_callback(_retrieved)     # its error is reported through _broken
        self._finalizing.add_done_callback(functools.partial(aio.copy_result, fut=done))

    def _broken_error(self) -> RaftError:
        """A fresh error for each caller (one instance raised in many tasks would
        gather all their tracebacks)."""
        assert self._broken is not None
        return self._broken.wrap("the store stopped after an error")

    def _finalized(self, job: asyncio.Future[None]) -> None:
        exc = None if job.cancelled() else job.exception()
        if exc is not None and self._broken is None:
            self._broken = exc if isinstance(exc, RaftError) else IOError_(repr(exc))
            log.error("%s: no more appends to this store", self._broken)

    def _finalize_sync(self, path: str, fd: int, used: int, first: int, last: int) -> None:
        try:
            if last == 0:              # nothing durable was written: drop the file
                self._fs.unlink(path)
            else:
                self._fs.ftruncate(fd, used)
                self._fs.fsync(fd)
                self._fs.rename(path, self._p(layout.closed_name(first, last)))
            self._fsync_dir()
        finally:
            self._fs.close(fd)

    async def _take_turn(self) -> None:
        """Wait until every barrier called before this one is done; appends and
        barriers called from now on wait until _pass_turn."""
        if not self._barrier_active:
            self._barrier_active = True
            self._no_barrier.clear()
            return
        assert self._loop is not None
        turn: asyncio.Future[None] = self._loop.create_future()
        self._held.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._pass_turn()         # it was ours: hand it on
            raise

    def _pass_turn(self) -> None:
        """End the active barrier: hand what waited behind it to the writer, in
        order, up to the next barrier, which becomes active."""
        while self._held:
            item = self._held.popleft()
            if isinstance(item, _Append):
                self._enqueue(item)
            elif not item.done():
                item.set_result(None)
                return
        self._barrier_active = False
        self._no_barrier.set()
        # Every operation called so far is with the writer now: resynchronise
        # after a failed write or a refused barrier changed the write index.
        self._next_index = self._write_index

    async def _close_segments(self) -> None:
        """(Holding the turn) let earlier appends finish and close every open segment."""
        await self._wait_idle()
        if self._current is not None:
            self._finalize(self._current)
            self._current = None
        if self._finalizing is not None:
            await asyncio.gather(self._finalizing, return_exceptions=True)
        if self._broken is not None:
            raise self._broken_error()

    async def _wait_idle(self) -> None:
        while self._writing or self._queue:
            self._kick()
            await self._idle.wait()

    # ---------------------------------------------------------- truncation

    async def truncate(self, index: int) -> None:
        """Delete entries from index on; later appends start at index (spec §3.8).

        A blocking barrier: appends called before are written first, appends
        and barriers called after wait until it is done.  Entries at or below
        the last snapshot's index are committed and never truncated.

        truncate(next_index) deletes nothing and succeeds: after a failed
        write the store's next index went back to the failed one, and the
        core then truncates there (PersistFailed, then Update.truncate_from).
        It still waits its turn and for the failed segment's cut-back (the
        failed data is durably gone when it returns), but closes nothing."""
        self._check_usable()
        if isinstance(index, bool) or not isinstance(index, int):
            raise InvalidError(f"cannot truncate at {index!r}: an index is an int")
        if not 0 < index <= self._next_index:
            raise InvalidError(f"cannot truncate at {index}: entries end at "
                               f"{self._next_index - 1}")
        if index <= self._floor:
            raise InvalidError(f"cannot truncate at {index}: entries up to {self._floor} "
                               f"are in a snapshot")
        self._next_index = index
        await self._take_turn()
        try:
            await self._wait_idle()
            if index == self._write_index:       # nothing from index on: a no-op
                await self._await_cutback()
                return
            await self._close_segments()
            # An earlier write may have failed (the write index went back), or a
            # snapshot called before may have been written meanwhile.
            if not index < self._write_index:
                raise InvalidError(f"cannot truncate at {index}: entries end at "
                                   f"{self._write_index - 1}")
            if index <= self._done_floor:
                raise InvalidError(f"cannot truncate at {index}: entries up to "
                                   f"{self._done_floor} are in a snapshot")
            async with self._dir_lock:
                await self._run(self._truncate_sync, index)
            self._write_index = index
        finally:
            self._pass_turn()

    def _truncate_sync(self, index: int) -> None:
        """Crash-safe order: every state a crash can leave loads as the log before
        or after the truncation (which is not acknowledged until this returns).
        First the segments wholly past index go, newest first, each durably
        gone before the next (else a newer one could outlive an older one and
        follow a gap); then the segment holding index is rewritten as
        first..index-1 beside the old one, which goes last.  Two closed
        segments with one first index are a truncation cut short, which load
        completes (_drop_superseded)."""
        try:
            closed = [s for s in layout.list_dir(self.path).segments if not s.is_open]
            doomed = [s for s in closed if s.last >= index]
            split = doomed[0] if doomed and doomed[0].first < index else None
            # Read the segment to split before anything is deleted: a damaged
            # one refuses the truncation and leaves the directory as it was.
            kept = self._read_closed(split)[:index - split.first] if split else []
            for seg in reversed(doomed):
                if seg is not split:
                    self._fs.unlink(self._p(seg.name))
                    self._fsync_dir()
            if split is not None:
                self._write_closed_segment(split.first, index - 1, kept)
                self._fs.unlink(self._p(split.name))
                self._fsync_dir()
        except OSError as err:
            raise _os_error(err, f"truncate at {index}") from err
        except RaftError as err:
            raise err.wrap(f"truncate at {index}") from err

    def _read_closed(self, seg: SegmentFile) -> list[Entry]:
        """The entries of a closed segment, all of them, or a CorruptError naming it."""
        scan = _bindings.scan_segment(self._read(seg.name))
        if scan.outcome != ScanOutcome.CLEAN:
            assert scan.error is not None
            raise CorruptError(f"closed segment {seg.name}: {scan.error}")
        expected = seg.last - seg.first + 1
        if len(scan.entries) != expected:
            raise CorruptError(f"closed segment {seg.name}: found {len(scan.entries)} "
                               f"entries (expected {expected})")
        return scan.entries

    def _write_closed_segment(self, first: int, last: int, entries: Sequence[Entry]) -> None:
        """Write entries first..last as a closed segment (atomically), in batches of
        at most MAX_BATCH_ENTRIES: a batch with more is refused by every loader
        (libraft: "entries count in preamble is too high").  libraft rewrites
        the kept part of a truncated segment as one batch; any split loads the
        same."""
        assert len(entries) == last - first + 1
        step = _bindings.MAX_BATCH_ENTRIES
        data = _FORMAT_WORD + b"".join(bytes(_bindings.encode_batch(entries[k:k + step]))
                                       for k in range(0, len(entries), step))
        self._write_atomically(layout.closed_name(first, last), data)

    def _write_atomically(self, name: str, data: memoryview | bytes) -> None:
        """tmp-NAME, fsync, rename to NAME, fsync the directory."""
        tmp = self._p(f"tmp-{name}")
        try:
            fd = self._fs.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[self._fs.write(fd, view):]
                self._fs.fsync(fd)
            finally:
                self._fs.close(fd)
            self._fs.rename(tmp, self._p(name))
        except OSError as err:
            if os.path.exists(tmp):
                self._fs.unlink(tmp)
            raise _os_error(err, f"write {name}") from err
        self._fsync_dir()

    # ------------------------------------------------ bootstrap and recover

    async def bootstrap(self, conf: Configuration) -> None:
        """Start a new cluster: term 1 and entry 1 holding conf (spec §3.11)."""
        self._check_usable()
        if self._meta.term != 0:
            raise CantBootstrapError()
        payload = self._conf_payload(conf)
        await self.set_term(1)
        await self._run(self._write_closed_segment, 1, 1,
                        [Entry(1, EntryType.CHANGE, payload)])
        if self._loaded:
            self._next_index = self._write_index = 2

    async def recover(self, conf: Configuration) -> int:
        """Force conf as the configuration: a CHANGE entry after the last one.

        Like libraft, the entry's term is 1 whatever the current term (quirk 4);
        call it instead of ``load``, on a store that is not serving.

        Run it on ONE survivor only, the one whose log is longest (highest last
        term, then highest last index), and copy that data directory over the
        other survivors' before any of them starts (libraft raft.h).  Recovered
        on each survivor, logs that differ before the new entry get a term-1
        entry at one index, which log matching then takes for equal logs: the
        state machines diverge.  Returns the index of the entry written."""
        self._check_usable()
        if self._loaded:
            raise InvalidError("recover runs on a store that has not been loaded")
        if not conf.voter_ids:
            raise InvalidError("the recovered configuration has no voter")
        payload = self._conf_payload(conf)
        result = await self._run(self._load_with_recovery)
        index = result.start_index + len(result.entries)
        last_term = (result.entries[-1].term if result.entries else
                     result.snapshot.term if result.snapshot is not None else 0)
        await self._run(self._write_closed_segment, index, index,
                        [Entry(1, EntryType.CHANGE, payload)])
        log.warning("recovered %s: configuration forced at index %d after last term %d; "
                    "copy this directory to every other survivor before starting any "
                    "(never recover each survivor)", self.path, index, last_term)
        return index

    def _conf_payload(self, conf: Configuration) -> bytes:
        # What is written here is loaded at every start: a configuration built
        # from Server values skips Configuration.add's checks, and one that
        # does not decode back (a NUL in an address, id 0; empty ones have no
        # encoding) would leave a directory nothing can start or bootstrap.
        if not conf.servers:
            raise InvalidError("the configuration has no server")
        payload = conf.encode()
        try:
            same = Configuration.decode(payload) == conf
        except MalformedError as err:
            raise InvalidError(f"the configuration would not load: {err}") from None
        if not same:
            raise InvalidError("the configuration would not load as it is")
        limit = self._block_size - 40
        if len(payload) > limit:
            raise TooBigError(f"encoded configuration is {len(payload)} bytes, more than "
                              f"the {limit} that fit in the first block")
        return payload

    # ----------------------------------------------------------- snapshots

    async def snapshot_put(self, trailing: int, snapshot: SnapshotLike) -> None:
        """Persist a snapshot taken of this log, keeping at least ``trailing``
        entries before its index (0: none) (spec §3.9, libraft's non-blocking
        barrier).

        Appends called later go on meanwhile (into a fresh segment).  The
        snapshot is written once every append called before it is written and
        its segment closed: the snapshot's index may be ahead of what is
        durable (a leader applies entries its followers made durable), and an
        open segment with no closed segment before it would be placed right
        after the snapshot on load."""
        self._check_usable()
        if trailing < 0:
            raise InvalidError(f"trailing must be 0 or more, not {trailing}")
        floor = self._floor
        self._start_snapshot(snapshot)
        try:
            await self._close_earlier_appends()
            async with self._dir_lock:
                await self._run(self._snapshot_put_sync, trailing, snapshot)
                self._done_floor = max(self._done_floor, snapshot.index)
        except BaseException:
            # Not in a snapshot after all: truncate may go below its index again.
            self._floor = max(floor, self._done_floor)
            raise
        finally:
            self._snapshot_busy = False

    async def _close_earlier_appends(self) -> None:
        """Wait until every append called so far is written (or failed) and the
        segment holding it is closed; appends called meanwhile go on."""
        await self._take_turn()          # in order with truncations and installations
        try:
            last = self._queue[-1] if self._queue else None
        finally:
            self._pass_turn()
        if last is not None and not last.finished:
            assert self._loop is not None
            watcher: asyncio.Future[None] = self._loop.create_future()
            last.watchers = [*(last.watchers or ()), watcher]
            await watcher
        seg = self._current
        if seg is not None:
            seg.closing = True
            if not self._writing:
                self._finalize(seg)
                self._current = None
            assert seg.finalized is not None
            await asyncio.shield(seg.finalized)
        elif self._finalizing is not None:
            await self._finalizing

    async def snapshot_install(self, snapshot: SnapshotLike) -> None:
        """Install a snapshot received from the leader: the log is replaced and the
        next append is at snapshot.index + 1 (spec §3.9, a blocking barrier)."""
        self._check_usable()
        self._start_snapshot(snapshot)
        self._next_index = snapshot.index + 1
        try:
            await self._take_turn()
            try:
                await self._close_segments()
                async with self._dir_lock:
                    await self._run(self._snapshot_install_sync, snapshot)
                    self._done_floor = max(self._done_floor, snapshot.index)
                self._write_index = snapshot.index + 1
            finally:
                self._pass_turn()
        finally:
            self._snapshot_busy = False

    def _start_snapshot(self, snapshot: SnapshotLike) -> None:
        if not len(snapshot.data):
            # Load skips a snapshot whose data file is empty (libraft's rule,
            # spec §3.7): written, it would delete the segments it covers and
            # load as no snapshot, losing the log.  (Compressed, libraft's put
            # fails too: empty snapshots cannot be compressed.)
            raise InvalidError(f"snapshot {snapshot.index}: an empty snapshot cannot be "
                               "stored (load skips empty snapshot files)")
        if self._snapshot_busy:
            raise BusyError("a snapshot is already being written")
        self._snapshot_busy = True
        self._floor = max(self._floor, snapshot.index)

    def _write_snapshot_files(self, snap: SnapshotLike) -> layout.Listing:
        """Write .meta then data (each atomically), drop all but the two latest
        snapshots; return the listing taken after."""
        stamp = time.monotonic_ns() // 1_000_000
        name = layout.snapshot_name(snap.term, snap.index, stamp)
        self._write_atomically(name + ".meta", layout.encode_snapshot_meta(
            snap.configuration, snap.configuration_index))
        try:
            self._write_atomically(name, layout.encode_snapshot_data(
                snap.data, self.snapshot_compression))
        except RaftError:
            self._fs.unlink(self._p(name + ".meta"))
            raise
        listing = layout.list_dir(self.path)
        for old in listing.snapshots[:-2]:
            self._fs.unlink(self._p(old.meta_name))
            self._fs.unlink(self._p(old.name))
        return listing

    def _snapshot_put_sync(self, trailing: int, snap: SnapshotLike) -> None:
        """Retention (spec §3.9): closed segments wholly before index - trailing + 1
        go, oldest first, stopping at the first kept one, and never the newest
        closed segment: it is what the next open segment's first index is
        inferred from (issue 8, A2).  Any subset of them may outlive a crash:
        they all end before the snapshot, where load passes over them."""
        try:
            listing = self._write_snapshot_files(snap)
            closed = [s for s in listing.segments if not s.is_open]
            retain = snap.index - trailing + 1
            doomed = []
            for seg in closed[:-1]:
                if seg.last >= retain:
                    break
                doomed.append(seg)
            for seg in doomed:
                self._fs.unlink(self._p(seg.name))
            self._fsync_dir()
        except OSError as err:
            raise _os_error(err, f"put snapshot {snap.index}") from err

    def _snapshot_install_sync(self, snap: SnapshotLike) -> None:
        """The snapshot first (durable), then every segment (all closed now, the
        barrier closed them) in _delete_log's crash-safe order."""
        try:
            listing = self._write_snapshot_files(snap)
            self._delete_log([(s.name, s.last) for s in listing.segments if not s.is_open],
                             snap.index)
        except OSError as err:
            raise _os_error(err, f"install snapshot {snap.index}") from err

    async def snapshot_get(self) -> Snapshot | None:
        """The most recent snapshot, or None.

        Under the directory lock: snapshot_put's retention deletes older
        snapshots, and one listed here could vanish before it is read."""
        self._check_usable()
        async with self._dir_lock:
            return await self._run(self._snapshot_get_sync)

    def _snapshot_get_sync(self) -> Snapshot | None:
        snaps = layout.list_dir(self.path).snapshots
        return self._read_snapshot(snaps[-1]) if snaps else None

    def _read_snapshot(self, snap: layout.SnapshotFile) -> Snapshot:
        conf, conf_index = layout.decode_snapshot_meta(self._read(snap.meta_name),
                                                       snap.meta_name)
        data = layout.decode_snapshot_data(self._read(snap.name), snap.name)
        return Snapshot(snap.term, snap.index, conf, conf_index, data)

    # ------------------------------------------------------------ helpers

    def _p(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _read(self, name: str) -> bytes:
        try:
            with open(self._p(name), "rb") as f:
                return f.read()
        except OSError as err:
            raise _os_error(err, f"read {name}") from err

    def _fsync_dir(self) -> None:
        self._fs.fsync_dir(self.path)

    def _check_usable(self) -> None:
        if self._closed:
            raise ShutdownError("the store is closed")
        if self._loop is None:
            raise InvalidError("open the store first")

    def _run(self, fn: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
        assert self._loop is not None and self._threads is not None
        return self._loop.run_in_executor(self._threads, fn, *args)


_Image = tuple[memoryview | bytes, _bindings.PrescannedSegment]
_DONE: Future[_Image] = Future()


def _read_and_walk(path: str, torn_reach: int, hint: str | None,
                   segment_size: int) -> _Image:
    """A segment's image (as _bindings.read_image reads it) and its walk
    (_bindings.prescan_segment): all the C work of loading it, for load's
    reader threads, mostly in one C call (_bindings.read_and_prescan); first,
    the kernel is asked to read the file hint ahead (DiskStore._prefetch)."""
    if hint is not None:
        _will_need(hint)
    return _bindings.read_and_prescan(path, torn_reach, segment_size)


def _will_need(path: str) -> None:
    """POSIX_FADV_WILLNEED on the file at path: a hint only, what fails here
    is found by the read itself."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def _segments_to_load(segments: Sequence[SegmentFile], snapshot: Snapshot | None,
                      ) -> tuple[list[SegmentFile], int, list[SegmentFile]]:
    """Which segments to load, the start index, and the closed segments passed
    over (spec §3.7 step 2: libraft's uvFilterSegments)."""
    if snapshot is None:
        return list(segments), 1, []
    closed = [s for s in segments if not s.is_open]
    opened = [s for s in segments if s.is_open]
    if not closed:
        return opened, snapshot.index + 1, []
    if closed[-1].last < snapshot.index and not opened:
        return [], snapshot.index + 1, closed
    run = [closed[-1]]
    for seg in reversed(closed[:-1]):
        if seg.last + 1 != run[0].first:
            break
        run.insert(0, seg)
    if run[0].first > snapshot.index + 1:
        raise CorruptError(f"closed segment {run[0].name} is past last snapshot "
                           f"snapshot-{snapshot.term}-{snapshot.index}")
    return run + opened, run[0].first, closed[:len(closed) - len(run)]


def _disagrees(snapshot: Snapshot, start: int, entries: Sequence[Entry]) -> str:
    """Why loaded entries cannot stand beside the snapshot ("" if they can).

    - The log ends before the snapshot index (libraft's load fails: "last entry
      on disk ... is behind last snapshot"): a snapshot can be taken at an
      index the store has not made durable (a leader applies what followers
      committed), and every entry loaded is covered by it.
    - The entry at the snapshot index has another term (issue 8, A4): a crash
      inside an installation left part of the log the snapshot replaced; the
      snapshot is committed state, and by log matching no entry of that log
      at or after the index belongs to the log the snapshot comes from."""
    last = start + len(entries) - 1
    if last < snapshot.index:
        return (f"the log ends at {last}, behind snapshot {snapshot.index}, which "
                f"covers it")
    if start <= snapshot.index and entries[snapshot.index - start].term != snapshot.term:
        return (f"entry {snapshot.index} has term {entries[snapshot.index - start].term}, "
                f"the snapshot at that index term {snapshot.term}")
    return ""


def _retrieved(fut: asyncio.Future[None]) -> None:
    """Mark an error as seen: a future nobody awaits would log "exception was
    never retrieved" when collected, possibly in a worker thread."""
    if not fut.cancelled():
        fut.exception()


def _as_corrupt(err: RaftError) -> RaftError:
    """A closed segment that ends inside a batch is damaged, not a read error."""
    return CorruptError(str(err))


def _os_error(err: OSError, what: str) -> RaftError:
    if err.errno == errno.ENOSPC:
        return NoSpaceError(f"{what}: {err.strerror}")
    if err.errno in (errno.EACCES, errno.EPERM):
        return UnauthorizedError(f"{what}: {err.strerror}")
    if err.errno == errno.EROFS:
        return InvalidError(f"{what}: {err.strerror}")
    return IOError_(f"{what}: {err.strerror}")
