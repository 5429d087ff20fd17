"""Servers' memory stays bounded over a long run with compaction (issue 11, item 4).

benchmarks/memory.py at a smaller scale: three example servers take 300,000
increments; from the first third of the run to the end, no server's RSS may
grow by more than 8 MiB with libraft's snapshot policy.  The same run with
snapshots off is the control that shows the check can fail: the whole log
stays in memory and RSS grows by tens of MiB (measured: 45 to 118 MiB over
400,000 entries, against 3 to 4 MiB with compaction).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "benchmarks"))
from memory import run  # noqa: E402 (benchmarks/memory.py)

ENTRIES = 300_000
BOUND_KIB = 8 * 1024


def test_rss_stays_bounded_with_compaction_and_grows_without(tmp_path) -> None:
    results = {}
    for policy in ("libraft", "off"):
        top = tmp_path / policy
        top.mkdir()
        results[policy] = r = run(ENTRIES, policy, 4, 1000, 30, str(top), warm_fraction=1 / 3)
        print(f"{policy}: growth after {r['warm_entries']:,} entries "
              f"{[g // 1024 for g in r['growth_kib']]} MiB, peaks "
              f"{[p // 1024 for p in r['peak_kib']]} MiB, {r['seconds']:.1f} s")
    assert max(results["libraft"]["growth_kib"]) < BOUND_KIB, results["libraft"]
    assert max(results["off"]["growth_kib"]) > 3 * BOUND_KIB, \
        f"without compaction memory should grow: the check cannot tell: {results['off']}"
