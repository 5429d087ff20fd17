"""Cluster benchmark: 3 server processes on loopback, raftpy against libraft and PySyncObj.

    python benchmarks/cluster.py [--systems raftpy,libraft,pysyncobj,pysyncobj-nobatch]
                                 [--policies libraft,off] [--in-flight 1,64,1024]
                                 [--sizes 8,1024] [--repeat N] [--dir DIR]
                                 [--json] [--quick] [--plot FILE] [--save FILE]
    python benchmarks/cluster.py --results FILE [--plot FILE]

Each case starts a fresh cluster: three processes of this script (``--node``),
each one server with its own new data directory under --dir (default a
temporary one on this disk), talking TCP on 127.0.0.1.  The workload is
leader-local: the process whose server becomes leader submits the commands
through the system's public API (raftpy: ``Server.apply``; PySyncObj: a
``@replicated`` method with ``callback=``), keeping W requests in flight (1,
64, 1024), with 8-byte and 1 KiB commands; a warm-up, then a fixed count (each
case also bounded in time).  The state machine counts commands.  Measured:
entries/s committed and applied on the leader, p50/p99 latency from submit to
result, CPU per entry of each server process (utime+stime+cutime+cstime from
/proc/<pid>/stat, whole process, over the measured part only) and the peak RSS
(VmHWM from /proc/<pid>/status) of each process.

PySyncObj runs twice: "pysyncobj" with its defaults, "pysyncobj-nobatch" with
appendEntriesUseBatch=False (its option for single-request latency; with the
default the leader sends new entries every appendEntriesPeriod, 0.1 s).
With it, PySyncObj 0.3.17 logs "truncating already-applied log entries ...
state machine may have diverged" under load (its own warning, on stderr).

Durability: raftpy's DiskStore fdatasyncs every append before it counts as
persisted; PySyncObj's file journal (journalFile) is an mmap that it never
fsyncs or msyncs while running, which the output repeats.

Snapshot policies, per system (--policies):
  libraft  raftpy: snapshot_threshold 1024, snapshot_trailing 2048 (libraft's
           defaults).  PySyncObj: logCompactionMinEntries 1024 and
           logCompactionMinTime 1e9 s, so that only the entry count triggers;
           PySyncObj cannot keep trailing entries (it drops the whole applied
           log on compaction), and writes its dump to fullDumpFile.
  off      raftpy: threshold 2**62; PySyncObj: MinEntries 2**62, MinTime 1e12 s.

libraft: libraft 0.15 itself (the installed libraft-dev: raft_uv's disk I/O,
which waits for every write to be durable, and its TCP transport), as the
server tests/interop/counter_server.c in its bench mode, in which the same
workload runs inside the C process: W raft_apply requests in flight, each
callback submitting the next, latency per request from raft_apply to its
callback by CLOCK_MONOTONIC, in C.  The program is compiled once per source
(cached under build/bench/, keyed by a hash of the source and the flags) with
the compiler and pkg-config flags the interop tests use; without libraft-dev
or a compiler the system is skipped with the reason.  Policy 'libraft' is its
own defaults (threshold 1024, trailing 2048); 'off' is threshold 2**32-1.

A system is a small class (``System``) with a name and a node command.  The
parent and the nodes speak JSON lines: a node prints {"ev": "warm"} when it is
leader and warmed up, waits for "go" on stdin, runs the case, prints
{"ev": "result", ...}; every node exits when its stdin closes.  Every child is
killed by PID at the end of its case, also on errors; every wait is bounded.
The table prints the ratios raftpy/<system> under each case (for entries/s
above 1 means raftpy is faster; for latency, CPU and RSS below 1 does).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from _common import Counter, free_ports, parser, percentile

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))
LIBRAFT_SOURCE = os.path.join(REPO, "tests", "interop", "counter_server.c")
BUILD_DIR = os.path.join(REPO, "build", "bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 20.0         # cluster up and a leader warmed up
JOURNAL_NOTE = "journal never fsynced (mmap, no msync while running)"


# --------------------------------------------------------------- node side

def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _summary(latencies: list[float], done: int, elapsed: float, timed_out: bool
             ) -> dict[str, Any]:
    latencies.sort()
    return {"ev": "result", "entries": done, "elapsed_s": elapsed,
            "p50_us": percentile(latencies, 50) * 1e6,
            "p99_us": percentile(latencies, 99) * 1e6, "timed_out": timed_out}


def raftpy_node(a: dict[str, Any]) -> None:
    import asyncio

    import uvloop

    from raftpy import Config, Configuration, Server, State


    threshold = 1024 if a["policy"] == "libraft" else 1 << 62
    config = Config(snapshot_threshold=threshold, snapshot_trailing=2048)
    addresses = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(a["ports"])}

    async def run(server: Server, count: int, deadline: float) -> dict[str, Any]:
        command = b"x" * a["size"]
        latencies: list[float] = []
        issued = 0

        async def client() -> None:
            nonlocal issued
            while issued < count and time.monotonic() < deadline:
                issued += 1
                t = time.perf_counter()
                await server.apply(command)
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*[client() for _ in range(a["in_flight"])])
        elapsed = time.perf_counter() - start
        return _summary(latencies, len(latencies), elapsed, len(latencies) < count)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        server = Server(a["id"], addresses[a["id"]], a["dir"], Counter(), config)
        await server.bootstrap(Configuration.of(*addresses.items()))
        await server.start()
        try:
            end = time.monotonic() + START_TIMEOUT_S
            while server.leader[0] == 0 and time.monotonic() < end:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(server.changed(), 0.5)
            if server.state == State.LEADER:
                await run(server, a["warmup"], time.monotonic() + 10)
                _emit({"ev": "warm"})
                if (await stdin.readline()).strip() == b"go":
                    _emit(await run(server, a["count"], time.monotonic() + a["max_s"]))
            await stdin.read()          # until the parent closes our stdin
        finally:
            await server.close()

    uvloop.run(main())


def pysyncobj_node(a: dict[str, Any]) -> None:
    import threading

    from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

    class Counter(SyncObj):  # type: ignore[misc]
        def __init__(self, self_addr: str, others: list[str], conf: Any) -> None:
            super().__init__(self_addr, others, conf)
            self.count = 0

        @replicated  # type: ignore[misc]
        def incr(self, command: bytes) -> int:
            self.count += 1
            return self.count

    if a["policy"] == "libraft":
        min_entries, min_time = 1024, 1e9
    else:
        min_entries, min_time = 1 << 62, 1e12
    conf = SyncObjConf(journalFile=os.path.join(a["dir"], "journal"),
                       appendEntriesUseBatch=a.get("batch", True),
                       fullDumpFile=os.path.join(a["dir"], "dump"),
                       logCompactionMinEntries=min_entries, logCompactionMinTime=min_time)
    addrs = [f"127.0.0.1:{p}" for p in a["ports"]]
    me = addrs[a["id"] - 1]
    obj = Counter(me, [x for x in addrs if x != me], conf)

    def run(count: int, max_s: float) -> dict[str, Any]:
        command = b"x" * a["size"]
        latencies: list[float] = []
        lock = threading.Lock()
        finished = threading.Event()
        state = {"issued": 0, "failed": 0}
        deadline = time.monotonic() + max_s

        def submit() -> None:     # caller holds lock
            state["issued"] += 1
            t = time.perf_counter()
            obj.incr(command, callback=lambda res, err: done(t, err))

        def done(t: float, err: Any) -> None:
            with lock:
                if err == FAIL_REASON.SUCCESS:
                    latencies.append(time.perf_counter() - t)
                else:
                    state["failed"] += 1
                if state["issued"] < count and time.monotonic() < deadline:
                    submit()
                elif len(latencies) + state["failed"] >= state["issued"]:
                    finished.set()

        start = time.perf_counter()
        with lock:
            for _ in range(min(a["in_flight"], count)):
                submit()
        finished.wait(max_s + 5)
        elapsed = time.perf_counter() - start
        with lock:
            out = _summary(list(latencies), len(latencies), elapsed, len(latencies) < count)
        out["failed"] = state["failed"]
        return out

    try:
        end = time.monotonic() + START_TIMEOUT_S
        while obj._getLeader() is None and time.monotonic() < end:
            time.sleep(0.05)
        if obj._isLeader():
            run(a["warmup"], 10)
            _emit({"ev": "warm"})
            if sys.stdin.readline().strip() == "go":
                _emit(run(a["count"], a["max_s"]))
        sys.stdin.read()
    finally:
        obj.destroy()


# ------------------------------------------------------------- parent side

def _libraft_flags() -> list[str]:
    """pkg-config's flags for libraft and libuv (as tests/interop builds them)."""
    if shutil.which("pkg-config"):
        res = subprocess.run(["pkg-config", "--cflags", "--libs", "raft", "libuv"],
                             check=False, capture_output=True, text=True)
        if res.returncode == 0:
            return res.stdout.split()
    return ["-lraft", "-luv"]


@functools.cache
def libraft_server() -> tuple[str, str]:
    """(path of counter_server built against the installed libraft, "") or
    ("", why it cannot be built).  Built once per source and flags: the
    executable's name carries their hash, so an edited source is rebuilt."""
    cc = shutil.which(os.environ.get("CC") or "gcc") or shutil.which("cc")
    if cc is None:
        return "", "no C compiler found (gcc or cc, or set CC)"
    cmd = [cc, "-std=c11", "-D_DEFAULT_SOURCE", "-O2", "-g", "-Wall", "-Wextra", "-Werror",
           LIBRAFT_SOURCE, "-o", "OUT", *_libraft_flags()]
    with open(LIBRAFT_SOURCE, "rb") as f:
        key = hashlib.sha256(f.read() + "\0".join(cmd).encode()).hexdigest()[:16]
    exe = os.path.join(BUILD_DIR, f"counter_server-{key}")
    if os.path.exists(exe):
        return exe, ""
    os.makedirs(BUILD_DIR, exist_ok=True)
    tmp = f"{exe}.{os.getpid()}.tmp"       # a concurrent build must not see half a file
    res = subprocess.run([tmp if a == "OUT" else a for a in cmd], check=False,
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        first = (res.stderr.strip() or res.stdout.strip() or "?").splitlines()[0]
        if "raft.h" in res.stderr or "uv.h" in res.stderr or "-lraft" in res.stderr:
            return "", f"libraft-dev (0.15) and libuv1-dev are not installed: {first}"
        return "", f"building {LIBRAFT_SOURCE} failed: {res.stderr.strip()}"
    os.replace(tmp, exe)
    return exe, ""


@dataclass(frozen=True)
class System:
    """One system under test: how its node is started, what its output must say."""

    name: str
    node: str                  # which node main runs it ("libraft": the C program)
    note: str
    options: tuple[tuple[str, Any], ...] = ()   # passed to the node

    def available(self) -> str | None:
        """None if it can run here, else why not."""
        if self.node == "pysyncobj":
            try:
                import pysyncobj  # noqa: F401
            except ImportError:
                return "pysyncobj is not installed (pip install -e '.[bench]')"
        if self.node == "libraft":
            return libraft_server()[1] or None
        return None

    def command(self, args: dict[str, Any]) -> list[str]:
        if self.node == "libraft":
            return libraft_command(args)
        return [sys.executable, HERE, "--node", self.node,
                json.dumps({**args, **dict(self.options)})]


def libraft_command(a: dict[str, Any]) -> list[str]:
    addresses = [f"127.0.0.1:{p}" for p in a["ports"]]
    cluster = ",".join(f"{i + 1}={addr}" for i, addr in enumerate(addresses))
    threshold = 1024 if a["policy"] == "libraft" else 2**32 - 1
    return [libraft_server()[0], a["dir"], str(a["id"]), "--address", addresses[a["id"] - 1],
            "--cluster", cluster, "--snapshot-threshold", str(threshold),
            "--snapshot-trailing", "2048", "--bench-in-flight", str(a["in_flight"]),
            "--bench-size", str(a["size"]), "--bench-warmup", str(a["warmup"]),
            "--bench-count", str(a["count"]), "--bench-max-s", str(a["max_s"])]


SYSTEMS = {s.name: s for s in (
    System("raftpy", "raftpy", "DiskStore: fdatasync per append, TCP transport, uvloop"),
    System("libraft", "libraft", "libraft 0.15 (raft_uv: durable writes, its TCP transport), "
           "workload in C in the leader's process"),
    System("pysyncobj", "pysyncobj", f"defaults, file journal on; {JOURNAL_NOTE}"),
    # PySyncObj's own switch for single-request latency: without it the leader
    # sends new entries only every appendEntriesPeriod (0.1 s)
    System("pysyncobj-nobatch", "pysyncobj", "appendEntriesUseBatch=False, otherwise "
           f"as pysyncobj; {JOURNAL_NOTE}", (("batch", False),)),
)}


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime..cstime are fields 14..17
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def proc_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def read_event(procs: list[subprocess.Popen[str]], want: str, timeout_s: float
               ) -> tuple[int, dict[str, Any]]:
    """The first JSON line with ev == want from any child: (child index, object)."""
    end = time.monotonic() + timeout_s
    by_fd = {p.stdout.fileno(): i for i, p in enumerate(procs) if p.stdout}
    while time.monotonic() < end:
        ready, _, _ = select.select(list(by_fd), [], [], max(0.0, end - time.monotonic()))
        for fd in ready:
            i = by_fd[fd]
            line = procs[i].stdout.readline() if procs[i].stdout else ""
            if not line:
                del by_fd[fd]
                continue
            obj = json.loads(line)
            if obj.get("ev") == want:
                return i, obj
        if not by_fd:
            break
    codes = [p.poll() for p in procs]
    raise RuntimeError(f"no {want!r} from the cluster in {timeout_s:.0f} s (exit codes {codes})")


def stop(procs: list[subprocess.Popen[str]]) -> None:
    """Close stdins (a clean exit), then kill by PID whatever is left; bounded."""
    for p in procs:
        with contextlib.suppress(OSError):
            if p.stdin:
                p.stdin.close()
    end = time.monotonic() + 5
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.1, end - time.monotonic()))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)


def run_case(system: System, case: dict[str, Any], root: str) -> dict[str, Any]:
    ports = free_ports(3)
    procs: list[subprocess.Popen[str]] = []
    try:
        for i in (1, 2, 3):
            d = tempfile.mkdtemp(dir=root, prefix=f"{system.name}-{i}-")
            args = {**case, "id": i, "ports": ports, "dir": d}
            procs.append(subprocess.Popen(system.command(args), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True))
        leader, _ = read_event(procs, "warm", START_TIMEOUT_S + 15)
        cpu0 = [proc_cpu_s(p.pid) for p in procs]
        assert procs[leader].stdin
        procs[leader].stdin.write("go\n")
        procs[leader].stdin.flush()
        _, res = read_event(procs[leader:leader + 1], "result", case["max_s"] + 15)
        cpu = [proc_cpu_s(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
        hwm = [proc_hwm_kib(p.pid) for p in procs]
    finally:
        stop(procs)
    n = max(res["entries"], 1)
    followers = [c for i, c in enumerate(cpu) if i != leader]
    return {**res, "leader_cpu_us": cpu[leader] / n * 1e6,
            "follower_cpu_us": sum(followers) / len(followers) / n * 1e6,
            "cluster_cpu_us": sum(cpu) / n * 1e6, "max_rss_mib": max(hwm) / 1024,
            "rate": res["entries"] / res["elapsed_s"]}


# ----------------------------------------------------------------- output

COLUMNS = [("rate", "entries/s", "{:>10,.0f}"), ("p50_us", "p50 us", "{:>9,.0f}"),
           ("p99_us", "p99 us", "{:>9,.0f}"), ("leader_cpu_us", "ldr cpu us", "{:>10,.1f}"),
           ("follower_cpu_us", "fol cpu us", "{:>10,.1f}"),
           ("cluster_cpu_us", "all cpu us", "{:>10,.1f}"), ("max_rss_mib", "rss MiB", "{:>8,.1f}")]


def print_case(title: str, rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    head = f"{'system':<26}" + "".join(f"  {h:>{len(f.format(0))}}" for _, h, f in COLUMNS)
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        flag = " (timed out)" if r.get("timed_out") else ""
        print(f"{name:<26}" + "".join("  " + f.format(r[k]) for k, _, f in COLUMNS) + flag)
    base = rows.get("raftpy")
    for name, r in rows.items():
        if name == "raftpy" or base is None:
            continue
        label = f"raftpy/{name}"
        print(f"{label:<26}" + "".join(
            f"  {(base[k] / r[k] if r[k] else float('nan')):>{len(f.format(0)) - 1},.2f}x"
            for k, _, f in COLUMNS))


def plot(path: str, results: list[dict[str, Any]]) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no plot written to {path}: matplotlib is not installed "
              "(pip install -e '.[plots]'; the bench extra has it too)", file=sys.stderr)
        return
    cases = list(dict.fromkeys(r["case"] for r in results))
    systems = list(dict.fromkeys(r["system"] for r in results))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, len(cases) * 1.2), 5))
    width = 0.8 / len(systems)
    for j, s in enumerate(systems):
        by = {r["case"]: r for r in results if r["system"] == s}
        xs = [i + j * width for i in range(len(cases))]
        axes[0].bar(xs, [by[c]["rate"] if c in by else 0 for c in cases], width, label=s)
        axes[1].bar(xs, [by[c]["p50_us"] if c in by else 0 for c in cases], width, label=s)
    for ax, label in ((axes[0], "entries/s"), (axes[1], "p50 latency (us)")):
        ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(cases))])
        ax.set_xticklabels(cases, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(label)
        ax.set_yscale("log")
    # one legend above both plots: inside either it hides bars
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(systems), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=100)
    print(f"plot written to {path}", file=sys.stderr)     # stdout may be JSON lines


def cases(quick: bool, policies: list[str], in_flight: list[int] | None = None,
          sizes: list[int] | None = None, repeat: int = 1) -> list[dict[str, Any]]:
    """The cases to run; in_flight/sizes keep only those (e.g. W1 at 8 B), and
    repeat runs each that many times in a row (compare medians, not one run)."""
    if quick:
        chosen = [{"policy": "libraft", "in_flight": w, "size": 8, "count": n, "warmup": 10,
                   "max_s": 10} for w, n in ((1, 40), (64, 1000))]
    else:
        counts = {1: 1000, 64: 10000, 1024: 50000}
        chosen = [{"policy": p, "in_flight": w, "size": size, "count": counts[w],
                   "warmup": min(2000, counts[w] // 4), "max_s": 30}
                  for p in policies for size in (8, 1024) for w in (1, 64, 1024)]
    chosen = [c for c in chosen if (in_flight is None or c["in_flight"] in in_flight)
              and (sizes is None or c["size"] in sizes)]
    return [c for c in chosen for _ in range(repeat)]


def run_all(args: Any, systems: list[System], save: Any) -> list[dict[str, Any]]:
    """Every case on every system; prints a table per case (or JSON lines)."""
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="raftpy-cluster-") as root:
        for case in cases(args.quick, args.policies.split(","), _ints(args.in_flight),
                          _ints(args.sizes), args.repeat):
            name = f"{case['policy']}_w{case['in_flight']}_{case['size']}B"
            rows = {}
            for s in systems:
                r = run_case(s, case, root)
                row = {"name": f"{name}_{s.name}", "case": name, "system": s.name,
                       "value": round(r["rate"], 1), "unit": "entries/s", **case,
                       **{k: (round(v, 2) if isinstance(v, float) else v)
                          for k, v in r.items() if k != "ev"}}
                if s.node == "pysyncobj":
                    row["durability"] = JOURNAL_NOTE
                rows[s.name] = row
                results.append(row)
                for out in (sys.stdout if args.json else None, save):
                    if out is not None:
                        print(json.dumps(row), file=out, flush=True)
            if not args.json:
                print_case(f"{name}: {case['count']} entries after {case['warmup']} warm-up",
                           rows)
    return results


def _ints(text: str | None) -> list[int] | None:
    return None if text is None else [int(x) for x in text.split(",")]


def print_saved(path: str) -> list[dict[str, Any]]:
    """The tables of a run saved with --save (or printed with --json)."""
    with open(path) as f:
        results = [json.loads(line) for line in f if line.strip()]
    print(f"results of {path}")
    for case in dict.fromkeys(r["case"] for r in results):
        rows = {r["system"]: r for r in results if r["case"] == case}
        first = next(iter(rows.values()))
        print_case(f"{case}: {first['count']} entries after {first['warmup']} warm-up", rows)
    return results


def print_preamble(systems: list[System]) -> None:
    print(f"load average before: {os.getloadavg()}")
    for s in systems:
        print(f"{s.name}: {s.note}")
    print("snapshot policy 'libraft': threshold 1024, trailing 2048 (raftpy and libraft; "
          "PySyncObj: logCompactionMinEntries 1024, no trailing entries, count-triggered "
          "only); 'off': never (libraft: threshold 2**32-1)")
    print("cpu us = CPU microseconds per entry of one server process (follower: mean "
          "of the two); rss = peak VmHWM of the 3 processes")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--node":
        (raftpy_node if sys.argv[2] == "raftpy" else pysyncobj_node)(json.loads(sys.argv[3]))
        return
    # a SIGTERM runs the finally blocks, so the children are stopped by PID too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dir", default=None, help="directory on the disk to use")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    p.add_argument("--policies", default="libraft,off")
    p.add_argument("--in-flight", default=None, metavar="W,...",
                   help="only these requests-in-flight cases (of 1,64,1024)")
    p.add_argument("--sizes", default=None, metavar="B,...",
                   help="only these command sizes (of 8,1024)")
    p.add_argument("--repeat", type=int, default=1, help="run each case this many times")
    p.add_argument("--plot", default=None, metavar="FILE", help="PNG of rate and p50")
    p.add_argument("--save", default=None, metavar="FILE",
                   help="also write the JSON lines of --json to FILE")
    p.add_argument("--results", default=None, metavar="FILE",
                   help="run nothing: print the tables (and --plot) of a saved run")
    args = p.parse_args()
    if args.results:
        results = print_saved(args.results)
    else:
        systems = []
        for name in args.systems.split(","):
            why = SYSTEMS[name].available()
            if why:
                print(f"skipping {name}: {why}", file=sys.stderr if args.json else sys.stdout)
            else:
                systems.append(SYSTEMS[name])
        if not args.json:
            print_preamble(systems)
        with open(args.save, "w") if args.save else contextlib.nullcontext() as save:
            results = run_all(args, systems, save)
        if not args.json:
            print(f"\nload average after: {os.getloadavg()}")
    if args.plot:
        plot(args.plot, results)


if __name__ == "__main__":
    main()
