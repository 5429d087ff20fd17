"""Core benchmark: entries per second through a simulated 3-server cluster, no I/O.

Drives three ``raftpy.core.raft.Raft`` objects directly (no network, no disk,
no clock: writes complete at once and messages are handed over in the same
loop iteration), one batch of client entries per round, the way the shell
will drive the core: every event of an iteration into ``step_all``, one
Update out.  Reports, for batches of 1, 64 and 1024 entries of 8 bytes:

* ``entries_per_s``: committed and applied on all three servers per second;
* ``cpu_us_per_entry_per_server``: CPU time spent inside the three servers'
  ``step``/``step_all`` calls, divided by entries and by 3;
* the same for batches of 64 with libraft's default snapshot settings
  (threshold 1024, trailing 2048: every server snapshots and compacts as it
  goes, the "shell" answering at once with a 1 KiB snapshot).

And the cost of snapshots through the simulated cluster (raftpy.testing,
checkers off, a 1 MiB state machine snapshot, a log of 20,000 entries):

* ``snapshot_take_ms``: wall time to take a snapshot and compact the log on
  the leader (the request in the Update, the state machine's capture, the
  ``SnapshotTaken`` step with the compaction, the simulated disk's);
* ``snapshot_install_ms``: wall time from the leader sending InstallSnapshot
  to a follower that fell behind until that follower has installed it,
  restored its state machine and the leader has its acknowledgement.

Usage: ``python benchmarks/core.py [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raftpy.core.config import Config  # noqa: E402
from raftpy.core.configuration import Configuration  # noqa: E402
from raftpy.core.events import (  # noqa: E402
    Persisted,
    Propose,
    Receive,
    SnapshotTaken,
    Start,
    Tick,
)
from raftpy.core.raft import Raft, bootstrap_entries  # noqa: E402
from raftpy.core.types import State  # noqa: E402
from raftpy.testing.cluster import Cluster, Disk  # noqa: E402

SNAPSHOT_DATA = bytes(1024)


class Bench:
    """Three servers; server 1 is made leader; rounds push batches through."""

    def __init__(self, snapshots: bool = False) -> None:
        conf = Configuration.of((1, "1"), (2, "2"), (3, "3"))
        boot = bootstrap_entries(conf)
        self.now = 0
        self.cpu = 0.0
        self.applied = {1: 0, 2: 0, 3: 0}
        # Without snapshots the threshold is out of reach: the original figures.
        config = Config() if snapshots else Config(snapshot_threshold=1 << 62)
        self.servers = {i: Raft(i, str(i), config, random.Random(i), term=1,
                                entries=list(boot)) for i in (1, 2, 3)}
        self.inbox: dict[int, list] = {1: [], 2: [], 3: []}
        for i, raft in self.servers.items():
            self._handle(i, raft.step(Start(0)))
        self.now = self.servers[1].randomized_election_timeout  # server 1 times out
        self.step(1, [Tick(self.now)])
        self.drain()
        assert self.servers[1].state == State.LEADER

    def step(self, i: int, events: list) -> None:
        t0 = time.perf_counter()
        update = self.servers[i].step_all(events)
        self.cpu += time.perf_counter() - t0
        self._handle(i, update)

    def _handle(self, i: int, update) -> None:
        if update.persist:  # the "disk" completes the write at once
            last = update.persist_index + len(update.persist) - 1
            self.inbox[i].append(Persisted(self.now, last, update.persist[-1].term))
        for to_id, _address, message in update.messages:
            self.inbox[to_id].append(Receive(self.now, i, str(i), message))
        if update.apply:
            self.applied[i] = update.apply_index + len(update.apply) - 1
        if update.take_snapshot is not None:  # taken and durable at once
            self.inbox[i].append(SnapshotTaken(self.now, update.take_snapshot.index,
                                               SNAPSHOT_DATA))

    def drain(self) -> None:
        """Hand over queued events until the cluster is quiet."""
        busy = True
        while busy:
            busy = False
            for i in (1, 2, 3):
                events = self.inbox[i]
                if events:
                    self.inbox[i] = []
                    self.step(i, events)
                    busy = True

    def round(self, payloads: list[bytes]) -> None:
        self.step(1, [Propose(self.now, payloads)])
        self.drain()


def run_case(batch: int, entries: int, snapshots: bool = False) -> dict[str, float]:
    bench = Bench(snapshots)
    payloads = [b"%08d" % k for k in range(batch)]
    rounds = max(1, entries // batch)
    start_cpu, start = bench.cpu, time.perf_counter()
    first = bench.servers[1].log.last_index + 1
    for _ in range(rounds):
        bench.round(payloads)
    # one heartbeat so that followers learn the final commit index
    bench.now += 100
    bench.step(1, [Tick(bench.now)])
    bench.drain()
    wall = time.perf_counter() - start
    cpu = bench.cpu - start_cpu
    done = min(bench.applied.values()) - first + 1
    assert done >= rounds * batch, (done, rounds * batch)
    return {"entries_per_s": done / wall, "cpu_us_per_entry_per_server": cpu / done / 3 * 1e6,
            "entries": done}


class BlobMachine:
    """A state machine whose snapshot is a fixed blob of ``size`` bytes."""

    size = 1 << 20

    def __init__(self) -> None:
        self.count = 0
        self.blob = bytes(self.size)

    def apply(self, index: int, payload: bytes | memoryview) -> int:
        self.count += 1
        return self.count

    def snapshot(self) -> bytes:
        return self.blob

    def restore(self, data: bytes | memoryview) -> None:
        self.blob = bytes(data)


def snapshot_costs(entries: int) -> dict[str, float]:
    """Take a snapshot on the leader of a log of ``entries``; install it on a follower."""
    config = Config(snapshot_threshold=entries, snapshot_trailing=0)
    cluster = Cluster(3, 1, config=config, manual=True, check=False, machine=BlobMachine,
                      fixed_timeouts=True, disk=Disk(0, 0, snapshot_latency_ms=(0, 0)))
    cluster.tick(1)
    cluster.stabilize()
    cluster.partition([1, 2], [3])
    payloads = [b"%08d" % k for k in range(64)]
    while cluster.raft(1).commit_index < entries - 64:
        cluster.propose(1, *payloads)
        cluster.stabilize()
    leader = cluster.raft(1)
    start = time.perf_counter()
    cluster.propose(1, *payloads)   # crosses the threshold: the snapshot is asked for
    cluster.stabilize()
    cluster.complete_snapshots(1)
    take = time.perf_counter() - start
    assert leader.snapshot is not None and leader.log.offset >= entries - 128
    cluster.complete_snapshots()
    cluster.heal()
    follower = cluster.raft(3)
    cluster.elapse(config.heartbeat_timeout_ms)  # a heartbeat: 3 rejects, is heard from
    cluster.stabilize()
    start = time.perf_counter()
    cluster.elapse(config.heartbeat_timeout_ms)  # InstallSnapshot goes out
    cluster.stabilize()
    install = time.perf_counter() - start
    assert follower.snapshot is not None and follower.last_applied >= leader.snapshot.index
    assert leader.progress[3].match_index >= leader.snapshot.index
    return {"take_ms": take * 1e3, "install_ms": install * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--quick", action="store_true", help="fewer entries (smoke test)")
    args = parser.parse_args()
    total = 20_000 if args.quick else 200_000
    rows = []
    for batch in (1, 64, 1024):
        entries = total // 10 if batch == 1 else total
        result = run_case(batch, entries)
        rows.append((f"core_3servers_batch{batch}_entries_per_s",
                     result["entries_per_s"], "entries/s"))
        rows.append((f"core_3servers_batch{batch}_cpu_per_entry_per_server",
                     result["cpu_us_per_entry_per_server"], "us"))
    result = run_case(64, total, snapshots=True)
    rows.append(("core_3servers_batch64_snapshots_entries_per_s",
                 result["entries_per_s"], "entries/s"))
    rows.append(("core_3servers_batch64_snapshots_cpu_per_entry_per_server",
                 result["cpu_us_per_entry_per_server"], "us"))
    costs = snapshot_costs(2_000 if args.quick else 20_000)
    rows.append(("sim_3servers_snapshot_take_ms", costs["take_ms"], "ms"))
    rows.append(("sim_3servers_snapshot_install_ms", costs["install_ms"], "ms"))
    if args.json:
        for name, value, unit in rows:
            print(json.dumps({"name": name, "value": round(value, 3), "unit": unit}))
        return
    print(f"{'case':<60} {'value':>12}  unit")
    for name, value, unit in rows:
        print(f"{name:<60} {value:>12.2f}  {unit}")


if __name__ == "__main__":
    main()
