"""Run the model checker from the command line (raftpy/testing/modelcheck.py)::

    .venv/bin/python tests/sim/model_check.py --model election --seconds 600

(``--depth N``, ``--fifo``, ``--batch N``: N events per batched step, 0 none,
``--batch-ticks``: timers in batches too)

prints the states found per depth and, on a violation, the path that leads
to it with the core's trace lines.  The test suite runs bounded searches of
every model (tests/sim/test_model_check.py).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import replace

from raftpy.core.trace import ListTracer
from raftpy.testing.modelcheck import MODELS, explore, replay


def main(argv: Sequence[str] | None = None) -> int:
    """Explore one model and print what it did; exit 1 with a trace on a violation."""
    parser = argparse.ArgumentParser(description="Explore the core's state space.")
    parser.add_argument("--model", choices=sorted(MODELS), default="election")
    parser.add_argument("--depth", type=int, help="depth bound (default: the model's)")
    parser.add_argument("--seconds", type=float, default=0.0, help="time limit (0: none)")
    parser.add_argument("--fifo", action="store_true", help="in-order links (TCP)")
    parser.add_argument("--batch", type=int, help="events per batched step, 0: none "
                        "(default: the model's)")
    parser.add_argument("--batch-ticks", action="store_true",
                        help="a batch may hold the server's timer firing too")
    args = parser.parse_args(argv)
    bounds = replace(MODELS[args.model], max_seconds=args.seconds, fifo=args.fifo,
                     batch_ticks=args.batch_ticks,
                     **({"depth": args.depth} if args.depth else {}),
                     **({"batch": args.batch} if args.batch is not None else {}))
    print(f"model {args.model}: {bounds}")
    report = explore(bounds, clock=time.monotonic, progress=lambda r: print(
        f"depth {r.depth}: {r.per_depth[-1]:,} new states, {r.states:,} in all, "
        f"{r.transitions:,} transitions, {r.seconds:.1f} s", flush=True))
    print(report.summary())
    if report.counterexample is not None:
        tracer = ListTracer()
        replay(bounds, report.counterexample.path, tracer)
        print("\n".join(tracer.lines))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
