"""Shared helpers for the benchmarks: timing, a table printer and --json output.

Every benchmark prints a readable table; with --json it prints one JSON object
per case instead, each with at least "name", "value" and "unit".
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from raftpy import StateMachine  # noqa: E402 (the repository root is on the path now)


class Counter(StateMachine):
    """The benchmarks' state machine: counts commands; the count is the result."""

    def __init__(self) -> None:
        self.count = 0

    def apply(self, command: bytes) -> object:
        self.count += 1
        return self.count

    def snapshot(self) -> bytes:
        return struct.pack("<Q", self.count)

    def restore(self, snapshot: bytes) -> None:
        (self.count,) = struct.unpack("<Q", snapshot)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print one JSON object per case")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    return p


def best_rate(fn: Callable[[], int], min_time: float = 0.2, repeat: int = 3) -> float:
    """Best units/second of fn (which returns how many units it did) over repeats."""
    best = 0.0
    for _ in range(repeat):
        units, start = 0, time.perf_counter()
        while True:
            units += fn()
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = max(best, units / elapsed)
    return best


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


class Report:
    """Collects rows; prints them as a table or as JSON lines."""

    def __init__(self, title: str, as_json: bool) -> None:
        self.title = title
        self.as_json = as_json
        self.rows: list[dict] = []

    def add(self, name: str, value: float, unit: str, **extra: object) -> None:
        row = {"name": name, "value": round(value, 3), "unit": unit, **extra}
        self.rows.append(row)
        if self.as_json:
            print(json.dumps(row), flush=True)

    def print_table(self) -> None:
        if self.as_json:
            return
        extras = sorted({k for r in self.rows for k in r} - {"name", "value", "unit"})
        width = max(len(r["name"]) for r in self.rows)
        print(f"\n{self.title}")
        head = f"{'case':<{width}}  {'value':>14}  {'unit':<10}" + "".join(
            f"  {k:>12}" for k in extras)
        print(head)
        print("-" * len(head))
        for r in self.rows:
            digits = 3 if r["unit"] == "x" else 1       # ratios need their decimals
            line = f"{r['name']:<{width}}  {r['value']:>14,.{digits}f}  {r['unit']:<10}"
            line += "".join(f"  {_fmt(r.get(k, '')):>12}" for k in extras)
            print(line)


def _fmt(v: object) -> str:
    return f"{v:,.2f}" if isinstance(v, float) else str(v)


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    import socket
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
