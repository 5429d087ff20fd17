"""A linearizability checker for key-value histories (Wing and Gong's search with
Lowe's memoization, split per key as Porcupine and Knossos do).

May import: the standard library only.  Pure and deterministic: the same history
and budget give the same verdict; no clock unless the caller passes one.

A history is a list of ``Operation``: a client's get, put, delete or
compare-and-set on one key, with the time it was invoked and the time its
answer arrived.  An operation whose answer never came (a timeout, a server
killed under it) has ``complete = math.inf`` and no output: it may have taken
effect at any time after its invocation, or never.  ``check`` says whether
some total order of the operations (1) respects real time (an operation that
completed before another was invoked comes first), (2) gives every completed
operation the output it was seen to return under a sequential dictionary,
and (3) places each unknown operation anywhere after its invocation or
drops it.

Rules it keeps:

* Per-key partitioning is exact here: every operation touches one key, so a
  history is linearizable iff each key's sub-history is (linearizability is
  local, Herlihy and Wing 1990, Theorem 1).
* The search walks a doubly linked list of call and return events in time
  order.  At a call it tries to linearize that operation next (the model
  must accept its output); at a return whose call was not linearized yet it
  backtracks.  Lowe's memoization (2017) skips a state already explored: the
  pair (set of linearized operations as a bitmask, model state) determines
  all that follows, so each pair is explored once.  An explored, failed
  configuration also rules out any with the same known operations and state
  and more unknown ones (``_record``).
* Cost: near linear when few operations overlap; a failing search must rule
  out every order that still fits before the bad operation, and with
  unanswered writes pending forever on one hot key that can exceed the
  budget (then UNKNOWN, as Knossos and Porcupine also run out there).
* At equal times a call sorts before a return: the two are then concurrent,
  the permissive reading (a checker must not report an anomaly the clock's
  resolution made up).
* An unknown operation's return sits at infinity, after every known one; the
  search ends as soon as every completed operation is linearized (what is
  left can be linearized last, or dropped).  An unknown get says nothing
  and is dropped up front.
* Bounded: ``max_steps`` caps the model steps tried over all keys, and an
  optional ``deadline`` with an injected ``clock`` caps the time; past
  either the verdict is UNKNOWN, never a guess.
* A failure names the key, the completed operation whose return the search
  could never get past (no order of what came before it allowed it), and the
  longest prefix of that key's history that could be linearized.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Value = Hashable          # a stored value; None means the key is absent


class Kind(enum.Enum):
    GET = "get"            # output: the value read (None: absent)
    PUT = "put"            # value: what was written; output unused
    DELETE = "delete"      # output unused
    CAS = "cas"            # expect -> value if the key holds expect; output: swapped?


class Verdict(enum.Enum):
    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"    # the budget ran out before the search ended


@dataclass(frozen=True, slots=True)
class Operation:
    kind: Kind
    key: Hashable
    invoke: float
    complete: float = math.inf     # inf: the outcome is unknown
    value: Value = None            # PUT's value, CAS's new value
    expect: Value = None           # CAS's expected value (None: the key is absent)
    output: Value = None           # GET: the value read; CAS: True or False
    client: int = 0                # for reports only

    @property
    def unknown(self) -> bool:
        return self.complete == math.inf

    def __str__(self) -> str:
        args = {Kind.GET: "", Kind.PUT: f", {self.value!r}", Kind.DELETE: "",
                Kind.CAS: f", {self.expect!r} -> {self.value!r}"}[self.kind]
        out = "?" if self.unknown else {Kind.GET: repr(self.output),
                                        Kind.CAS: repr(self.output)}.get(self.kind, "ok")
        end = "inf" if self.unknown else f"{self.complete:g}"
        return (f"client {self.client}: {self.kind.value}({self.key!r}{args}) -> {out}"
                f" [{self.invoke:g}, {end}]")


def get(key: Hashable, output: Value, invoke: float, complete: float,
        client: int = 0) -> Operation:
    return Operation(Kind.GET, key, invoke, complete, output=output, client=client)


def put(key: Hashable, value: Value, invoke: float, complete: float = math.inf,
        client: int = 0) -> Operation:
    return Operation(Kind.PUT, key, invoke, complete, value=value, client=client)


def delete(key: Hashable, invoke: float, complete: float = math.inf,
           client: int = 0) -> Operation:
    return Operation(Kind.DELETE, key, invoke, complete, client=client)


def cas(key: Hashable, expect: Value, value: Value, output: bool | None, invoke: float,
        complete: float = math.inf, client: int = 0) -> Operation:
    return Operation(Kind.CAS, key, invoke, complete, value=value, expect=expect,
                     output=output, client=client)


def step(state: Value, op: Operation) -> tuple[bool, Value]:
    """The sequential dictionary for one key: (is op's output legal here, next state).
    An unknown operation's output is unconstrained."""
    kind = op.kind
    if kind is Kind.GET:
        return op.unknown or state == op.output, state
    if kind is Kind.PUT:
        return True, op.value
    if kind is Kind.DELETE:
        return True, None
    matches = state == op.expect
    if op.unknown:
        return True, op.value if matches else state
    if op.output:
        return matches, op.value
    return not matches, state


@dataclass(frozen=True, slots=True)
class Counterexample:
    key: Hashable
    stuck: Operation                     # completed, and no order got it in before then
    linearized: tuple[Operation, ...]    # the longest prefix found, in its order
    concurrent: tuple[Operation, ...]    # what was pending beside it then

    def __str__(self) -> str:
        lines = [f"key {self.key!r}: cannot linearize {self.stuck}",
                 f"  longest linearizable prefix ({len(self.linearized)} operations), "
                 "its last ones:"]
        lines += [f"    {op}" for op in self.linearized[-8:]]
        lines += ["  pending beside it:"] + [f"    {op}" for op in self.concurrent[:8]]
        return "\n".join(lines)


@dataclass(slots=True)
class Result:
    verdict: Verdict
    counterexample: Counterexample | None = None
    steps: int = 0                       # model steps tried, over all keys
    keys: int = 0
    unknown_keys: list[Hashable] = field(default_factory=list)   # budget ran out there

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    def __str__(self) -> str:
        if self.counterexample is not None:
            return f"not linearizable\n{self.counterexample}"
        if self.verdict is Verdict.UNKNOWN:
            return (f"unknown: budget spent after {self.steps} steps "
                    f"(keys {self.unknown_keys[:5]!r})")
        return f"linearizable ({self.keys} keys, {self.steps} steps)"



class _Budget:
    """Steps left, and the deadline read every 1024 steps (the clock is injected)."""

    def __init__(self, max_steps: int, clock: Callable[[], float] | None,
                 deadline: float | None) -> None:
        self.left = max_steps
        self.used = 0
        self.clock, self.deadline = clock, deadline

    def spend(self) -> bool:
        self.left -= 1
        self.used += 1
        if self.left < 0:
            return False
        if self.clock is not None and self.deadline is not None and not self.used & 1023:
            return self.clock() < self.deadline
        return True


def check(history: Iterable[Operation], *, initial: Value = None,
          max_steps: int = 10_000_000, clock: Callable[[], float] | None = None,
          deadline: float | None = None) -> Result:
    """Is the history linearizable for a dictionary whose keys all start at
    ``initial`` (None: absent)?  ``clock`` and ``deadline`` (same units) bound the
    time; ``max_steps`` the model steps."""
    by_key: dict[Hashable, list[Operation]] = {}
    for op in history:
        _validate(op)
        if op.kind is Kind.GET and op.unknown:
            continue                         # an unanswered read constrains nothing
        by_key.setdefault(op.key, []).append(op)
    budget = _Budget(max_steps, clock, deadline)
    result = Result(Verdict.OK, keys=len(by_key))
    for key, ops in by_key.items():
        verdict, example = _check_key(key, ops, initial, budget)
        if verdict is Verdict.ILLEGAL:
            result.verdict, result.counterexample = verdict, example
            break
        if verdict is Verdict.UNKNOWN:
            result.verdict = Verdict.UNKNOWN
            result.unknown_keys.append(key)
            if budget.left < 0:
                break
    result.steps = budget.used
    return result


def _validate(op: Operation) -> None:
    if not isinstance(op, Operation):
        raise TypeError(f"a history holds Operation, not {type(op).__name__}")
    if math.isnan(op.invoke) or math.isnan(op.complete) or op.invoke == math.inf:
        raise ValueError(f"bad times in {op}")
    if op.complete < op.invoke:
        raise ValueError(f"completed before it was invoked: {op}")
    if op.kind is Kind.CAS and not op.unknown and not isinstance(op.output, bool):
        raise ValueError(f"a completed cas has output True or False: {op}")


class _Events:
    """The call/return events of one key as a doubly linked list over arrays.
    Event 2i is operation i's call, 2i+1 its return; node 2n is the head."""

    def __init__(self, ops: Sequence[Operation]) -> None:
        n = len(ops)
        order = sorted(range(2 * n), key=lambda e: (
            ops[e >> 1].complete if e & 1 else ops[e >> 1].invoke, e & 1))
        self.head = 2 * n
        self.next = [-1] * (2 * n + 1)
        self.prev = [-1] * (2 * n + 1)
        last = self.head
        for e in order:
            self.next[last], self.prev[e] = e, last
            last = e

    def _unlink(self, e: int) -> None:
        p, q = self.prev[e], self.next[e]
        self.next[p] = q
        if q >= 0:
            self.prev[q] = p

    def _relink(self, e: int) -> None:
        p, q = self.prev[e], self.next[e]
        self.next[p] = e
        if q >= 0:
            self.prev[q] = e

    def lift(self, call: int) -> None:
        """Take an operation's call and return out (dancing links: undone in reverse)."""
        self._unlink(call)
        self._unlink(call + 1)

    def unlift(self, call: int) -> None:
        self._relink(call + 1)
        self._relink(call)


def _check_key(key: Hashable, ops: list[Operation], initial: Value,
               budget: _Budget) -> tuple[Verdict, Counterexample | None]:
    events = _Events(ops)
    nxt, head = events.next, events.head
    unknown = [op.unknown for op in ops]
    known_left = unknown.count(False)
    state: Value = initial
    known_mask = unknown_mask = 0
    stack: list[tuple[int, Value, list[Any]]] = []   # (call, state before, its record)
    seen: dict[tuple[int, Value], list[list[Any]]] = {}
    best: list[int] = []
    stuck = -1
    entry = nxt[head]
    while known_left:
        if entry & 1 == 0:                    # a call: try it next in the order
            i = entry >> 1
            if not budget.spend():
                return Verdict.UNKNOWN, None
            legal, after = step(state, ops[i])
            if legal:
                record = _record(seen, known_mask, unknown_mask, i, unknown[i], after)
                if record is not None:
                    stack.append((entry, state, record))
                    state = after
                    if unknown[i]:
                        unknown_mask |= 1 << i
                    else:
                        known_mask |= 1 << i
                        known_left -= 1
                    events.lift(entry)
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
            continue
        if stuck < 0 or len(stack) > len(best):   # a return: this prefix is stuck here
            best = [call for call, _, _ in stack]
            stuck = entry >> 1
        if not stack:
            return Verdict.ILLEGAL, _counterexample(key, ops, best, stuck)
        call, state, record = stack.pop()
        record[1] = True                      # explored to the end, and failed
        i = call >> 1
        if unknown[i]:
            unknown_mask &= ~(1 << i)
        else:
            known_mask &= ~(1 << i)
            known_left += 1
        events.unlift(call)
        entry = nxt[call]
    return Verdict.OK, None


def _record(seen: dict[tuple[int, Value], list[list[Any]]], known_mask: int,
            unknown_mask: int, i: int, is_unknown: bool, state: Value) -> list[Any] | None:
    """Note the configuration that linearizing operation i reaches: its record
    [unknown operations linearized, explored], or None to skip it.

    Lowe's memo skips a configuration seen before.  Beyond it: one with the same
    known operations and state but a subset of the unknown ones subsumes it (an
    unknown operation not linearized yet only adds choices and never blocks), so
    once that one has been explored and failed this one fails too.  That cuts the
    2**u subsets of pending unknown writes to those whose effect still shows.  Only
    explored ones subsume: one still on the stack will try this continuation itself,
    but later than this path would, which only slows a search that succeeds."""
    if is_unknown:
        unknown_mask |= 1 << i
    else:
        known_mask |= 1 << i
    records = seen.setdefault((known_mask, state), [])
    for mask, explored in records:
        if mask == unknown_mask or (explored and mask & ~unknown_mask == 0):
            return None
    record = [unknown_mask, False]
    records.append(record)
    return record


def _counterexample(key: Hashable, ops: list[Operation], best: list[int],
                    stuck: int) -> Counterexample:
    done = {call >> 1 for call in best}
    blocked = ops[stuck]
    pending = tuple(op for i, op in enumerate(ops) if i not in done and i != stuck
                    and op.invoke <= blocked.complete)
    return Counterexample(key, blocked, tuple(ops[call >> 1] for call in best),
                          tuple(sorted(pending, key=lambda op: op.invoke)))
