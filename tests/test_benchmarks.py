"""The benchmark scripts run and print well-formed results (figures not asserted)."""

import json
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", ["blocking.py", "cluster.py", "codec.py", "disk.py",
                                    "memory.py", "reads.py", "server.py", "transport.py"])
def test_benchmark_prints_json_cases(script, tmp_path):
    args = [sys.executable, str(BENCH / script), "--quick", "--json"]
    if script == "disk.py":
        args += ["--dir", str(tmp_path), "--writes", "50", "--store-seconds", "0.2",
                 "--load-mib", "4"]
    if script in ("server.py", "cluster.py", "blocking.py", "memory.py", "reads.py"):
        args += ["--dir", str(tmp_path)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=300).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    # cluster.py --quick: 2 cases, one row per system (raftpy alone without pysyncobj)
    assert len(rows) >= (2 if script == "cluster.py" else 5)
    for row in rows:
        assert {"name", "value", "unit"} <= row.keys()
        assert row["value"] > 0, row
    if script == "cluster.py":
        assert not _processes_mentioning(str(tmp_path)), "cluster.py left server processes"


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains text (the node processes get their data dir)."""
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                pids.append(int(entry.name))
    return pids
