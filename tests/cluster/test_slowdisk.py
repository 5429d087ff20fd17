"""tests/cluster/slowdisk.py itself: a throttle slows this process's O_DIRECT
writes to its disk, lifting it restores them, and close() leaves no cgroup,
loop device or mount behind (also when the test fails inside).  Skips with the
printed reason where slow disks cannot be made; fails instead under CI=true."""

from __future__ import annotations

import mmap
import os
import subprocess
import time

import pytest
from slowdisk import BLKIO, SlowDisks, available  # tests/cluster on sys.path

WHY_NOT = available()
if WHY_NOT is not None:
    if os.environ.get("CI"):
        raise RuntimeError(f"slow disks are required under CI=true: {WHY_NOT}")
    pytest.skip(f"no slow disks here: {WHY_NOT}", allow_module_level=True)

WRITES = 20


def _timed_writes(directory: str) -> float:
    """Seconds for WRITES durable 4 KiB O_DIRECT writes (as the store does them)."""
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, "f"),
                 os.O_CREAT | os.O_WRONLY | os.O_DIRECT | os.O_DSYNC, 0o600)
    buffer = mmap.mmap(-1, 4096)             # page aligned, as O_DIRECT needs
    try:
        started = time.monotonic()
        for i in range(WRITES):
            os.pwrite(fd, buffer, i * 4096)
        return time.monotonic() - started
    finally:
        os.close(fd)
        buffer.close()


def _leave_cgroup() -> None:
    with open(os.path.join(BLKIO, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))


def test_a_throttle_slows_writes_and_close_leaves_nothing(tmp_path) -> None:
    disks = SlowDisks(str(tmp_path), [1]).start()
    cgroup, device, mount = disks.cgroups[1], disks.devices[1], disks.mount_point(1)
    try:
        disks.attach(1, os.getpid())
        free_s = _timed_writes(disks.directory(1))
        disks.throttle(1, write_iops=20)
        slow_s = _timed_writes(disks.directory(1))
        disks.lift(1)
        lifted_s = _timed_writes(disks.directory(1))
        print(f"{WRITES} writes: {free_s:.3f} s free, {slow_s:.3f} s at 20 IOPS, "
              f"{lifted_s:.3f} s lifted; {disks.writes()[1]} counted")
        assert slow_s >= 0.5, slow_s          # 20 writes at 20 IOPS: about 1 s
        assert lifted_s < slow_s / 4, (lifted_s, slow_s)
        assert disks.writes()[1] >= 3 * WRITES
    finally:
        _leave_cgroup()      # this process is not the caller's to kill
        disks.close()
    assert not os.path.exists(cgroup)
    assert subprocess.run(["mountpoint", "-q", mount]).returncode != 0
    listed = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert f"{device}:" not in listed


def test_close_after_a_failed_start_undoes_what_was_made(tmp_path) -> None:
    """Disk 2's image cannot be made (its path is a directory): disk 1 is undone."""
    os.makedirs(tmp_path / "disk2.img")
    disks = SlowDisks(str(tmp_path), [1, 2])
    with pytest.raises(OSError):
        disks.start()
    assert not disks.cgroups and not disks.devices and not disks.mounted
    assert not any(name.startswith(disks.tag) for name in os.listdir(BLKIO))
