"""The swarm chaos runs find the bugs the model checker's bounds cannot reach.

Each mutant (tests/sim/mutants.py) puts a bug back into the core; the seeds
listed are runs of raftpy/testing/chaos.py that found it (by a scan of the
2,000 CI seeds, or the soak that found the bug first), and must keep finding
it.  The model checker finds the others (tests/sim/test_model_check.py);
the two are complementary: the chaos runs do not find issue 8's split brain
in 2,000 seeds, the model checker finds it in a second.
"""

from __future__ import annotations

import pytest
from mutants import apply_mutant  # tests/sim is on sys.path (rootdir-relative imports)

from raftpy.testing.chaos import random_run
from raftpy.testing.checkers import Violation

FOUND_BY = {
    # libraft's stale refusal read as success (the swarm soak of issue 8).
    "stale-reject-reads-success": (9599, 17207),
    # Figure 3.7 of the dissertation: earlier terms' entries committed by counting.
    "commit-old-terms": (835, 943),
}


@pytest.mark.parametrize("mutant", sorted(FOUND_BY))
def test_chaos_seeds_find_the_mutant(mutant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    apply_mutant(monkeypatch, mutant)
    for seed in FOUND_BY[mutant]:
        with pytest.raises(Violation) as caught:
            random_run(seed, 3 if seed % 2 else 5, 5000)
        print(f"{mutant}: seed {seed}: {caught.value}")
