"""Randomized simulation: >= 2,000 seeded runs of >= 5,000 steps, zero violations.

Runs alternate between 3- and 5-server clusters (odd seeds: 3).  Each run
injects partitions (symmetric and one-way), crashes, restarts, message loss
and duplication, transfers, barriers, snapshots (with slow state machines and
small thresholds, so followers fall behind the leader's log and get
InstallSnapshot; some seeds also ask for snapshots at random moments) and
membership changes (servers added, promoted, demoted,
removed) under client load, on some seeds with slow state machines (applies
lag commits), checks the safety properties after every step
(raftpy/testing/checkers.py) and, at the end, heals everything and requires
a new entry to commit and reach every member, whose state machines must equal
a replay of the committed prefix.

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
from raftpy.testing.chaos import random_run

STEPS = 5000
TRACE_TAIL = 60


def _servers(seed: int) -> int:
    return 3 if seed % 2 else 5


def _run(seed: int) -> tuple[int, int, str, int, int, int, int, int, int, int, int]:
    """Run one seed; returns (seed, steps, failure text or '', acked, leaders,
    snapshots, restores, membership requests, configurations committed,
    slow servers, snapshots asked for at random moments)."""
    try:
        report = random_run(seed, _servers(seed), STEPS)
    except AssertionError as exc:
        return seed, 0, f"{type(exc).__name__}: {exc}", 0, 0, 0, 0, 0, 0, 0, 0
    return (seed, report.steps, "", report.acked, report.leaders, report.snapshots,
            report.restores, report.changes, report.configurations, report.slow_servers,
            report.snapshot_requests)


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
        _, steps, failure, *_counts = _run(seed)
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
    # The runs do real work: clients are answered and leadership changes hands.
    acked, leaders = sum(r[3] for r in results), sum(r[4] for r in results)
    snapshots, restores = sum(r[5] for r in results), sum(r[6] for r in results)
    changes, configurations = sum(r[7] for r in results), sum(r[8] for r in results)
    slow_runs = sum(1 for r in results if r[9])
    asking_runs = sum(1 for r in results if r[10])
    print(f"{acked} acknowledged entries, {leaders} leader terms, {snapshots} snapshot "
          f"indexes, {restores} restores, {changes} membership requests, "
          f"{configurations} configurations committed, {slow_runs} runs with slow "
          f"state machines, {asking_runs} with snapshots at random moments")
    assert not failures or acked > 0
    assert failures or (acked > 50 * runs and leaders > 3 * runs)
    assert failures or (snapshots > 5 * runs and restores > runs / 2 and changes > runs
                        and configurations > runs / 2)
    assert failures or runs < 20 or (slow_runs > runs / 10 and asking_runs > runs / 10)
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
