"""Which chaos seeds find a mutant: python tests/sim/chaos_mutant_seeds.py MUTANT LO HI

Runs raftpy/testing/chaos.py's random_run for seeds LO..HI-1 with the mutant
(tests/sim/mutants.py) installed and prints each seed that fails it (a
checker's Violation, or the core's own assertion).  A change to the core
moves every run's trajectory, so test_chaos_mutants.py's seeds are re-found
with this when none of a mutant's seeds still finds it.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from mutants import apply_mutant  # noqa: E402

from raftpy.testing.chaos import random_run  # noqa: E402
from raftpy.testing.checkers import Violation  # noqa: E402


def main() -> None:
    mutant, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    patch = pytest.MonkeyPatch()
    apply_mutant(patch, mutant)
    t0 = time.monotonic()
    found = 0
    for seed in range(lo, hi):
        try:
            random_run(seed, 3 if seed % 2 else 5, 5000)
        except (Violation, AssertionError) as err:
            found += 1
            print(f"seed {seed}: {type(err).__name__}: {str(err)[:200]}", flush=True)
    print(f"{mutant}: {found} of {hi - lo} seeds ({lo}..{hi - 1}) in "
          f"{time.monotonic() - t0:.0f} s")
    patch.undo()


if __name__ == "__main__":
    main()
