"""A lab of Linux network namespaces for fault tests: one per server, one bridge,
partitions made of nftables drop rules.

Test infrastructure beside processes.py (not in the package: raftpy/testing stays
free of I/O).  Needs root and ``ip`` and ``nft``
(iproute2, nftables); ``available()`` says why not where they are missing,
and the tests skip with that reason (CI on our machines has both).

Layout, for a lab of n hosts with tag T (from the pid, so parallel test runs
do not collide; interface names stay within Linux's 15 characters):

* namespaces ``T-h1`` .. ``T-hn``; in each, ``lo`` and ``eth0`` (one end of a
  veth pair) with the address 10.X.Y.i/24, X.Y also from the pid;
* the other ends ``Tv1`` .. ``Tvn`` are ports of the bridge ``Tbr`` in the
  namespace of the test, which has 10.X.Y.254: the test reaches every host
  (control ports), and partitions, which name hosts' addresses only, never
  cut it off;
* each namespace has the nftables table ``inet raftpy_lab`` with input and
  output chains; a partition is a set of addresses each host drops in both
  directions, so a cut is silent (packets vanish, nothing is refused), as a
  real network partition is.

Rules it keeps: everything it creates carries the tag and is removed by
``close()`` (also after a failed start); processes run in a host by
``popen`` are the caller's to kill, by PID, before ``close()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["NetnsLab", "available"]

_TABLE = "raftpy_lab"


def available() -> str | None:
    """None if a lab can be built here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 nftables)"
    probe = f"rpprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(argv: Sequence[str], stdin: str | None = None) -> None:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


class NetnsLab:
    """n hosts (1..n) on one bridge; ``partition``, ``cut`` and ``heal`` their links."""

    def __init__(self, n: int) -> None:
        if not 1 <= n <= 200:
            raise ValueError("a lab has 1..200 hosts")
        pid = os.getpid()
        self.n = n
        self.tag = f"rp{pid % 100000}"
        self.subnet = f"10.{100 + pid // 250 % 100}.{pid % 250}"
        self.bridge = f"{self.tag}br"
        self._made: list[tuple[str, str]] = []     # ("ns"|"link", name), to undo
        self.blocked: set[tuple[int, int]] = set()  # (from, to) pairs dropped

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> NetnsLab:
        try:
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            self._made.append(("link", self.bridge))
            _run(["ip", "addr", "add", f"{self.subnet}.254/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for i in range(1, self.n + 1):
                self._add_host(i)
        except BaseException:
            self.close()
            raise
        return self

    def _add_host(self, i: int) -> None:
        ns, veth = self.namespace(i), f"{self.tag}v{i}"
        _run(["ip", "netns", "add", ns])
        self._made.append(("ns", ns))
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
              "netns", ns])
        self._made.append(("link", veth))
        _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        inside = ["ip", "netns", "exec", ns]
        _run(inside + ["ip", "link", "set", "lo", "up"])
        _run(inside + ["ip", "addr", "add", f"{self.host(i)}/24", "dev", "eth0"])
        _run(inside + ["ip", "link", "set", "eth0", "up"])
        _run(inside + ["nft", "-f", "-"], stdin=(
            f"table inet {_TABLE} {{\n"
            "  chain input { type filter hook input priority 0; policy accept; }\n"
            "  chain output { type filter hook output priority 0; policy accept; }\n"
            "}\n"))

    def close(self) -> None:
        """Remove every namespace and link of the lab (idempotent)."""
        while self._made:
            kind, name = self._made.pop()
            argv = ["ip", "netns", "del", name] if kind == "ns" else ["ip", "link", "del", name]
            subprocess.run(argv, capture_output=True, timeout=30)

    def __enter__(self) -> NetnsLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hosts -------------------------------------------------------------------

    def namespace(self, i: int) -> str:
        return f"{self.tag}-h{i}"

    def host(self, i: int) -> str:
        """Host i's IPv4 address."""
        self._check(i)
        return f"{self.subnet}.{i}"

    def popen(self, i: int, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start argv inside host i's namespace.  ``ip netns exec`` execs argv, so
        the Popen's pid is the program's own, to signal directly."""
        self._check(i)
        return subprocess.Popen(["ip", "netns", "exec", self.namespace(i), *argv], **kwargs)

    def _check(self, i: int) -> None:
        if not 1 <= i <= self.n:
            raise ValueError(f"no host {i} in a lab of {self.n}")

    # -- faults ------------------------------------------------------------------

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut every link between different groups; hosts in no group are cut
        off from everyone.  Replaces any earlier partition or cut."""
        group_of = {i: k for k, group in enumerate(groups) for i in group}
        blocked = {(a, b) for a in range(1, self.n + 1) for b in range(1, self.n + 1)
                   if a != b and (a not in group_of or group_of.get(a) != group_of.get(b))}
        self._apply(blocked)

    def cut(self, a: int, b: int) -> None:
        """Drop what a sends to b (one way), on top of what is cut already."""
        self._check(a)
        self._check(b)
        self._apply(self.blocked | {(a, b)})

    def heal(self) -> None:
        self._apply(set())

    def _apply(self, blocked: set[tuple[int, int]]) -> None:
        for i in range(1, self.n + 1):
            # Host i drops packets to hosts it may not reach and from hosts
            # that may not reach it: each direction is enforced at both ends.
            to = sorted(self.host(b) for a, b in blocked if a == i)
            frm = sorted(self.host(a) for a, b in blocked if b == i)
            rules = [f"flush table inet {_TABLE}"]
            if to:
                rules.append(f"add rule inet {_TABLE} output ip daddr {{ {', '.join(to)} }} drop")
            if frm:
                rules.append(f"add rule inet {_TABLE} input ip saddr {{ {', '.join(frm)} }} drop")
            _run(["ip", "netns", "exec", self.namespace(i), "nft", "-f", "-"],
                 stdin="\n".join(rules) + "\n")
        self.blocked = set(blocked)
