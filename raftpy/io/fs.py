"""The file-system calls that decide what survives a crash, in one place.

What lives here: ``Fs``, the seam through which DiskStore, segment preparation
(aio.prepare_file) and the AIO writer make every durability-relevant call:
creating and opening files, pwrite/write, fsync/fdatasync, ftruncate,
posix_fallocate, rename, unlink, directory fsync, and the writer's durable
writes (RWF_DSYNC on O_DIRECT, or pwrite + fdatasync in a thread).  ``OS`` is
the stock one: its attributes ARE the ``os`` functions (no wrapper frame, so
the hot path pays one attribute lookup).  ``Recorder`` passes every call
through to ``os`` and also logs it, so that raftpy.testing.powerloss can build
the crash states a power loss may leave at any point of the log.

Not routed through here, because nothing a crash leaves of them matters to
load: reads, the capability probe's transient ``.probe*`` files and the
``raftpy.lock`` file.

May import: the standard library.

Rules kept:
- Every call has ``os``'s signature and raises what ``os`` raises.
- ``write_started(fd, buf, offset)`` is called before a durable write is
  handed to the kernel and ``write_durable(token)`` once it is known durable
  (its completion arrived); a write that fails never gets ``write_durable``.
  Only when ``traces_writes`` is true does the writer call them.
- A ``Recorder`` logs a call after ``os`` returns, in one total order (a
  lock: the store calls from its event loop and its worker threads); a sync
  records the position the log had when the sync began, because only what
  completed before it began is covered by it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Fs", "OS", "Recorder", "Event"]


class Fs:
    """The durability-relevant calls, as ``os`` spells them (see the module docstring)."""

    traces_writes = False

    open = staticmethod(os.open)
    close = staticmethod(os.close)
    write = staticmethod(os.write)
    pwrite = staticmethod(os.pwrite)
    fsync = staticmethod(os.fsync)
    fdatasync = staticmethod(os.fdatasync)
    ftruncate = staticmethod(os.ftruncate)
    posix_fallocate = staticmethod(os.posix_fallocate)
    rename = staticmethod(os.rename)
    unlink = staticmethod(os.unlink)

    def fsync_dir(self, path: str) -> None:
        """Make the directory entries of path (creations, renames, unlinks) durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_started(self, fd: int, buf: Any, offset: int) -> int:
        return 0

    def write_durable(self, token: int) -> None:
        return None


OS = Fs()


@dataclass(frozen=True, slots=True)
class Event:
    """One logged call.  ``kind`` and ``args``:

    - ``create`` (name, ino): a new directory entry for a new file
    - ``unlink`` (name, ino)
    - ``rename`` (src, dst, ino)
    - ``write`` (ino, offset, data, wid): data written, not yet durable
    - ``size`` (ino, size): the file's size set (ftruncate, O_TRUNC, fallocate)
    - ``fsync`` (ino, since): the file's data and size written before position
      ``since`` are durable (fsync and fdatasync alike)
    - ``durable`` (wid,): write ``wid`` is durable (RWF_DSYNC completion)
    - ``dirsync`` (since,): directory changes before position ``since`` are durable
    - ``mark`` (anything): a note of the workload's (an acknowledgement, say)
    """

    kind: str
    args: tuple[Any, ...]


@dataclass
class _Names:
    by_name: dict[str, int] = field(default_factory=dict)
    by_fd: dict[int, int] = field(default_factory=dict)


class Recorder(Fs):
    """Pass every call through to ``os`` and log it (only for files in ``directory``).

    ``baseline`` maps the names already in the directory when recording began
    to their bytes (taken as durable); ``events`` is the log.  ``mark(note)``
    adds a workload note at the current position.
    """

    traces_writes = True

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        self.events: list[Event] = []
        self.baseline: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._names = _Names()
        self._next_ino = 1
        self._next_wid = 1
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    self.baseline[name] = f.read()
                self._names.by_name[name] = self._new_ino()

    @property
    def baseline_inodes(self) -> dict[str, int]:
        """The inode number given to each baseline file."""
        return {name: self._names.by_name[name] for name in self.baseline}

    def _new_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def _log(self, kind: str, *args: Any) -> None:
        self.events.append(Event(kind, args))

    def _name(self, path: str) -> str | None:
        """The name inside the recorded directory, or None for a file elsewhere."""
        full = os.path.abspath(path)
        if os.path.dirname(full) != self.directory:
            return None
        return os.path.basename(full)

    def position(self) -> int:
        with self._lock:
            return len(self.events)

    def mark(self, note: Any) -> None:
        with self._lock:
            self._log("mark", note)

    # ------------------------------------------------------ the calls

    def open(self, path: str, flags: int, mode: int = 0o777, *,  # type: ignore[override]
             dir_fd: int | None = None) -> int:
        assert dir_fd is None
        with self._lock:
            fd = os.open(path, flags, mode)
            name = self._name(path)
            if name is None:
                return fd
            ino = self._names.by_name.get(name)
            if ino is None:
                ino = self._new_ino()
                self._names.by_name[name] = ino
                self._log("create", name, ino)
            elif flags & os.O_TRUNC:
                self._log("size", ino, 0)
            self._names.by_fd[fd] = ino
            return fd

    def close(self, fd: int) -> None:
        with self._lock:
            self._names.by_fd.pop(fd, None)
            os.close(fd)

    def write(self, fd: int, data: Any) -> int:
        with self._lock:
            ino = self._names.by_fd.get(fd)
            offset = os.lseek(fd, 0, os.SEEK_CUR) if ino is not None else 0
            n = os.write(fd, data)
            if ino is not None:
                self._log("write", ino, offset, bytes(memoryview(data)[:n]), self._wid())
            return n

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        with self._lock:
            n = os.pwrite(fd, data, offset)
            ino = self._names.by_fd.get(fd)
            if ino is not None:
                self._log("write", ino, offset, bytes(memoryview(data)[:n]), self._wid())
            return n

    def _wid(self) -> int:
        wid = self._next_wid
        self._next_wid += 1
        return wid

    def _sync(self, fd: int, fn: Any) -> None:
        with self._lock:
            since = len(self.events)
            ino = self._names.by_fd.get(fd)
        fn(fd)          # outside the lock: other threads go on meanwhile
        if ino is not None:
            with self._lock:
                self._log("fsync", ino, since)

    def fsync(self, fd: int) -> None:  # type: ignore[override]
        self._sync(fd, os.fsync)

    def fdatasync(self, fd: int) -> None:  # type: ignore[override]
        self._sync(fd, os.fdatasync)

    def ftruncate(self, fd: int, length: int) -> None:
        with self._lock:
            os.ftruncate(fd, length)
            ino = self._names.by_fd.get(fd)
            if ino is not None:
                self._log("size", ino, length)

    def posix_fallocate(self, fd: int, offset: int, length: int) -> None:
        with self._lock:
            os.posix_fallocate(fd, offset, length)
            ino = self._names.by_fd.get(fd)
            if ino is not None:
                self._log("size", ino, max(os.fstat(fd).st_size, offset + length))

    def rename(self, src: str, dst: str) -> None:  # type: ignore[override]
        with self._lock:
            os.rename(src, dst)
            s, d = self._name(src), self._name(dst)
            assert s is not None and d is not None, "renames stay inside the directory"
            ino = self._names.by_name.pop(s)
            self._names.by_name[d] = ino
            self._log("rename", s, d, ino)

    def unlink(self, path: str) -> None:  # type: ignore[override]
        with self._lock:
            os.unlink(path)
            name = self._name(path)
            if name is not None:
                ino = self._names.by_name.pop(name)
                self._log("unlink", name, ino)

    def fsync_dir(self, path: str) -> None:
        with self._lock:
            since = len(self.events)
        super().fsync_dir(path)
        with self._lock:
            if os.path.abspath(path) == self.directory:
                self._log("dirsync", since)

    def write_started(self, fd: int, buf: Any, offset: int) -> int:
        with self._lock:
            ino = self._names.by_fd.get(fd)
            if ino is None:
                return 0
            wid = self._wid()
            self._log("write", ino, offset, bytes(buf), wid)
            return wid

    def write_durable(self, token: int) -> None:
        if token:
            with self._lock:
                self._log("durable", token)
