"""example/server.py with a known-bad core rule put back (tests/sim/mutants.py).

    python tests/cluster/mutant_server.py MUTANT <example/server.py arguments>

For the process-level tests that must show they catch a real bug: the
mutant is installed in this process, then example/server.py runs as if
started directly.  Test code only; nothing in raftpy reads it.
"""

from __future__ import annotations

import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "sim"))

from mutants import apply_mutant_for_good  # noqa: E402 (tests/sim)

if __name__ == "__main__":
    mutant = sys.argv.pop(1)
    apply_mutant_for_good(mutant)
    print(f"mutant {mutant} installed", file=sys.stderr, flush=True)
    server = os.path.join(ROOT, "example", "server.py")
    sys.argv[0] = server
    runpy.run_path(server, run_name="__main__")
