"""Shared test helpers: event-loop parametrisation and seeds.

Async tests run on both the plain asyncio loop and uvloop (DESIGN.md rule 12):
take the ``run_loop`` fixture and call ``run_loop(coro_fn())``.
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest


@pytest.fixture(params=["asyncio", "uvloop"])
def run_loop(request):
    if request.param == "uvloop":
        import uvloop

        def run(coro):
            return uvloop.run(coro)
    else:
        def run(coro):
            return asyncio.run(coro)
    run.kind = request.param
    return run


@pytest.fixture
def seeded_random(request):
    """A random.Random whose seed is printed, and replayed from RAFTPY_SEED."""
    seed = int(os.environ.get("RAFTPY_SEED", random.SystemRandom().randrange(2**32)))
    print(f"\n{request.node.nodeid}: seed {seed} (replay with RAFTPY_SEED={seed})")
    return random.Random(seed)
