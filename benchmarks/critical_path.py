"""Critical path of one request: where the time of a W1 commit goes, stage by stage.

    python benchmarks/critical_path.py [--dir DIR] [--count N] [--size B]
                                       [--no-libraft] [--json] [--quick]

The cluster benchmark's W1 case (benchmarks/cluster.py: three raftpy server
processes on loopback, fresh data directories, snapshots off, one request in
flight submitted in the leader's process) with probes: each process records a
timestamp (time.perf_counter, CLOCK_MONOTONIC, so the three processes' clocks
agree) when it hands a message to the socket, when bytes arrive, when the disk
store starts a write, when a write is durable, when the Server applies, and on
the leader when ``apply()`` is called and returns.  For every request it
follows the path that decided the commit (through the follower whose reply
came back first) and prints the median of each stage, and its mean over the
slowest 1% of requests (where the tail latency goes):

  leader      submit -> AppendEntries handed to the socket     (Python)
  network     -> bytes arrive at the follower                  (writev, wakeup)
  follower    -> write starts                                  (Python)
  disk        -> io_submit returns                             (the kernel)
  disk        -> write durable and its completion seen         (device, wakeup)
  follower    -> reply handed to the socket                    (Python)
  network     -> bytes arrive at the leader                    (writev, wakeup)
  leader      -> entry applied                                 (Python)
  leader      -> apply() returns to the client                 (Python)

The Python stages are the ones libraft does in C; the others any system pays.
The same run also measures libraft's W1 p50 (the cluster benchmark's libraft
system; --no-libraft skips it) for the ratio.  The probes wrap internal
methods of the Server, the TCP transport and the disk store; if one is
renamed the benchmark fails saying which (tests/test_benchmarks.py runs it).
"""

from __future__ import annotations

import atexit
import bisect
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cluster
from _common import parser

HERE = os.path.abspath(__file__)

# (module, class, method, tag, only when): the probe points, recorded as the
# method is entered; "wsubmitted" as _start_write returns (io_submit done).
_PROBES = [
    ("raftpy.io.tcp", "_Inbound", "data_received", "recv", None),
    ("raftpy.io.tcp", "_Peer", "flush", "out", "queue"),
    ("raftpy.io.disk", "DiskStore", "_start_write", "wstart", None),
    ("raftpy.io.disk", "DiskStore", "_written", "wdone", None),
    ("raftpy.server", "Server", "_apply", "applied", None),
]
_RETURNS = {"wstart": "wsubmitted"}

# (key for --json, what it spans, Python or not)
STAGES = [
    ("leader_send", "leader: submit -> AppendEntries to the socket", "py"),
    ("to_follower", "network: -> bytes at the follower", "os"),
    ("follower_write", "follower: -> write starts", "py"),
    ("follower_submit", "disk: -> io_submit returns", "os"),
    ("follower_disk", "disk: -> write durable, completion seen", "os"),
    ("follower_reply", "follower: -> reply to the socket", "py"),
    ("to_leader", "network: -> bytes at the leader", "os"),
    ("leader_apply", "leader: -> entry applied", "py"),
    ("leader_return", "leader: -> apply() returns", "py"),
]


# --------------------------------------------------------------- node side

def _install_probes(events: list[tuple[str, float]]) -> None:
    import importlib

    clock = time.perf_counter
    for module, cls_name, method, tag, only in _PROBES:
        cls = getattr(importlib.import_module(module), cls_name, None)
        inner = getattr(cls, method, None)
        if inner is None:
            raise SystemExit(f"critical_path.py: no {module}.{cls_name}.{method} to probe "
                             "(renamed? update _PROBES)")
        setattr(cls, method, _probe(inner, tag, only, events, clock))
    from raftpy import server

    apply = server.Server.apply

    async def probed_apply(self: Any, command: bytes) -> Any:
        events.append(("a0", clock()))
        result = await apply(self, command)
        events.append(("a1", clock()))
        return result

    server.Server.apply = probed_apply  # type: ignore[method-assign]


def _probe(inner: Callable[..., Any], tag: str, only: str | None,
           events: list[tuple[str, float]], clock: Callable[[], float]) -> Callable[..., Any]:
    after = _RETURNS.get(tag)

    def probed(self: Any, *args: Any) -> Any:
        if only is None or getattr(self, only):
            events.append((tag, clock()))
        result = inner(self, *args)
        if after is not None:
            events.append((after, clock()))
        return result
    return probed


def node(a: dict[str, Any]) -> None:
    events: list[tuple[str, float]] = []
    _install_probes(events)

    def dump() -> None:
        with open(a["probe_file"], "w") as f:
            json.dump(events, f)

    atexit.register(dump)
    cluster.raftpy_node(a)


@dataclass(frozen=True)
class Probed(cluster.System):
    def command(self, args: dict[str, Any]) -> list[str]:
        args = {**args, "probe_file": args["dir"] + ".probe.json"}
        return [sys.executable, HERE, "--node", json.dumps(args)]


# --------------------------------------------------------------- analysis

class _Timeline:
    """One process's events of one tag, sorted: the first at or after a time."""

    def __init__(self, events: list[tuple[str, float]]) -> None:
        self.by_tag: dict[str, list[float]] = {}
        for tag, t in events:
            self.by_tag.setdefault(tag, []).append(t)

    def after(self, tag: str, t: float) -> float | None:
        times = self.by_tag.get(tag, [])
        i = bisect.bisect_right(times, t)
        return times[i] if i < len(times) else None


def paths(leader: _Timeline, followers: list[_Timeline], skip: int) -> list[list[float]]:
    """Per request, the stage boundaries (seconds) along the deciding follower."""
    out = []
    for t0 in leader.by_tag.get("a0", [])[skip:]:
        t1 = leader.after("a1", t0)
        sent = leader.after("out", t0)
        if t1 is None or sent is None or sent > t1:
            continue
        best = None
        for f in followers:
            recv = f.after("recv", sent)
            start = recv and f.after("wstart", recv)
            submitted = start and f.after("wsubmitted", start)
            done = submitted and f.after("wdone", submitted)
            reply = done and f.after("out", done)
            if reply and reply < t1 and (best is None or reply < best[-1]):
                best = [recv, start, submitted, done, reply]
        if best is None:
            continue
        back = leader.after("recv", best[-1])
        applied = back and leader.after("applied", back)
        if applied is None or applied > t1:
            continue
        out.append([t0, sent, *best, back, applied, t1])
    return out


def summarize(rows: list[list[float]]) -> tuple[list[float], list[float]]:
    """Median of each stage (us), then the median total; and the same as means
    over the slowest 1% of requests (where the tail goes: means add up)."""
    def stage(r: list[float], k: int) -> float:
        return (r[k + 1] - r[k]) * 1e6

    medians = [statistics.median(stage(r, k) for r in rows) for k in range(len(STAGES))]
    medians.append(statistics.median((r[-1] - r[0]) * 1e6 for r in rows))
    slowest = sorted(rows, key=lambda r: r[-1] - r[0])[-max(1, len(rows) // 100):]
    tail = [statistics.fmean(stage(r, k) for r in slowest) for k in range(len(STAGES))]
    tail.append(statistics.fmean((r[-1] - r[0]) * 1e6 for r in slowest))
    return medians, tail


# --------------------------------------------------------------- parent side

def run(root: str, count: int, size: int
        ) -> tuple[dict[str, Any], tuple[list[float], list[float]], int]:
    case = {"policy": "off", "in_flight": 1, "size": size, "count": count,
            "warmup": max(20, count // 10), "max_s": 30}
    system = Probed("raftpy", "raftpy", "raftpy with probes")
    result = cluster.run_case(system, case, root)
    timelines = []
    for name in sorted(os.listdir(root)):
        if name.endswith(".probe.json"):
            with open(os.path.join(root, name)) as f:
                timelines.append(_Timeline([tuple(e) for e in json.load(f)]))
    leaders = [t for t in timelines if t.by_tag.get("a0")]
    if len(timelines) != 3 or not leaders:
        raise SystemExit(f"critical_path.py: {len(timelines)} probe files, "
                         f"{len(leaders)} with requests")
    leader = max(leaders, key=lambda t: len(t.by_tag["a0"]))
    followers = [t for t in timelines if t is not leader]
    rows = paths(leader, followers, skip=case["warmup"])
    if not rows:
        raise SystemExit("critical_path.py: no request's path could be followed")
    return result, summarize(rows), len(rows)


def libraft_p50(root: str, count: int, size: int) -> float | None:
    system = cluster.SYSTEMS["libraft"]
    why = system.available()
    if why:
        print(f"skipping libraft: {why}", file=sys.stderr)
        return None
    case = {"policy": "off", "in_flight": 1, "size": size, "count": count,
            "warmup": max(20, count // 10), "max_s": 30}
    return float(cluster.run_case(system, case, root)["p50_us"])


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--node":
        node(json.loads(sys.argv[2]))
        return
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dir", default=None, help="directory on the disk to use")
    p.add_argument("--count", type=int, default=3000, help="requests measured")
    p.add_argument("--size", type=int, default=8, help="command bytes")
    p.add_argument("--no-libraft", action="store_true", help="skip libraft's W1 p50")
    args = p.parse_args()
    count = 200 if args.quick else args.count
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="raftpy-path-") as root:
        result, (medians, tail), followed = run(_mkdir(root, "raftpy"), count, args.size)
        ref = None if args.no_libraft else libraft_p50(_mkdir(root, "libraft"), count,
                                                          args.size)
    total = medians[-1]
    python_us = sum(m for m, (_, _, kind) in zip(medians, STAGES, strict=False) if kind == "py")
    if args.json:
        for (key, _, kind), m, t in zip(STAGES, medians, tail, strict=False):
            print(json.dumps({"name": f"w1_path_{key}", "value": round(m, 1), "unit": "us",
                              "python": kind == "py", "slowest_1pct_mean_us": round(t, 1)}))
        print(json.dumps({"name": "w1_path_total", "value": round(total, 1), "unit": "us",
                          "python_us": round(python_us, 1), "p50_us": result["p50_us"],
                          "libraft_p50_us": ref, "followed": followed}))
        return
    print(f"W1, {args.size}-byte commands, snapshots off: {followed} of {result['entries']} "
          "requests followed along the follower that replied first (us)")
    print(f"  {'stage':48s} {'median':>7s} {'slowest 1%':>11s}")
    for (_, name, kind), m, t in zip(STAGES, medians, tail, strict=False):
        print(f"  {name:48s} {m:7.0f} {t:11.0f}   {'Python' if kind == 'py' else ''}")
    print(f"  {'whole path':48s} {total:7.0f} {tail[-1]:11.0f}")
    print(f"  {'of which the Python stages (sum of medians)':48s} {python_us:7.0f}")
    print(f"raftpy p50 (submit to result) {result['p50_us']:.0f} us", end="")
    if ref is not None:
        print(f"; libraft's in this run {ref:.0f} us ({result['p50_us'] / ref:.2f}x)")
    else:
        print()


def _mkdir(root: str, name: str) -> str:
    path = os.path.join(root, name)
    os.makedirs(path)
    return path


if __name__ == "__main__":
    main()
