"""The model checker (raftpy/testing/modelcheck.py): bounded exhaustive searches
of the core, and proof that the searches find real bugs.

* Every model is searched breadth first to a fixed depth (``DEPTHS``, each
  about 5-30 s here; ``RAFTPY_MC_DEPTH=N`` searches N levels deeper, and
  ``RAFTPY_MC_SECONDS`` caps each search, default 600), and must find no
  violation.  The states explored and the depth reached are printed.
* Mutants (tests/sim/mutants.py) put known bugs back into the core; each must
  be found.  ``transferee-vote`` is issue 8's split brain (A1), found from the
  bootstrap state: two leaders in term 3.
* The ``batch`` model also feeds one server several of its inputs in one
  ``step_all`` (as the Server drains a loop iteration).  It finds
  ``snapshot-before-batch-applies`` (a snapshot labelled below what the
  batch applied, 27eea35), and the same model without batched steps, at
  the same depth, does not: the batching is what finds it.  The
  ``batch-faults`` and ``batch-membership`` models batch failures and
  client requests too; ``batch-faults`` finds ``truncate-keeps-batched-write``
  (a write failure reported in the step_all that also queued a later write
  must cancel that write) in two steps, which single steps never reach.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from mutants import apply_mutant  # tests/sim is on sys.path (rootdir-relative imports)

from raftpy.core.configuration import Role
from raftpy.core.events import Event
from raftpy.core.raft import Raft
from raftpy.core.trace import ListTracer
from raftpy.core.update import Update
from raftpy.testing import modelcheck
from raftpy.testing.modelcheck import MODELS, Bounds, explore, replay

SECONDS = float(os.environ.get("RAFTPY_MC_SECONDS", "600"))
EXTRA = int(os.environ.get("RAFTPY_MC_DEPTH", "0"))
DEPTHS = {"election": 8, "replication": 6, "snapshot": 5, "membership": 6, "prevote": 6,
          "faults": 5, "joining": 7, "batch": 5, "batch-faults": 4, "batch-membership": 5}


def _run(bounds: Bounds) -> modelcheck.Report:
    report = explore(bounds, clock=time.monotonic)
    print(f"\n{bounds}\n{report.summary()}\nnew states per depth: {report.per_depth}")
    return report


def test_every_model_has_a_depth() -> None:
    assert set(DEPTHS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bounded_search_finds_no_violation(name: str) -> None:
    depth = DEPTHS[name] + EXTRA
    report = _run(replace(MODELS[name], depth=depth, max_seconds=SECONDS))
    assert report.counterexample is None, report.counterexample
    if not report.complete:
        print(f"CUT SHORT by RAFTPY_MC_SECONDS={SECONDS} at depth {report.depth}")
    assert report.complete or report.depth >= depth - 2
    assert report.states > 10_000


def test_tcp_links_search_deeper() -> None:
    """With in-order links (TCP, no duplicates) the same search goes deeper."""
    depth = 9 + EXTRA
    report = _run(replace(MODELS["election"], fifo=True, depth=depth, max_seconds=SECONDS))
    assert report.counterexample is None, report.counterexample
    assert report.complete or report.depth >= depth - 2


# The membership model with its spare a standby already: a leader that counts
# the standby toward a commit is then a few steps from a violation.
WITH_STANDBY = replace(MODELS["membership"], prefix=(
    "tick 1", "stabilize", f"assign 1 3 {int(Role.STANDBY)}", "stabilize"))

# Where each mutant is found (model, the violation's words), within seconds.
CAUGHT: dict[str, tuple[str | Bounds, str]] = {
    "transferee-vote": ("election", "election safety: 2 and 3 lead term 3"),
    "ack-before-durable": ("election", "does not hold it durably"),
    "vote-any-log": ("election", "state machine safety"),
    "leader-counts-unwritten": ("election", "durability: committed entry"),
    "commit-alone": ("replication", "durability: committed entry"),
    "commit-counts-standbys": (WITH_STANDBY, "durability: committed entry"),
    "snapshot-before-batch-applies": ("batch", "snapshot consistency: server"),
    "truncate-keeps-batched-write": ("batch-faults", "writes entries from 4 after its log"),
}


@pytest.mark.parametrize("mutant", sorted(CAUGHT))
def test_mutant_is_found(mutant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model, words = CAUGHT[mutant]
    apply_mutant(monkeypatch, mutant)
    bounds = replace(MODELS[model] if isinstance(model, str) else model, max_seconds=60)
    report = _run(bounds)
    found = report.counterexample
    assert found is not None, f"{mutant} escaped the {model} model"
    assert words in found.error
    print("path:", *map(modelcheck.describe, found.path), sep="\n  ")
    # The path replays to the same violation, with the core's trace.
    tracer = ListTracer()
    assert replay(bounds, found.path, tracer) == found.error
    assert any("became leader" in line for line in tracer.lines)


def test_only_batched_steps_find_a_snapshot_labelled_before_the_batch_applied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch model without its batched steps, at the same depth and from the
    same state, finds nothing on the mutant: single steps never leave a
    snapshot request behind the entries its Update applies."""
    apply_mutant(monkeypatch, "snapshot-before-batch-applies")
    single = _run(replace(MODELS["batch"], batch=0, depth=DEPTHS["batch"], max_seconds=60))
    assert single.complete and single.counterexample is None, single.counterexample
    batched = _run(replace(MODELS["batch"], depth=DEPTHS["batch"], max_seconds=60))
    assert batched.counterexample is not None
    assert "snapshot consistency" in batched.counterexample.error
    assert any(action[0] == "batch" for action in batched.counterexample.path)


def test_a_batch_is_one_step_all_of_its_inputs_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batched step feeds its inputs to one step_all, in the action's order, and
    carries out the one Update: server 3 asked for a snapshot by its first event
    gets one at what the whole batch applied, where the same two inputs as
    single steps give one at what was applied before the message."""
    model = modelcheck.Model(MODELS["batch"])
    root = model.initial()
    batch = next(a for a in model.actions(root) if a[0] == "batch" and a[1] == 3
                 and [what[0] for what in a[2]] == ["take", "deliver"])
    calls: list[list[str]] = []
    step_all = Raft.step_all

    def recording(raft: Raft, events: list[Event]) -> Update:
        calls.append([type(e).__name__ for e in events])
        return step_all(raft, events)

    monkeypatch.setattr(Raft, "step_all", recording)
    batched = model.apply(root, batch)
    model.check(batched)
    assert calls == [["TakeSnapshot", "Receive"]]
    _take, (_deliver, src, mkey) = batch[2]
    single = model.apply(model.apply(root, ("take", 3)), ("deliver", src, 3, mkey))
    assert len(calls) == 1                      # single steps use step()
    s_batched, s_single = batched.servers[2], single.servers[2]
    assert s_batched.applied == s_single.applied == 2
    assert s_batched.taking is not None and s_batched.taking.index == 2
    assert s_single.taking is not None and s_single.taking.index == 1
    assert batched.net == single.net and batched.used == single.used


def test_split_brain_found_from_bootstrap_with_tcp_links(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A1 needs no reordering within a link: the TCP model finds it too."""
    apply_mutant(monkeypatch, "transferee-vote")
    report = _run(replace(MODELS["election"], fifo=True, max_seconds=60))
    assert report.counterexample is not None
    assert "election safety" in report.counterexample.error


def test_clone_shares_nothing_mutable() -> None:
    """A world's copy evolves on its own: stepping it leaves the original as it was."""
    model = modelcheck.Model(MODELS["election"])
    root = model.initial()
    key = root.key()
    world = root
    for _ in range(6):               # elect a leader and replicate, on copies
        actions = list(model.actions(world))
        world = model.apply(world, actions[0])
        model.check(world)
    assert root.key() == key
    assert any(s.raft is not None and s.raft.state.name == "LEADER" for s in world.servers)
    # Fingerprints ignore absolute time: the same state later hashes the same.
    for s in world.servers:
        modelcheck.check_clonable(s.raft)  # type: ignore[arg-type]


def test_fingerprint_covers_every_field() -> None:
    """A new RaftState field must be part of the fingerprint (or deliberately skipped)."""
    from raftpy.core.state import RaftState
    planned = {name for name, _fn in modelcheck._KEY_PLAN} | modelcheck._SKIP
    assert set(RaftState.__slots__) <= planned


def test_only_batched_failures_find_a_write_kept_past_a_truncation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch-faults model without batched steps, at the same depth, finds
    nothing on the mutant; with them, the leader's proposal and the failure
    of its earlier write in one step_all leave a write that no longer follows
    the log."""
    apply_mutant(monkeypatch, "truncate-keeps-batched-write")
    depth = DEPTHS["batch-faults"]
    single = _run(replace(MODELS["batch-faults"], batch=0, depth=depth, max_seconds=60))
    assert single.complete and single.counterexample is None, single.counterexample
    batched = _run(replace(MODELS["batch-faults"], depth=depth, max_seconds=60))
    found = batched.counterexample
    assert found is not None and "writes entries from" in found.error
    kinds = [what[0] for action in found.path if action[0] == "batch" for what in action[2]]
    assert "fail" in kinds, found.path


def test_batches_hold_failures_and_requests() -> None:
    """Within a step of the batch-faults state every kind of input is offered
    inside a batch: the write's failure, a failed send, a proposal and a
    transfer at the leader; and a batch whose failure voids the completion
    after it feeds the failure alone."""
    model = modelcheck.Model(MODELS["batch-faults"])
    root = model.initial()
    batches = [a for a in model.actions(root) if a[0] == "batch"]
    after_one = [a for w in (model.apply(root, a) for a in model.actions(root)
                             if a[0] != "batch")
                 for a in model.actions(w) if a[0] == "batch"]
    kinds = {what[0] for _b, _s, inputs in batches + after_one for what in inputs}
    assert {"fail", "send_fail", "propose", "transfer", "persist", "deliver"} <= kinds
    for _b, _s, inputs in batches + after_one:    # budgets of one: one of each per batch
        chosen = [what[0] for what in inputs]
        assert chosen.count("send_fail") <= 1 and chosen.count("transfer") <= 1, inputs
    leader = root.servers[0]
    assert len(leader.writes) == 1
    batch = next(a for a in batches if a[1] == 1
                 and [what[0] for what in a[2]] == ["fail", "persist"])
    new = model.apply(root, batch)
    model.check(new)
    s = new.servers[0]
    # Entry 3 failed, so it is not on the disk, and the one write left is the
    # truncation the core asks for in its place (no completion was fed).
    assert len(s.log) == 2 and s.writes == ((3, 0, (), None),)
    assert s.raft is not None and s.raft.state.name == "FOLLOWER"
    assert s.raft.log.last_index == 2


def test_a_committed_write_failing_in_the_batch_of_a_proposal_writes_nothing_after_it(
        ) -> None:
    """Found by the batch-faults model at depth 5 on the code before the fix
    (1b12050): leader 1 commits entry 3 on its followers' writes while its own
    is in flight; then a proposal (entry 4) and the failure of that write reach
    it in one step_all.  A committed entry that cannot be written makes it
    unavailable, but the Update still asked for entry 4 to be written after
    a log that ends at 2: a hole (the DiskStore refuses such an append; a
    Storage that did not would misplace entry 4 at index 3)."""
    model = modelcheck.Model(MODELS["batch-faults"])
    world = model.initial()

    def take(pick: Callable[[tuple[Any, ...]], bool]) -> None:
        nonlocal world
        action = next(a for a in model.actions(world) if pick(a))
        world = model.apply(world, action)
        model.check(world)

    take(lambda a: a == ("persist", 2))
    take(lambda a: a == ("persist", 3))
    take(lambda a: a[0] == "deliver" and a[2] == 1)     # 2's and 3's acks of entry 3
    take(lambda a: a[0] == "deliver" and a[2] == 1)
    leader = world.servers[0]
    assert leader.raft is not None and leader.raft.commit_index == 3
    assert len(leader.writes) == 1                        # its own write of entry 3
    take(lambda a: a[0] == "batch" and a[1] == 1
         and [what[0] for what in a[2]] == ["propose", "fail"])
    raft = world.servers[0].raft
    assert raft is not None and raft.state.name == "UNAVAILABLE"
    assert world.servers[0].writes == ()                  # nothing queued after the failure
