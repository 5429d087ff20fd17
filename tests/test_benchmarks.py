"""The benchmark scripts run and print well-formed results (figures not asserted)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", ["blocking.py", "cluster.py", "codec.py", "critical_path.py",
                                    "disk.py", "memory.py", "reads.py", "server.py",
                                    "transport.py"])
def test_benchmark_prints_json_cases(script, tmp_path):
    args = [sys.executable, str(BENCH / script), "--quick", "--json"]
    if script == "disk.py":
        args += ["--dir", str(tmp_path), "--writes", "50", "--store-seconds", "0.2",
                 "--load-gib", "0.004"]
    if script in ("server.py", "cluster.py", "blocking.py", "memory.py", "reads.py",
                  "critical_path.py"):
        args += ["--dir", str(tmp_path)]
    res = subprocess.run(args, check=True, capture_output=True, text=True, timeout=300)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    # cluster.py --quick: 2 cases, one row per system (raftpy alone without pysyncobj)
    assert len(rows) >= (2 if script == "cluster.py" else 5)
    for row in rows:
        assert {"name", "value", "unit"} <= row.keys()
        assert row["value"] > 0, row
    if script in ("cluster.py", "critical_path.py"):
        assert not _processes_mentioning(str(tmp_path)), f"{script} left server processes"
    if script == "cluster.py":
        _check_cluster_systems(rows, res.stderr)
    if script == "critical_path.py":
        _check_critical_path(rows)


def _check_cluster_systems(rows: list[dict], stderr: str) -> None:
    """Both quick cases ran raftpy, and libraft too unless the run said why not
    (which CI does not accept: it installs libraft-dev)."""
    by_system: dict[str, list[dict]] = {}
    for row in rows:
        by_system.setdefault(row["system"], []).append(row)
    assert len(by_system["raftpy"]) == 2, rows
    if "libraft" not in by_system:
        why = [line for line in stderr.splitlines() if line.startswith("skipping libraft:")]
        assert why, f"no libraft rows and no reason given; stderr:\n{stderr}"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{why[0]} (CI is set: the libraft benchmark must run)")
        print(why[0])
        return
    for row in by_system["libraft"]:
        assert row["entries"] == row["count"] and not row["timed_out"], row
        assert row["p50_us"] > 0 and row["cluster_cpu_us"] >= 0, row


def _check_critical_path(rows: list[dict]) -> None:
    """Every request of the quick run was followed, and the stages add up to
    about the whole path (each stage is a median, so not exactly)."""
    total = next(r for r in rows if r["name"] == "w1_path_total")
    stages = [r for r in rows if r["name"] != "w1_path_total"]
    assert len(stages) == 9 and total["followed"] >= 150, total
    assert 0.5 * total["value"] < sum(r["value"] for r in stages) < 1.5 * total["value"], rows
    assert 0 < total["python_us"] < total["value"], total


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


def _saved_rows(path: pathlib.Path) -> None:
    rows = [{"name": f"off_w1_8B_{s}", "case": "off_w1_8B", "system": s, "value": v,
             "unit": "entries/s", "count": 10, "warmup": 2, "rate": v, "p50_us": 1000 / v,
             "p99_us": 2000 / v, "leader_cpu_us": 5.0, "follower_cpu_us": 2.0,
             "cluster_cpu_us": 9.0, "max_rss_mib": 3.0, "timed_out": False}
            for s, v in (("raftpy", 300.0), ("libraft", 100.0))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_cluster_results_print_ratios_and_plot(tmp_path):
    """--results prints a saved run's table with the raftpy/libraft ratio, and --plot
    writes a PNG of it, or says clearly that matplotlib is missing."""
    saved = tmp_path / "run.jsonl"
    _saved_rows(saved)
    png = tmp_path / "run.png"
    res = subprocess.run([sys.executable, str(BENCH / "cluster.py"), "--results", str(saved),
                          "--plot", str(png)], check=True, capture_output=True, text=True,
                         timeout=120)
    ratio = [line for line in res.stdout.splitlines() if line.startswith("raftpy/libraft")]
    assert ratio and ratio[0].split()[1] == "3.00x", res.stdout     # 300 / 100 entries/s
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in res.stderr, res.stderr
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cluster_plot_without_matplotlib_says_so(tmp_path):
    blocker = tmp_path / "blocked" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked by the test')\n")
    saved = tmp_path / "run.jsonl"
    _saved_rows(saved)
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    res = subprocess.run([sys.executable, str(BENCH / "cluster.py"), "--results", str(saved),
                          "--plot", str(tmp_path / "x.png")], check=True, capture_output=True,
                         text=True, timeout=120, env=env)
    assert "matplotlib is not installed (pip install -e '.[plots]'" in res.stderr, res.stderr
    assert not (tmp_path / "x.png").exists()
