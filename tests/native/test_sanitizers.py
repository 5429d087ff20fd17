"""Build the C engine with AddressSanitizer + UBSan and run the fuzz driver."""

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "csrc" / name for name in ("crc32.c", "batch.c", "wire.c", "aio.c")]


def test_fuzz_driver_under_asan_and_ubsan(tmp_path, seeded_random):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on PATH: cannot build the sanitizer driver")
    exe = tmp_path / "fuzz_native"
    cmd = [cc, "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           "-I", str(ROOT / "csrc"), str(ROOT / "tests" / "native" / "fuzz_native.c"),
           *map(str, SOURCES), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    seed = seeded_random.randrange(1, 2**63)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    proc = subprocess.run([str(exe), str(seed), "200000", str(tmp_path)], check=False,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"seed {seed}\n{proc.stdout}\n{proc.stderr}"
    assert "ok 200000 rounds" in proc.stdout
