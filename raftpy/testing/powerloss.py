"""Power-loss crash states from a recording of file-system calls, and the checks a
store must pass on each.

What lives here (pure: no I/O; the test harness writes states to disk and loads
them):

- ``crash_states(recording, ...)``: from a log of the calls a store made while
  a workload ran (raftpy.io.fs.Recorder's events: create, unlink, rename,
  write, size, fsync, durable, dirsync, mark), every directory image a power
  loss may leave at every point of the log, on a disk that keeps no order
  beyond what syncs give (ext4-like):
    * what a completed fsync/fdatasync covered (everything logged before the
      sync began) and every write reported durable (an RWF_DSYNC completion)
      is there;
    * a write not yet durable is there, absent, or there for some of its
      4 KiB blocks, in any combination (a later block without an earlier one
      too); a size change (ftruncate, O_TRUNC, fallocate) not yet durable is
      applied or not;
    * a create, rename or unlink not yet made durable by a directory fsync is
      applied or not, independently per entry, in log order; file data made
      durable by fsync survives even when its directory entry does not (the
      file is then simply not there under that name, or still under its old
      name).
  Small choice spaces are enumerated exhaustively; large ones are sampled from
  the caller's ``random.Random`` (whose seed the caller prints), every group of
  choices (one write's blocks, the directory changes, one file's size
  changes) still enumerated whole while the others are drawn at random; of a
  write of more than LARGE_WRITE_BLOCKS blocks (a batch of megabytes), its
  extremes, its first block lost or alone, its last block lost and a sample.
- ``Model``: what a workload issued and what the store acknowledged, replayed
  from the ``mark`` events; ``Model.expectation(point)`` is what must hold of
  any state loaded after a crash at that point, and ``check(expectation,
  loaded)`` lists what does not:
    * every acknowledged entry is at its index with its bytes (unless the
      loaded snapshot covers it, or a truncation or installation still in
      flight may have removed it);
    * every entry loaded is one the workload wrote at that index, and the
      loaded entries are a slice of one log the workload had issued since the
      last acknowledged truncation or installation (nothing at a wrong index,
      nothing resurrected, no mix of two logs);
    * the snapshot is one the workload put, at least the last acknowledged
      one; the log reaches the snapshot and agrees with it at its index;
    * term and vote at least what was acknowledged, and only ones issued.

May import: the standard library (hashlib, itertools, dataclasses, random.Random
instances passed in) and nothing else: recordings are plain ``(kind, args)``
pairs.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any, Protocol

__all__ = ["BLOCK", "CrashState", "crash_states", "Model", "Expectation", "check",
           "image_digest"]

BLOCK = 4096
LARGE_WRITE_BLOCKS = 64       # a write of more blocks gets a sample of its tearings


# ------------------------------------------------------------ crash states

@dataclass(frozen=True, slots=True)
class CrashState:
    """One directory image a power loss at ``point`` (after events[:point]) may leave."""

    point: int
    files: dict[str, bytes]
    how: str                  # what was applied of the pending changes, for messages


@dataclass(slots=True)
class _Op:
    seq: int
    kind: str                 # "w" write, "s" size
    offset: int = 0
    data: bytes = b""
    wid: int = 0
    size: int = 0

    def blocks(self) -> list[int]:
        if self.kind != "w" or not self.data:
            return []
        return list(range(self.offset // BLOCK, (self.offset + len(self.data) - 1) // BLOCK + 1))


@dataclass(slots=True)
class _Inode:
    durable: bytearray = field(default_factory=bytearray)
    version: int = 0          # bumped whenever durable changes
    pending: list[_Op] = field(default_factory=list)


def _apply(content: bytearray, op: _Op, blocks: Sequence[int] | None = None) -> None:
    """Apply op to content; for a write, only the given blocks of it (None: all)."""
    if op.kind == "s":
        if op.size < len(content):
            del content[op.size:]
        else:
            content.extend(bytes(op.size - len(content)))
        return
    end = op.offset + len(op.data)
    spans = [(op.offset, end)] if blocks is None else [
        (max(op.offset, b * BLOCK), min(end, (b + 1) * BLOCK)) for b in blocks]
    for lo, hi in spans:
        if len(content) < hi:
            content.extend(bytes(hi - len(content)))
        content[lo:hi] = op.data[lo - op.offset:hi - op.offset]


class _Replay:
    """The durable state after a prefix of the log, and what is still pending."""

    def __init__(self, baseline: dict[str, bytes], inodes: dict[str, int]) -> None:
        self.names: dict[str, int] = dict(inodes)        # durable directory
        self.names_version = 0
        self.dir_pending: list[tuple[int, str, tuple[Any, ...]]] = []
        self.inodes: dict[int, _Inode] = {
            ino: _Inode(bytearray(baseline[name])) for name, ino in inodes.items()}
        self.wid_inode: dict[int, int] = {}

    def step(self, seq: int, kind: str, args: tuple[Any, ...]) -> None:
        if kind == "create":
            name, ino = args
            self.inodes[ino] = _Inode()
            self.dir_pending.append((seq, kind, args))
        elif kind in ("unlink", "rename"):
            self.dir_pending.append((seq, kind, args))
        elif kind == "write":
            ino, offset, data, wid = args
            self.inodes[ino].pending.append(_Op(seq, "w", offset, data, wid))
            self.wid_inode[wid] = ino
        elif kind == "size":
            ino, size = args
            self.inodes[ino].pending.append(_Op(seq, "s", size=size))
        elif kind == "fsync":
            ino, since = args
            node = self.inodes[ino]
            done = [op for op in node.pending if op.seq < since]
            if done:
                for op in done:
                    _apply(node.durable, op)
                node.pending = [op for op in node.pending if op.seq >= since]
                node.version += 1
        elif kind == "durable":
            (wid,) = args
            node = self.inodes[self.wid_inode[wid]]
            op = next(op for op in node.pending if op.kind == "w" and op.wid == wid)
            mine = set(op.blocks())
            for other in node.pending:
                if other is op:
                    break
                # A durable write over an earlier write still pending would make
                # "the earlier one lands later" possible; the store never does it.
                assert other.kind == "s" or not mine & set(other.blocks()), (
                    f"durable write {wid} overlaps an earlier pending write")
            _apply(node.durable, op)
            node.pending.remove(op)
            node.version += 1
        elif kind == "dirsync":
            (since,) = args
            done_dir = [d for d in self.dir_pending if d[0] < since]
            if done_dir:
                for d in done_dir:
                    _apply_dir(self.names, d[1], d[2])
                self.dir_pending = [d for d in self.dir_pending if d[0] >= since]
                self.names_version += 1
        elif kind != "mark":
            raise ValueError(f"unknown event kind {kind!r}")


def _apply_dir(names: dict[str, int], kind: str, args: tuple[Any, ...]) -> None:
    if kind == "create":
        names[args[0]] = args[1]
    elif kind == "unlink":
        if names.get(args[0]) == args[1]:
            del names[args[0]]
    else:
        src, dst, ino = args
        if names.get(src) == ino:
            del names[src]
        names[dst] = ino


@dataclass(frozen=True, slots=True)
class _Group:
    """Binary choices that belong together: one write's blocks, the directory
    changes, or one file's size changes."""

    what: str
    ino: int                  # 0 for the directory group
    ops: tuple[Any, ...]      # for writes: one op, its blocks as the bits
    bits: int


def _groups(rp: _Replay) -> list[_Group]:
    out: list[_Group] = []
    if rp.dir_pending:
        out.append(_Group("dir", 0, tuple(rp.dir_pending), len(rp.dir_pending)))
    for ino, node in rp.inodes.items():
        sizes = tuple(op for op in node.pending if op.kind == "s")
        if sizes:
            out.append(_Group("size", ino, sizes, len(sizes)))
        for op in node.pending:
            if op.kind == "w" and op.data:
                out.append(_Group("write", ino, (op,), len(op.blocks())))
    return out


def _assignments(groups: list[_Group], rng: Random, exhaustive_bits: int,
                 samples: int, large_write_masks: int = 12) -> Iterator[tuple[int, ...]]:
    """Bit masks, one per group: all of them when few, else a structured sample
    (at most large_write_masks for a write of more than LARGE_WRITE_BLOCKS)."""
    total = sum(g.bits for g in groups)
    full = tuple((1 << g.bits) - 1 for g in groups)
    if total <= exhaustive_bits:
        yield from itertools.product(*(range(1 << g.bits) for g in groups))
        return
    yield tuple(0 for _ in groups)
    yield full

    def rand(g: _Group) -> int:
        roll = rng.random()
        if roll < 0.25:
            return 0
        if roll < 0.5:
            return (1 << g.bits) - 1
        return rng.getrandbits(g.bits)

    for k, g in enumerate(groups):
        if g.bits <= exhaustive_bits:
            masks: Sequence[int] = range(1 << g.bits)
        else:      # prefixes, suffixes, single holes, single blocks, random subsets
            n = g.bits
            masks = sorted({(1 << j) - 1 for j in range(n + 1)}
                           | {((1 << n) - 1) ^ ((1 << j) - 1) for j in range(n)}
                           | {((1 << n) - 1) ^ (1 << j) for j in range(n)}
                           | {1 << j for j in range(n)}
                           | {rng.getrandbits(n) for _ in range(samples)})
        if g.bits > LARGE_WRITE_BLOCKS:
            # A large write (a batch of megabytes): the extremes, the cases
            # that decide torn against damaged (its first block, with the
            # format word, lost or kept alone; its last block lost), and a
            # random sample of the rest: each image is megabytes.
            n = g.bits
            full_n = (1 << n) - 1
            must = {0, full_n, full_n ^ 1, 1, full_n ^ (1 << (n - 1))}
            rest = sorted(set(masks) - must)
            take = max(0, min(len(rest), large_write_masks - len(must)))
            masks = sorted(must | set(rng.sample(rest, take)))
        for m in masks:
            yield tuple(m if j == k else rand(h) for j, h in enumerate(groups))
    for _ in range(samples):
        yield tuple(rand(g) for g in groups)


def _mask_text(m: int, bits: int) -> str:
    """Which blocks of a write are applied: the bits, the last block first, or
    for a large write runs from block 0 on ("1x222 0x815 of 1037": its first
    222 blocks)."""
    if bits <= LARGE_WRITE_BLOCKS:
        return f"{m:0{bits}b}/{bits}"
    runs = [f"{run[0]}x{len(run)}" for run in _runs(f"{m:0{bits}b}"[::-1])]
    return f"{' '.join(runs)} of {bits}"


def _runs(text: str) -> list[str]:
    out: list[str] = []
    for ch in text:
        if out and out[-1][0] == ch:
            out[-1] += ch
        else:
            out.append(ch)
    return out


class _Files:
    """Per-file contents and digests of images already built: a file with
    nothing pending applied is the same bytes in every image until its durable
    content changes, and a large one (megabytes) is then neither rebuilt nor
    hashed again."""

    def __init__(self) -> None:
        self.digests: dict[Any, bytes] = {}     # key part -> digest of the content
        self.durable: dict[Any, bytes] = {}     # key part without pending ops -> content

    def content(self, rp: _Replay, part: tuple[Any, ...],
                ops: list[tuple[_Op, tuple[int, ...] | None]]) -> bytes:
        if part in self.durable:
            return self.durable[part]
        ino = part[1]
        content = bytearray(rp.inodes[ino].durable)
        for op, blks in ops:
            _apply(content, op, blks)
        data = bytes(content)
        if not ops:
            self.durable[part] = data
        if part not in self.digests:
            self.digests[part] = _digest(data)
        return data

    def image_digest(self, parts: Sequence[tuple[Any, ...]]) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for part in parts:
            h.update(part[0].encode() + b"\0" + self.digests[part])
        return h.digest()


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _image(rp: _Replay, groups: list[_Group], masks: tuple[int, ...],
           cache: dict[Any, bytes], store: _Files,
           ) -> tuple[Any, dict[str, bytes] | None, str]:
    """The key of the image these choices give, and (unless seen) the image."""
    names = dict(rp.names)
    chosen_ops: dict[int, list[tuple[_Op, tuple[int, ...] | None]]] = {}
    how = []
    for g, m in zip(groups, masks, strict=True):
        if g.what == "dir":
            for j, (_seq, kind, args) in enumerate(g.ops):
                if m >> j & 1:
                    _apply_dir(names, kind, args)
            how.append(f"dir {m:0{g.bits}b}/{g.bits}")
        elif g.what == "size":
            for j, op in enumerate(g.ops):
                if m >> j & 1:
                    chosen_ops.setdefault(g.ino, []).append((op, None))
            if m:
                how.append(f"size ino{g.ino} {m:b}")
        else:
            op = g.ops[0]
            blocks = tuple(b for j, b in enumerate(op.blocks()) if m >> j & 1)
            if blocks:
                chosen_ops.setdefault(g.ino, []).append((op, blocks))
                how.append(f"write {op.wid} ino{g.ino} blocks {_mask_text(m, g.bits)}")
    key_parts = []
    file_ops = {}
    for name in sorted(names):
        ino = names[name]
        ops = sorted(chosen_ops.get(ino, ()), key=lambda c: c[0].seq)
        sig = tuple((op.seq, blks) for op, blks in ops)
        part = (name, ino, rp.inodes[ino].version, sig)
        key_parts.append(part)
        file_ops[part] = ops
    key: tuple[Any, ...] = tuple(key_parts)
    if key in cache:
        return key, None, " ".join(how)
    files = {part[0]: store.content(rp, part, file_ops[part]) for part in key_parts}
    return key, files, " ".join(how) or "nothing pending applied"


def image_digest(files: dict[str, bytes]) -> bytes:
    """A digest of a whole directory image (names and contents)."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(files):
        h.update(name.encode() + b"\0" + _digest(files[name]))
    return h.digest()


def crash_states(events: Sequence[Any], baseline: dict[str, bytes],
                 baseline_inodes: dict[str, int], rng: Random, *,
                 exhaustive_bits: int = 6, samples: int = 4,
                 points: Sequence[int] | None = None, large_write_masks: int = 12,
                 ) -> Iterator[tuple[int, bytes, CrashState | None]]:
    """Yield (point, digest, state) for the crash states of a recording.

    events are (kind, args) pairs or objects with .kind and .args.  A state
    whose image was already yielded comes back as (point, digest, None): the
    caller checks it again at this point without rebuilding or reloading it.
    ``points`` restricts the crash points (default: all, 0..len(events)).
    """
    rp = _Replay(baseline, baseline_inodes)
    wanted = set(range(len(events) + 1)) if points is None else set(points)
    seen_keys: dict[Any, bytes] = {}
    seen_digests: set[bytes] = set()
    store = _Files()
    for point in range(len(events) + 1):
        if point:
            ev = events[point - 1]
            kind, args = (ev.kind, ev.args) if hasattr(ev, "kind") else ev
            rp.step(point - 1, kind, args)
        if point not in wanted:
            continue
        groups = _groups(rp)
        done_here: set[bytes] = set()
        for masks in _assignments(groups, rng, exhaustive_bits, samples, large_write_masks):
            key, files, how = _image(rp, groups, masks, seen_keys, store)
            if files is None:
                digest = seen_keys[key]
            else:
                digest = store.image_digest(key)
                seen_keys[key] = digest
            if digest in done_here:
                continue
            done_here.add(digest)
            if digest in seen_digests:
                yield point, digest, None
            else:
                seen_digests.add(digest)
                assert files is not None
                yield point, digest, CrashState(point, files, how)


# ------------------------------------------------------------ the model

class _Entry(Protocol):
    @property
    def term(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def payload(self) -> Any: ...


class _Snapshot(Protocol):
    @property
    def term(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def data(self) -> bytes: ...


class Loaded(Protocol):
    """What a store's load returned (raftpy.io.disk.LoadResult is one)."""

    @property
    def term(self) -> int: ...
    @property
    def voted_for(self) -> int: ...
    @property
    def snapshot(self) -> _Snapshot | None: ...
    @property
    def start_index(self) -> int: ...
    @property
    def entries(self) -> Sequence[_Entry]: ...


Plain = tuple[int, int, bytes]         # (term, type, payload) of one entry


@dataclass(frozen=True, slots=True)
class Expectation:
    """What must hold of a state loaded after a crash at one point of the log."""

    version: int
    acked: dict[int, tuple[Plain, int, int]]  # index -> (entry, install epoch, state issued)
    acked_snapshot: tuple[int, int] | None   # (term, index)
    acked_term: int
    acked_votes: dict[int, int]              # term -> vote
    pending_truncate: int | None             # lowest truncation point in flight
    snapshots: dict[tuple[int, int], tuple[bytes, int]]   # issued: (term, index) ->
    #                                                       (data, install epoch or 0)
    issued_terms: frozenset[int]
    issued_votes: frozenset[tuple[int, int]]
    k_min: int                               # states the loaded log may be a slice of
    k_max: int


class Model:
    """Replays a workload's marks (each a tuple whose first item names it):

    ``("append", first, entries)`` issued, ``("append_ok", first, n)``,
    ``("append_failed", first)`` (the log then ends before first);
    ``("truncate", index)``, ``("truncate_ok", index)``;
    ``("snapshot", term, index, trailing, data)`` (trailing 0: an
    installation), ``("snapshot_ok", term, index)``;
    ``("term", t)``, ``("term_ok", t)``, ``("vote", t, v)``, ``("vote_ok", t, v)``.
    entries are Plain tuples.
    """

    def __init__(self) -> None:
        # states[k]: the log issued after k operations; element i-1 holds index i
        # (None below an installed snapshot).
        self.states: list[tuple[Plain | None, ...]] = [()]
        self.written: dict[int, set[Plain]] = {}
        self._acked: dict[int, tuple[Plain, int, int]] = {}
        self._acked_snapshot: tuple[int, int] | None = None
        self._acked_term = 0
        self._acked_votes: dict[int, int] = {}
        self._truncates: list[tuple[int, int]] = []        # (index, state it made)
        self._appends: list[tuple[int, int]] = []          # (first, state it made)
        self._snapshots: dict[tuple[int, int], tuple[bytes, int]] = {}
        self._installs: dict[tuple[int, int], int] = {}   # install -> state index it made
        self._terms: set[int] = {0}
        self._votes: set[tuple[int, int]] = set()
        self._k_min = 0
        self._epoch = 0
        self._epoch_starts: list[int] = []
        self._version = 0
        self._exp: Expectation | None = None

    def apply(self, note: tuple[Any, ...]) -> None:
        self._version += 1
        self._exp = None
        word = note[0]
        log = self.states[-1]
        if word == "append":
            _, first, entries = note
            assert first == len(log) + 1, (first, len(log))
            self.states.append(log + tuple(entries))
            self._appends.append((first, len(self.states) - 1))
            for i, e in enumerate(entries, first):
                self.written.setdefault(i, set()).add(e)
        elif word == "append_failed":
            # The write failed (or was refused): nothing acknowledged, and the
            # store's log ends where the failed append began.  Its data may
            # still be on disk, at its index, until something supersedes it.
            _, first = note
            self._pop(self._appends, first)
            self.states.append(log[:first - 1])
        elif word == "append_ok":
            _, first, n = note
            k = self._pop(self._appends, first)
            for i in range(first, first + n):
                entry = self.states[k][i - 1]
                assert entry is not None
                self._acked[i] = (entry, self._epoch_of(k), k)
        elif word == "truncate":
            self.states.append(log[:note[1] - 1])
            self._truncates.append((note[1], len(self.states) - 1))
        elif word == "truncate_ok":
            k = self._pop(self._truncates, note[1])
            self._k_min = max(self._k_min, k)
            # Appends issued after the truncation may be acknowledged before it.
            self._acked = {i: a for i, a in self._acked.items() if i < note[1] or a[2] > k}
        elif word == "snapshot":
            _, term, index, trailing, data = note
            epoch = 0
            if trailing == 0:
                self._epoch += 1
                epoch = self._epoch
                self.states.append((None,) * index)
                self._installs[(term, index)] = len(self.states) - 1
                self._epoch_starts.append(len(self.states) - 1)
            self._snapshots[(term, index)] = (bytes(data), epoch)
        elif word == "snapshot_ok":
            _, term, index = note
            if self._acked_snapshot is None or (term, index) > self._acked_snapshot:
                self._acked_snapshot = (term, index)
            if (term, index) in self._installs:
                k = self._installs[(term, index)]
                self._k_min = max(self._k_min, k)
                self._acked = {i: a for i, a in self._acked.items() if a[2] > k}
        elif word == "term":
            self._terms.add(note[1])
        elif word == "term_ok":
            self._acked_term = max(self._acked_term, note[1])
        elif word == "vote":
            self._votes.add((note[1], note[2]))
        elif word == "vote_ok":
            self._acked_votes[note[1]] = note[2]
            self._acked_term = max(self._acked_term, note[1])
        else:
            raise ValueError(f"unknown mark {note!r}")

    @staticmethod
    def _pop(pending: list[tuple[int, int]], index: int) -> int:
        """The state made by the oldest unacknowledged operation at index."""
        for j, (i, k) in enumerate(pending):
            if i == index:
                del pending[j]
                return k
        raise AssertionError(f"acknowledgement of an operation at {index} never issued")

    def _epoch_of(self, k: int) -> int:
        """How many installations were issued before state k."""
        return bisect.bisect_right(self._epoch_starts, k)

    def expectation(self) -> Expectation:
        if self._exp is None:
            self._exp = Expectation(
                self._version, dict(self._acked), self._acked_snapshot, self._acked_term,
                dict(self._acked_votes),
                min(i for i, _ in self._truncates) if self._truncates else None,
                dict(self._snapshots), frozenset(self._terms), frozenset(self._votes),
                self._k_min, len(self.states) - 1)
        return self._exp

    def matching_states(self, start: int, entries: tuple[Plain, ...]) -> list[int]:
        """Every k whose issued log holds exactly these entries from start on."""
        n = len(entries)
        return [k for k, log in enumerate(self.states)
                if len(log) >= start - 1 + n and log[start - 1:start - 1 + n] == entries]


def check(model: Model, exp: Expectation, r: Loaded, matches: list[int] | None = None,
          ) -> list[str]:
    """What is wrong with loaded state r after a crash where exp held (empty: sound).

    matches is model.matching_states(r.start_index, entries) (pass it to
    reuse it across points)."""
    problems: list[str] = []
    entries = tuple((e.term, e.type, bytes(e.payload)) for e in r.entries)
    start = r.start_index
    last = start + len(entries) - 1
    snap = r.snapshot
    install_epoch = 0
    if snap is not None:
        key = (snap.term, snap.index)
        issued = exp.snapshots.get(key)
        if issued is None:
            problems.append(f"snapshot {key} was never put")
        else:
            if issued[0] != bytes(snap.data):
                problems.append(f"snapshot {key} has the wrong data")
            install_epoch = issued[1]
        if exp.acked_snapshot is not None and key < exp.acked_snapshot:
            problems.append(f"snapshot {key} loaded, {exp.acked_snapshot} was acknowledged")
        if start > snap.index + 1:
            problems.append(f"log starts at {start}, after snapshot index {snap.index} + 1")
        if entries and last < snap.index:
            problems.append(f"log ends at {last}, behind snapshot index {snap.index}")
        if entries and start <= snap.index <= last and entries[snap.index - start][0] != snap.term:
            problems.append(f"entry {snap.index} has term {entries[snap.index - start][0]}, "
                            f"the snapshot at that index term {snap.term}")
    else:
        if exp.acked_snapshot is not None:
            problems.append(f"no snapshot loaded, {exp.acked_snapshot} was acknowledged")
        if start != 1:
            problems.append(f"no snapshot, yet the log starts at {start}")
    for i, e in enumerate(entries, start):
        if e not in model.written.get(i, ()):
            problems.append(f"entry {i} (term {e[0]}, {len(e[2])} bytes) was never written "
                            f"at index {i}")
            break
    if entries:
        ks = model.matching_states(start, entries) if matches is None else matches
        j = bisect.bisect_left(ks, exp.k_min)
        if not (j < len(ks) and ks[j] <= exp.k_max):
            problems.append(f"entries {start}..{last} are not a slice of any log issued "
                            f"between state {exp.k_min} and {exp.k_max} (matching: {ks[:8]})")
    for i, (e, epoch, _k) in sorted(exp.acked.items()):
        if snap is not None and i <= snap.index:
            continue
        if install_epoch and epoch < install_epoch:
            continue      # the installation (not acknowledged yet) replaced that log
        if exp.pending_truncate is not None and i >= exp.pending_truncate:
            continue
        if not start <= i <= last:
            problems.append(f"acknowledged entry {i} is missing (log {start}..{last})")
            break
        if entries[i - start] != e:
            problems.append(f"acknowledged entry {i} has other content")
            break
    if r.term < exp.acked_term:
        problems.append(f"term {r.term} loaded, {exp.acked_term} was acknowledged")
    if r.term not in exp.issued_terms:
        problems.append(f"term {r.term} was never set")
    if r.term in exp.acked_votes and r.voted_for != exp.acked_votes[r.term]:
        problems.append(f"vote {r.voted_for} in term {r.term}, "
                        f"{exp.acked_votes[r.term]} was acknowledged")
    if r.voted_for and (r.term, r.voted_for) not in exp.issued_votes:
        problems.append(f"vote for {r.voted_for} in term {r.term} was never cast")
    return problems
