"""Randomized simulation: >= 2,000 seeded swarm runs of >= 5,000 steps, zero violations.

Runs alternate between 3- and 5-server clusters (odd seeds: 3).  Each seed
draws its own mix of features (raftpy/testing/chaos.py ``Swarm``: long
message holds, transfers racing check-quorum, snapshots sent into
partitions, slow disks, membership changes, log and term/vote write
failures, send failures, torn writes at a crash, slow state machines,
snapshots at random moments, a disaster recovered the documented way) on
top of partitions, crashes, restarts, loss, duplication, transfers,
barriers and client load; checks the safety properties after every step
(raftpy/testing/checkers.py and the cluster's quorum checks) and, at the
end, heals everything and requires a new entry to commit within a few
election timeouts and every member to catch up within a bound computed from
the seed's latencies (chaos.Bounds), its state machine equal to a replay of
the committed prefix.

Environment: ``RAFTPY_SEED=<n>`` replays that one run (add ``RAFTPY_TRACE=1``
and ``-s`` to print its whole trace);
``RAFTPY_SIM_RUNS=<n>`` changes the number of runs (soak testing);
``RAFTPY_SIM_BASE=<n>`` the first seed.  A failure names its seed and ends
with the run's last trace lines.
"""

from __future__ import annotations

import multiprocessing
import os

import pytest

from raftpy.core.trace import ListTracer
from raftpy.testing.chaos import RunReport, Swarm, random_run

STEPS = 5000
TRACE_TAIL = 60


def _servers(seed: int) -> int:
    return 3 if seed % 2 else 5


def _run(seed: int) -> tuple[int, int, str, RunReport | None]:
    """Run one seed; returns (seed, steps, failure text or '', report)."""
    try:
        report = random_run(seed, _servers(seed), STEPS)
    except AssertionError as exc:
        return seed, 0, f"{type(exc).__name__}: {exc}", None
    return seed, report.steps, "", report


def _explain(seed: int, failure: str) -> str:
    """Replay a failed seed with tracing and return the message to show."""
    tracer = ListTracer(limit=TRACE_TAIL)
    try:
        random_run(seed, _servers(seed), STEPS, tracer=tracer)
    except AssertionError:
        pass
    tail = "\n".join(tracer.tail(TRACE_TAIL))
    return (f"seed {seed} ({_servers(seed)} servers) failed: {failure}\n"
            f"replay: RAFTPY_SEED={seed} python -m pytest tests/sim -q\n"
            f"last trace lines:\n{tail}")


def test_random_runs() -> None:
    if "RAFTPY_SEED" in os.environ:
        seed = int(os.environ["RAFTPY_SEED"])
        print(f"replaying seed {seed}")
        if "RAFTPY_TRACE" in os.environ:  # the whole run's trace, to stdout (-s)
            tracer = ListTracer()
            try:
                random_run(seed, _servers(seed), STEPS, tracer=tracer)
            finally:
                print("\n".join(tracer.lines))
        _, steps, failure, _report = _run(seed)
        assert not failure, _explain(seed, failure)
        assert steps >= STEPS
        return
    runs = int(os.environ.get("RAFTPY_SIM_RUNS", "2000"))
    base = int(os.environ.get("RAFTPY_SIM_BASE", "0"))
    seeds = range(base, base + runs)
    print(f"seeds {base}..{base + runs - 1}")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(min(2, os.cpu_count() or 1)) as pool:
        results = list(pool.imap_unordered(_run, seeds, chunksize=16))
    failures = sorted((r[0], r[2]) for r in results if r[2])
    assert len(results) == runs
    assert all(r[1] >= STEPS for r in results if not r[2])
    reports = [r[3] for r in results if r[3] is not None]
    total = {name: sum(getattr(x, name) for x in reports)
             for name in ("acked", "leaders", "snapshots", "restores", "changes",
                          "configurations", "send_failures", "torn_crashes",
                          "hard_state_failures", "recoveries")}
    features = {name: sum(name in x.features for x in reports)
                for name in Swarm.__dataclass_fields__}
    commit_ms = sorted(x.commit_ms for x in reports) or [0]
    ratios = sorted(x.catch_up_ratio for x in reports) or [0.0]
    print(", ".join(f"{v} {k}" for k, v in total.items()))
    print("runs per feature: " + ", ".join(f"{k} {v}" for k, v in features.items()))
    print(f"after healing: commit in {commit_ms[len(commit_ms) // 2]} ms (median), "
          f"{commit_ms[-1]} ms (max); catch-up at {ratios[-1]:.2f} of its bound (worst)")
    # The runs do real work: clients are answered, leadership changes hands,
    # and every fault and feature of the swarm shows up.
    assert not failures or total["acked"] > 0
    if not failures:
        assert total["acked"] > 50 * runs and total["leaders"] > 3 * runs
        assert (total["snapshots"] > 5 * runs and total["restores"] > runs / 2
                and total["changes"] > runs / 4 and total["configurations"] > runs / 10)
    if not failures and runs >= 200:
        assert all(v > runs / 20 for v in features.values()), features
        assert all(total[k] > 0 for k in ("send_failures", "torn_crashes",
                                          "hard_state_failures", "recoveries")), total
    if failures:
        seed, text = failures[0]
        pytest.fail(f"{len(failures)} of {runs} runs failed, seeds "
                    f"{[s for s, _ in failures][:20]}\n" + _explain(seed, text))


@pytest.mark.parametrize("seed", [1, 2])
def test_same_seed_same_run(seed: int) -> None:
    """Determinism: a seed replays exactly (same trace, same outcome)."""
    traces = []
    for _ in range(2):
        tracer = ListTracer()
        random_run(seed, _servers(seed), 1500, tracer=tracer)
        traces.append(tracer.lines)
    assert traces[0] == traces[1]
    assert len(traces[0]) > 1000
