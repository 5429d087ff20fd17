"""The transcript language of tests/interaction: commands in, trace lines out.

May import: the standard library, ``raftpy.core`` and ``raftpy.testing``.
A transcript is a sequence of blocks; each block is one command, a line
``----`` and the output the command produced (trace lines of every server,
then the command's own report), ended by a blank line.  ``#`` lines are
comments.  The cluster runs in manual mode with libraft fixture timeouts
(server i times out after 1000 + 100*(i-1) ms), so nothing happens unless a
command says so and every transcript is deterministic.

Commands::

    cluster N [pre-vote] [lease] [voters=V] [append-max=K] [latency=MS] [threshold=K]
              [trailing=K] [install-timeout=MS] [rounds=K] [round-ms=MS]
              [libraft=ID,ID]  (these answer as libraft followers do,
                                raftpy/testing/libraft_follower.py)
    timeout ID            fire ID's timer (time jumps to its deadline)
    elapse MS             time passes; due timers fire, lowest id first
    run MS                elapse 100 then stabilize, until MS have passed
    deliver [from=A] [to=B]    deliver queued messages (in order)
    drop [from=A] [to=B]       lose queued messages
    duplicate [from=A] [to=B]  queue a second copy of matching messages
    persist [ID]          complete pending disk writes (a snapshot install is one)
    snapshot [ID]         the snapshots being taken become durable
    fail-write ID         ID's pending writes fail (I/O error)
    fail-send [from=A] [to=B]  queued messages fail to go out (SendFailed to the sender)
    fail-term-vote ID     ID's next term/vote write fails (HardStateFailed)
    stabilize             deliver and persist until quiet (no time passes)
    propose ID DATA...    client request(s) to ID, one entry per DATA
    barrier ID | transfer ID [TARGET]
    read ID               a linearizable read at ID (checked against acknowledged writes)
    add ID NEW            ID (the leader) adds NEW as a spare; NEW starts empty
    assign ID TARGET ROLE | remove ID TARGET     (ROLE: voter, standby, spare)
    recover ID VOTER...   force this configuration on the stopped server ID
    partition A B | C     cut every link between the groups; cut A B (one way); heal
    crash ID | restart ID | close ID
    status | log ID | pending | requests | config ID
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from raftpy.core.config import Config, ReadMode
from raftpy.core.configuration import Configuration, Role
from raftpy.core.trace import ListTracer
from raftpy.core.types import EntryType
from raftpy.testing.cluster import ClientRequest, Cluster, Disk, Network

__all__ = ["Block", "parse", "render", "Interpreter", "run_file"]


class Block:
    """One command of a transcript with its comments and expected output."""

    __slots__ = ("comments", "command", "expected")

    def __init__(self, comments: list[str], command: str, expected: list[str]) -> None:
        self.comments = comments
        self.command = command
        self.expected = expected


def parse(text: str) -> tuple[list[Block], list[str]]:
    """Blocks of a transcript, and the comment lines after the last block."""
    blocks: list[Block] = []
    comments: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            comments.append(line)
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1] != "----":
            raise ValueError(f"line {i + 1}: command {line!r} is not followed by ----")
        i += 2
        expected = []
        while i < len(lines) and lines[i].strip():
            expected.append(lines[i])
            i += 1
        blocks.append(Block(comments, line, expected))
        comments = []
    return blocks, comments


def render(blocks: list[Block], outputs: list[list[str]], trailer: list[str]) -> str:
    out: list[str] = []
    for block, output in zip(blocks, outputs, strict=True):
        while out and out[-1] == "" and block.comments and block.comments[0] == "":
            block.comments = block.comments[1:]
        out += block.comments + [block.command, "----"] + output + [""]
    out += [c for c in trailer if c.strip()]
    return "\n".join(out).rstrip("\n") + "\n"


def _kwargs(args: list[str]) -> tuple[list[str], dict[str, str]]:
    plain, named = [], {}
    for arg in args:
        if "=" in arg:
            key, value = arg.split("=", 1)
            named[key] = value
        else:
            plain.append(arg)
    return plain, named


class Interpreter:
    """Runs transcript commands against one manual Cluster."""

    def __init__(self) -> None:
        self.cluster: Cluster | None = None
        self.tracer = ListTracer()
        self.requests: list[tuple[str, ClientRequest]] = []
        self._commands: dict[str, Callable[[list[str]], list[str]]] = {
            "cluster": self.cmd_cluster, "timeout": self.cmd_timeout,
            "elapse": self.cmd_elapse, "deliver": self.cmd_deliver, "drop": self.cmd_drop,
            "persist": self.cmd_persist, "stabilize": self.cmd_stabilize,
            "propose": self.cmd_propose, "barrier": self.cmd_barrier,
            "transfer": self.cmd_transfer, "partition": self.cmd_partition,
            "cut": self.cmd_cut, "heal": self.cmd_heal, "crash": self.cmd_crash,
            "restart": self.cmd_restart, "status": self.cmd_status, "log": self.cmd_log,
            "pending": self.cmd_pending, "requests": self.cmd_requests,
            "duplicate": self.cmd_duplicate, "fail-write": self.cmd_fail_write,
            "fail-send": self.cmd_fail_send, "fail-term-vote": self.cmd_fail_term_vote,
            "close": self.cmd_close, "snapshot": self.cmd_snapshot, "add": self.cmd_add,
            "assign": self.cmd_assign, "remove": self.cmd_remove, "recover": self.cmd_recover,
            "config": self.cmd_config, "run": self.cmd_run, "read": self.cmd_read,
        }

    def run(self, command: str) -> list[str]:
        words = shlex.split(command)
        self.tracer.lines = []
        report = self._commands[words[0]](words[1:])
        return [line.rstrip() for line in self.tracer.lines] + report

    @property
    def c(self) -> Cluster:
        assert self.cluster is not None, "no cluster yet: start with 'cluster N'"
        return self.cluster

    def cmd_cluster(self, args: list[str]) -> list[str]:
        plain, named = _kwargs(args)
        defaults = Config()
        config = Config(pre_vote="pre-vote" in plain,
                        read_mode=ReadMode.LEASE if "lease" in plain else ReadMode.READ_INDEX,
                        append_entries_max=int(named.get("append-max", 65536)),
                        snapshot_threshold=int(named.get("threshold",
                                                         defaults.snapshot_threshold)),
                        snapshot_trailing=int(named.get("trailing", defaults.snapshot_trailing)),
                        install_snapshot_timeout_ms=int(named.get(
                            "install-timeout", defaults.install_snapshot_timeout_ms)),
                        max_catch_up_rounds=int(named.get("rounds",
                                                          defaults.max_catch_up_rounds)),
                        max_catch_up_round_duration_ms=int(named.get(
                            "round-ms", defaults.max_catch_up_round_duration_ms)))
        latency = int(named.get("latency", 15))
        self.cluster = Cluster(int(plain[0]), 0, config=config, manual=True,
                               tracer=self.tracer, fixed_timeouts=True,
                               voters=int(named["voters"]) if "voters" in named else None,
                               network=Network(latency, latency), disk=Disk(),
                               libraft=frozenset(int(i) for i in named["libraft"].split(","))
                               if "libraft" in named else frozenset())
        return []

    def cmd_timeout(self, args: list[str]) -> list[str]:
        self.c.tick(int(args[0]))
        return []

    def cmd_elapse(self, args: list[str]) -> list[str]:
        self.c.elapse(int(args[0]))
        return []

    def cmd_run(self, args: list[str]) -> list[str]:
        for _ in range(int(args[0]) // 100):
            self.c.elapse(100)
            self.c.stabilize()
        return []

    def _match(self, args: list[str]) -> tuple[int, int]:
        _plain, named = _kwargs(args)
        return int(named.get("from", 0)), int(named.get("to", 0))

    def cmd_deliver(self, args: list[str]) -> list[str]:
        self.c.deliver(*self._match(args))
        return []

    def cmd_drop(self, args: list[str]) -> list[str]:
        n = self.c.deliver(*self._match(args), drop=True)
        return [f"dropped {n} messages"]

    def cmd_duplicate(self, args: list[str]) -> list[str]:
        from_id, to_id = self._match(args)
        copies = [m for m in self.c.inflight if from_id in (0, m[0]) and to_id in (0, m[1])]
        self.c.inflight += copies
        return [f"duplicated {len(copies)} messages"]

    def cmd_close(self, args: list[str]) -> list[str]:
        self.c.close(int(args[0]))
        return []

    def cmd_fail_write(self, args: list[str]) -> list[str]:
        self.c.fail_writes(int(args[0]))
        return []

    def cmd_fail_send(self, args: list[str]) -> list[str]:
        return [f"{self.c.fail_send(*self._match(args))} messages failed"]

    def cmd_fail_term_vote(self, args: list[str]) -> list[str]:
        self.c.fail_hard_state.add(int(args[0]))
        return []

    def cmd_persist(self, args: list[str]) -> list[str]:
        self.c.persist(int(args[0]) if args else 0)
        return []

    def cmd_stabilize(self, args: list[str]) -> list[str]:
        self.c.stabilize()
        return []

    def _request(self, name: str, req: ClientRequest) -> list[str]:
        self.requests.append((name, req))
        return self._describe(len(self.requests), name, req)

    def _describe(self, number: int, name: str, req: ClientRequest) -> list[str]:
        if req.error is not None:
            what = f"failed: {type(req.error).__name__}"
            leader = getattr(req.error, "leader_id", 0)
            what += f" (leader {leader})" if leader else ""
        elif req.done and name == "read":
            what = f"done applied={req.result} (must see {req.must_see})"
        elif req.done:
            what = f"done index={req.index}" if req.payloads or name != "transfer" else (
                f"done leader={req.result}")
        else:
            what = f"accepted index={req.index}" if req.index else "pending"
        return [f"request {number} {name}: {what}"]

    def cmd_propose(self, args: list[str]) -> list[str]:
        return self._request("propose", self.c.propose(
            int(args[0]), *[a.encode().ljust(8, b".") for a in args[1:]]))

    def cmd_barrier(self, args: list[str]) -> list[str]:
        return self._request("barrier", self.c.barrier(int(args[0])))

    def cmd_read(self, args: list[str]) -> list[str]:
        return self._request("read", self.c.read(int(args[0])))

    def cmd_transfer(self, args: list[str]) -> list[str]:
        target = int(args[1]) if len(args) > 1 else 0
        return self._request("transfer", self.c.transfer(int(args[0]), target))

    def cmd_snapshot(self, args: list[str]) -> list[str]:
        self.c.complete_snapshots(int(args[0]) if args else 0)
        return []

    def cmd_add(self, args: list[str]) -> list[str]:
        new_id = int(args[1])
        if new_id not in self.c.servers:
            assert self.c.add_server() == new_id, "new servers are numbered in order"
        return self._request("add", self.c.add(int(args[0]), new_id))

    def cmd_assign(self, args: list[str]) -> list[str]:
        return self._request("assign", self.c.assign(int(args[0]), int(args[1]),
                                                     Role[args[2].upper()]))

    def cmd_remove(self, args: list[str]) -> list[str]:
        return self._request("remove", self.c.remove(int(args[0]), int(args[1])))

    def cmd_recover(self, args: list[str]) -> list[str]:
        self.c.recover(int(args[0]), Configuration.of(*[(int(a), a) for a in args[1:]]))
        return []

    def cmd_config(self, args: list[str]) -> list[str]:
        raft = self.c.raft(int(args[0]))
        servers = " ".join(f"{s.id}/{s.role.name.lower()}"
                           for s in raft.configuration.servers)
        snapshot = raft.snapshot
        return [f"configuration: {servers}",
                f"committed at {raft.configuration_index}, uncommitted at "
                f"{raft.configuration_uncommitted_index}; snapshot at "
                f"{snapshot.index if snapshot else 0}, log from {raft.log.offset + 1}"]

    def cmd_partition(self, args: list[str]) -> list[str]:
        groups: list[list[int]] = [[]]
        for arg in args:
            if arg == "|":
                groups.append([])
            else:
                groups[-1].append(int(arg))
        self.c.partition(*groups)
        return []

    def cmd_cut(self, args: list[str]) -> list[str]:
        self.c.cut(int(args[0]), int(args[1]))
        return []

    def cmd_heal(self, args: list[str]) -> list[str]:
        self.c.heal()
        return []

    def cmd_crash(self, args: list[str]) -> list[str]:
        self.c.crash(int(args[0]))
        return []

    def cmd_restart(self, args: list[str]) -> list[str]:
        self.c.start(int(args[0]))
        return []

    def cmd_status(self, args: list[str]) -> list[str]:
        lines = []
        for server in self.c.servers.values():
            raft = server.raft
            if raft is None:
                lines.append(f"{server.id}: down")
                continue
            lines.append(f"{server.id}: {raft.state.name} term={raft.current_term} "
                         f"vote={raft.voted_for} leader={raft.leader_id} "
                         f"last={raft.log.last_index} stored={raft.last_stored} "
                         f"commit={raft.commit_index} applied={raft.last_applied}")
        return lines

    def cmd_log(self, args: list[str]) -> list[str]:
        raft = self.c.raft(int(args[0]))
        lines = []
        for index in range(raft.log.offset + 1, raft.log.last_index + 1):
            entry = raft.log.get(index)
            assert entry is not None
            payload = bytes(entry.payload).rstrip(b".").decode(errors="replace") \
                if entry.type == EntryType.COMMAND else ""
            lines.append(f"{index}/{entry.term} {EntryType(entry.type).name} {payload}".rstrip())
        return lines

    def cmd_pending(self, args: list[str]) -> list[str]:
        return [f"{src}->{dst} {message}" for src, dst, message in self.c.inflight]

    def cmd_requests(self, args: list[str]) -> list[str]:
        lines = []
        for number, (name, req) in enumerate(self.requests, 1):
            lines += self._describe(number, name, req)
        return lines


def run_file(path: Path) -> tuple[str, str]:
    """Run a transcript; return (expected text, actual text)."""
    text = path.read_text()
    blocks, trailer = parse(text)
    interpreter = Interpreter()
    outputs = [interpreter.run(block.command) for block in blocks]
    return text, render(blocks, outputs, trailer)
