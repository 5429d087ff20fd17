"""Slow disks for fault tests: each server's data directory on a loop-mounted ext4
of its own, whose writes a cgroup v1 blkio throttle slows down on demand.

Test infrastructure beside netns.py (not in the package).  Device-mapper
(dm-delay) is not in every kernel; blkio throttling of a loop device is, where
cgroup v1's blkio controller is mounted: ``blkio.throttle.write_iops_device``
and ``write_bps_device`` limit what the processes in the cgroup write to that
device, and apply to raftpy's O_DIRECT writes (they go to the device as the
process issues them; buffered writes are throttled at writeback instead).  The
limit can be set and lifted while the process runs ("MAJ:MIN 0" lifts it).

Needs root, ``mkfs.ext4``, ``losetup``, ``mount`` and /sys/fs/cgroup/blkio;
``available()`` says why not where something is missing, and the tests skip
with that reason (under CI=true they fail instead).

Rules it keeps: everything it makes (images, loop devices, mounts, cgroups
named after the pid) is undone by ``close()``, also after a failed start, and
``close()`` never raises; the processes it throttles are the caller's, who
kills them (by PID) before ``close()``; a process still in a cgroup then is
moved back to the root cgroup so the cgroup can go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence

__all__ = ["SlowDisks", "available"]

BLKIO = "/sys/fs/cgroup/blkio"
IMAGE_MIB = 128               # sparse: costs what is written
# The kernel counts a cgroup's writes to a device (io_serviced) only while some
# limit is set on it, so "no limit" is this many IOPS rather than 0.
CEILING_IOPS = 1_000_000


def available() -> str | None:
    """None if slow disks can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "loop mounts and cgroups need root"
    for tool in ("mkfs.ext4", "losetup", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (util-linux, e2fsprogs)"
    if not os.path.exists(os.path.join(BLKIO, "blkio.throttle.write_iops_device")):
        return f"no cgroup v1 blkio throttling at {BLKIO}"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control is missing)"
    return None


def _run(argv: Sequence[str]) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


class SlowDisks:
    """One throttleable ext4 per id, under top: ``directory(i)`` to keep data in,
    ``attach(i, pid)``, ``throttle(i, ...)`` and ``lift(i)``."""

    def __init__(self, top: str, ids: Iterable[int]) -> None:
        self.top = top
        self.ids = list(ids)
        self.tag = f"rpslow{os.getpid()}"
        self.devices: dict[int, str] = {}       # id -> /dev/loopN
        self.numbers: dict[int, str] = {}       # id -> "MAJ:MIN"
        self.mounted: list[str] = []
        self.cgroups: dict[int, str] = {}
        self.throttled: set[int] = set()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> SlowDisks:
        try:
            for i in self.ids:
                self._make(i)
        except BaseException:
            self.close()
            raise
        return self

    def _make(self, i: int) -> None:
        image, mount = os.path.join(self.top, f"disk{i}.img"), self.mount_point(i)
        os.makedirs(mount, exist_ok=True)
        with open(image, "wb") as f:
            f.truncate(IMAGE_MIB << 20)
        _run(["mkfs.ext4", "-q", "-F", "-m", "0", image])
        device = _run(["losetup", "-f", "--show", image])
        self.devices[i] = device
        rdev = os.stat(device).st_rdev
        self.numbers[i] = f"{os.major(rdev)}:{os.minor(rdev)}"
        _run(["mount", device, mount])
        self.mounted.append(mount)
        cgroup = os.path.join(BLKIO, f"{self.tag}-{i}")
        os.makedirs(cgroup, exist_ok=True)
        self.cgroups[i] = cgroup
        self.lift(i)

    def close(self) -> None:
        """Lift every limit, free the cgroups, unmount, detach (idempotent)."""
        for i, cgroup in list(self.cgroups.items()):
            try:
                self.lift(i)
                with open(os.path.join(cgroup, "cgroup.procs")) as f:
                    stragglers = f.read().split()
                for pid in stragglers:
                    with open(os.path.join(BLKIO, "cgroup.procs"), "w") as f:
                        f.write(pid)
                os.rmdir(cgroup)
            except OSError as exc:
                print(f"slowdisk: cannot remove {cgroup}: {exc}")
            del self.cgroups[i]
        while self.mounted:
            mount = self.mounted.pop()
            if subprocess.run(["umount", mount], capture_output=True, timeout=60).returncode:
                subprocess.run(["umount", "-l", mount], capture_output=True, timeout=60)
        for i, device in list(self.devices.items()):
            subprocess.run(["losetup", "-d", device], capture_output=True, timeout=60)
            del self.devices[i]

    def __enter__(self) -> SlowDisks:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- use ---------------------------------------------------------------------

    def mount_point(self, i: int) -> str:
        return os.path.join(self.top, f"disk{i}")

    def directory(self, i: int) -> str:
        """A data directory on disk i."""
        return os.path.join(self.mount_point(i), "data")

    def attach(self, i: int, pid: int) -> None:
        """Put process pid in disk i's cgroup: its writes there obey the throttle."""
        with open(os.path.join(self.cgroups[i], "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def throttle(self, i: int, write_iops: int = 0, write_bps: int = 0) -> None:
        """Limit writes to disk i (0: that limit off)."""
        self._set(i, "blkio.throttle.write_iops_device", write_iops or CEILING_IOPS)
        self._set(i, "blkio.throttle.write_bps_device", write_bps)
        self.throttled.add(i)

    def lift(self, i: int) -> None:
        self.throttle(i)
        self.throttled.discard(i)

    def writes(self) -> dict[int, int]:
        """Write requests each disk's cgroup has sent to its device so far."""
        done: dict[int, int] = {}
        for i, cgroup in self.cgroups.items():
            with open(os.path.join(cgroup, "blkio.throttle.io_serviced")) as f:
                done[i] = sum(int(w[2]) for line in f if len(w := line.split()) == 3
                              and w[0] == self.numbers[i] and w[1] == "Write")
        return done

    def _set(self, i: int, name: str, value: int) -> None:
        with open(os.path.join(self.cgroups[i], name), "w") as f:
            f.write(f"{self.numbers[i]} {value}")
