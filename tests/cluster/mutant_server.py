"""example/server.py with a known-bad core rule put back (tests/sim/mutants.py).

    python tests/cluster/mutant_server.py MUTANT [SCRIPT.py] <its arguments>

For the process-level tests that must show they catch a real bug: the
mutant is installed in this process, then SCRIPT (default
example/server.py; example/kv.py for the key-value tests) runs as if started
directly.  Test code only; nothing in raftpy reads it.
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
    if len(sys.argv) > 1 and sys.argv[1].endswith(".py"):
        server = sys.argv.pop(1)
    sys.argv[0] = server
    sys.path.insert(0, os.path.dirname(os.path.abspath(server)))  # as if run directly
    runpy.run_path(server, run_name="__main__")
