"""The ``raftpy`` command: argument parsing and printing, no logic of its own.

``raftpy inspect DIR`` calls
raftpy.io.inspect.inspect_directory, which reads a libraft data directory
(spec §3) without changing it, verifies every checksum and judges it by
libraft's load rules, and prints the report it returns: the two metadata
files and which one wins, every segment, every snapshot, leftover files, how
the segments chain into a log, and a summary line.  ``--entries`` dumps every
entry (raftpy.io.inspect.read_entries); ``--json`` prints the same facts as
one JSON document.

``raftpy status|add|assign|remove|transfer|snapshot ENDPOINT ...`` talk to a
running server's admin endpoint (raftpy.admin, which the embedding program
starts: a Unix socket path, or host:port) and print the answer.

May import: the standard library (argparse, json, sys, and os only to
silence a closed stdout), raftpy.errors, raftpy.io.inspect and raftpy.admin
(the libraries that do the work), and raftpy.core types for annotations only.
tests/io/test_cli_is_thin.py checks that nothing else creeps in.

Rules:

* Everything the command decides (what is sound, where the damage is, what
  libraft's load would do) comes from raftpy.io.inspect; this module only
  formats it.
* Exit status of inspect: 0 sound, 1 corruption or anything libraft would
  refuse to load (each error also goes to stderr, naming the file and, for
  segments, the byte offset), 2 usage errors and a missing or unreadable
  directory.  Of the admin commands: 0 done, 1 the server refused (not the
  leader: the message names the leader), 2 usage, 3 nothing answers at the
  endpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

from raftpy import admin
from raftpy.errors import NoConnectionError, NotLeaderError, RaftError
from raftpy.io.inspect import (
    DirectoryReport,
    Ending,
    EntryReport,
    MetadataFile,
    MetadataReport,
    MetaState,
    SegmentReport,
    SnapshotReport,
    inspect_directory,
    read_entries,
)

if TYPE_CHECKING:
    from raftpy.core.configuration import Configuration

__all__ = ["main", "run_inspect", "run_admin", "EXIT_OK", "EXIT_CORRUPT", "EXIT_USAGE",
           "EXIT_REFUSED", "EXIT_UNREACHABLE"]

EXIT_OK = 0
EXIT_CORRUPT = 1
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
PREVIEW_BYTES = 16


# -------------------------------------------------------------- formatting

def _plural(n: int, word: str, words: str = "") -> str:
    return f"{n} {word if n == 1 else words or word + 's'}"


def _span(first: int, last: int) -> str:
    return f"{first}..{last}" if last >= first else "-"


def preview(payload: bytes | memoryview) -> str:
    """A short hex and ASCII view of a payload's first bytes."""
    head = bytes(payload[:PREVIEW_BYTES])
    if not head:
        return "(empty)"
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    more = " ..." if len(payload) > PREVIEW_BYTES else ""
    return f"{head.hex(' ')}{more}  |{text}|"


def describe_configuration(conf: Configuration) -> str:
    """One server after another: id, address, role."""
    return ", ".join(f"{s.id} {s.address} {s.role.name.lower()}" for s in conf.servers)


def describe_entry(entry: EntryReport) -> str:
    """One line of ``--entries``: index, term, type, length, payload preview."""
    head = (f"{entry.index:>10}  term {entry.term:<6} {entry.type.name:<7} "
            f"{len(entry.payload):>7} bytes  ")
    if entry.configuration is not None:
        return head + "configuration: " + describe_configuration(entry.configuration)
    if entry.configuration_error is not None:
        return head + (f"undecodable configuration ({entry.configuration_error}): "
                       f"{preview(entry.payload)}")
    return head + preview(entry.payload)


def _describe_meta_file(f: MetadataFile, winner: str | None) -> str:
    if f.state is MetaState.MISSING:
        return "missing"
    if f.state is MetaState.SHORT:
        return (f"{f.size} bytes, shorter than 32: a crash during its first write; libraft "
                f"treats it as missing and deletes it")
    if f.problem is not None:
        return f"ERROR: {f.problem}"
    assert f.content is not None
    mark = "  <- current" if f.name == winner else ""
    return (f"version {f.content.version}, term {f.content.term}, "
            f"voted for {f.content.voted_for or 'nobody'}{mark}")


def _render_metadata(md: MetadataReport, out: TextIO) -> None:
    print("metadata", file=out)
    for f in md.files:
        print(f"  {f.name}: {_describe_meta_file(f, md.winner)}", file=out)
    for problem in (p for p in md.problems if not p.file):
        print(f"  ERROR: {problem}", file=out)
    cur = md.current
    if cur is None:
        print("  current: none (libraft's load fails)", file=out)
    elif md.winner is None:
        print("  current: fresh server (term 0, no vote)", file=out)
    else:
        print(f"  current: term {cur.term}, voted for {cur.voted_for or 'nobody'} "
              f"(version {cur.version}, from {md.winner})", file=out)


def _ending_text(seg: SegmentReport) -> str:
    where = {Ending.ZERO_TAIL: " after byte", Ending.TORN_TAIL: " at byte",
             Ending.CORRUPT: " at byte"}.get(seg.ending)
    return seg.ending.value + (f"{where} {seg.valid_end}" if where else "")


def _segment_line(seg: SegmentReport) -> str:
    kind = "open" if seg.is_open else "closed"
    terms = _span(seg.term_min, seg.term_max) if seg.entries else "-"
    if seg.holds_its_range:
        index = _span(seg.first, seg.last) if seg.is_open else f"{seg.first}..{seg.last}"
    else:       # a damaged closed segment: what is valid, against what its name says
        valid = _span(seg.first, seg.valid_last)
        index = f"{valid} (its name says {seg.first}..{seg.last})"
    return (f"  {seg.name}  {kind}  {_plural(seg.entries, 'entry', 'entries')}"
            f"  index {index}  terms {terms}  {seg.size} bytes  {_ending_text(seg)}")


def _render_entries(report: DirectoryReport, seg: SegmentReport, out: TextIO) -> None:
    try:
        for entry in read_entries(report, seg):
            print("      " + describe_entry(entry), file=out)
    except OSError as err:
        print(f"      (cannot read: {err.strerror or err})", file=out)


def _render_segments(report: DirectoryReport, entries: bool, out: TextIO) -> None:
    summary = report.summary
    print(f"segments: {summary.closed_segments} closed, {summary.open_segments} open", file=out)
    for seg in report.segments:
        print(_segment_line(seg), file=out)
        if seg.note:
            print(f"      note: {seg.note}", file=out)
        for problem in seg.problems:
            print(f"      ERROR: {problem}", file=out)
        if entries and seg.ending is not Ending.UNREADABLE:
            _render_entries(report, seg, out)


def _render_snapshot(snap: SnapshotReport, latest: bool, out: TextIO) -> None:
    mark = "  (latest: the one libraft loads)" if latest else ""
    print(f"  {snap.name}  term {snap.term}  index {snap.index}  timestamp {snap.timestamp}  "
          f"configuration index {snap.conf_index}{mark}", file=out)
    raw = "?" if snap.raw_size is None else str(snap.raw_size)
    if snap.lz4:
        check = ("content checksum verified" if snap.content_checksum
                 else "no content checksum in the frame")
        kind = f"LZ4 frame, {check}"
    else:
        kind = "raw (not compressed, no checksum)"
    print(f"      data: {snap.stored_size} bytes stored, {raw} bytes raw, {kind}", file=out)
    for server in snap.configuration.servers if snap.configuration else ():
        print(f"      server {server.id}  {server.address}  {server.role.name.lower()}",
              file=out)
    for problem in snap.problems:
        print(f"      ERROR: {problem}", file=out)


def _render_files(report: DirectoryReport, out: TextIO) -> None:
    groups = (("tmp files (libraft deletes them at startup)", report.tmp_files),
              ("orphan snapshot files (libraft deletes them at startup)", report.orphans),
              ("quarantined corrupt-* files (ignored by libraft)", report.corrupt_files),
              ("other files (ignored by libraft)", report.ignored_files))
    for title, names in groups:
        print(f"{title}: {', '.join(names) if names else 'none'}", file=out)


def _render_log(report: DirectoryReport, out: TextIO) -> None:
    log = report.log
    print("log (as libraft's load would see it)", file=out)
    snap = report.loaded_snapshot
    used = f"{snap.name} (term {snap.term}, index {snap.index})" if snap else "none"
    print(f"  snapshot: {used}", file=out)
    print(f"  entries: {_plural(log.entries, 'entry', 'entries')}, index "
          f"{_span(log.start_index, log.last_index)} (start index {log.start_index})", file=out)
    for problem in log.problems:
        print(f"  ERROR: {problem}", file=out)


def summary_line(report: DirectoryReport) -> str:
    """The last line of the text report."""
    s = report.summary
    state = (f"term {s.term}, voted for {s.voted_for or 'nobody'}" if s.term is not None
             else "no metadata")
    terms = f", terms {s.term_min}..{s.term_max}" if s.term_min is not None else ""
    verdict = "OK" if s.ok else f"NOT SOUND, {_plural(s.errors, 'error')}"
    return (f"summary: {verdict}: {state}; {s.closed_segments} closed and "
            f"{s.open_segments} open segments, {_plural(s.entries, 'entry', 'entries')}, index "
            f"{_span(s.start_index, s.last_index)}{terms}; "
            f"{_plural(s.snapshots, 'snapshot')}")


def render_text(report: DirectoryReport, entries: bool, out: TextIO) -> None:
    """The whole text report."""
    print(f"data directory: {report.directory}", file=out)
    _render_metadata(report.metadata, out)
    _render_segments(report, entries, out)
    print(f"snapshots: {report.summary.snapshots}", file=out)
    for snap in report.snapshots:
        _render_snapshot(snap, snap.name == report.log.snapshot, out)
    _render_files(report, out)
    _render_log(report, out)
    print(summary_line(report), file=out)


# -------------------------------------------------------------------- JSON

def _jsonable(value: Any) -> Any:
    """Dataclasses to dicts, enums to their names, tuples to lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value if isinstance(value.value, str) else value.name.lower()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _entry_json(entry: EntryReport) -> dict[str, Any]:
    item: dict[str, Any] = {"index": entry.index, "term": entry.term,
                            "type": entry.type.name, "length": len(entry.payload),
                            "preview_hex": bytes(entry.payload[:PREVIEW_BYTES]).hex()}
    if entry.configuration is not None:
        item["configuration"] = _jsonable(entry.configuration)["servers"]
    if entry.configuration_error is not None:
        item["configuration_error"] = entry.configuration_error
    return item


def report_json(report: DirectoryReport, entries: bool) -> dict[str, Any]:
    """The report as a JSON-ready dict; with entries, each segment lists its entries."""
    doc: dict[str, Any] = _jsonable(report)
    doc["problems"] = _jsonable(report.problems)
    doc["ok"] = report.ok
    doc["summary"] = summary_line(report)
    if entries:
        for seg, item in zip(report.segments, doc["segments"], strict=True):
            if seg.ending is not Ending.UNREADABLE:
                item["entry_list"] = [_entry_json(e) for e in read_entries(report, seg)]
    return doc


# -------------------------------------------------------------------- main

def run_inspect(directory: str, entries: bool, as_json: bool, out: TextIO,
                err: TextIO) -> int:
    """``raftpy inspect``: print the report; return the exit status."""
    try:
        report = inspect_directory(directory)
    except (RaftError, OSError) as exc:     # missing, not a directory, cannot be listed
        print(f"raftpy inspect: {exc}", file=err)
        return EXIT_USAGE
    try:
        if as_json:
            json.dump(report_json(report, entries), out, indent=2)
            out.write("\n")
        else:
            render_text(report, entries, out)
        out.flush()
    except BrokenPipeError:            # e.g. piped into head: stop printing quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    for bad in report.problems:
        print(f"raftpy inspect: {bad}", file=err)
    return EXIT_OK if report.ok else EXIT_CORRUPT


# ------------------------------------------------------------------- admin

def render_status(doc: dict[str, Any], out: TextIO) -> None:
    """The text of ``raftpy status``."""
    leader = f"{doc['leader_id']} ({doc['leader_address']})" if doc["leader_id"] else "unknown"
    print(f"server {doc['id']} at {doc['address']}: {doc['state'].lower()}, term "
          f"{doc['term']}, leader {leader}", file=out)
    print(f"log: last index {doc['last_index']}, stored {doc['last_stored']}, commit "
          f"{doc['commit_index']}, applied {doc['last_applied']}, snapshot "
          f"{doc['snapshot_index']}", file=out)
    print(f"requests pending: {doc['pending_requests']}", file=out)
    for server in doc["configuration"]:
        print(f"member {server['id']} {server['address']} {server['role']}", file=out)
    for follower_id, f in doc["followers"].items():
        print(f"follower {follower_id}: match {f['match_index']}, lag {f['lag']} "
              f"({f['mode'].lower()})", file=out)
    print(f"counters: {doc['entries_appended']} entries in {doc['writes']} writes, "
          f"{doc['elections']} elections, {doc['snapshots_taken']} snapshots taken, "
          f"{doc['snapshots_installed']} installed, {doc['messages_dropped']} messages "
          f"dropped", file=out)


def _admin_call(args: argparse.Namespace) -> Any:
    """Send the request that args name; its result."""
    endpoint, timeout = args.endpoint, args.timeout
    if args.command == "status":
        return admin.status(endpoint, timeout)
    if args.command == "add":
        return admin.add(endpoint, args.id, args.address, timeout)
    if args.command == "assign":
        return admin.assign(endpoint, args.id, args.role, timeout)
    if args.command == "remove":
        return admin.remove(endpoint, args.id, timeout)
    if args.command == "transfer":
        return admin.transfer(endpoint, args.id, timeout)
    return admin.snapshot(endpoint, timeout)


def _admin_text(command: str, result: Any) -> str:
    if command == "transfer":
        return f"leader is now {result}" if result else "no leader known after the transfer"
    if command == "snapshot":
        return f"snapshot taken at index {result}" if result else "no snapshot taken"
    return "done"


def run_admin(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """An admin command: send it, print the answer; return the exit status."""
    try:
        result = _admin_call(args)
    except NoConnectionError as exc:
        print(f"raftpy {args.command}: {exc}", file=err)
        return EXIT_UNREACHABLE
    except NotLeaderError as exc:
        print(f"raftpy {args.command}: {exc}", file=err)
        return EXIT_REFUSED
    except RaftError as exc:
        print(f"raftpy {args.command}: {type(exc).__name__}: {exc}", file=err)
        return EXIT_REFUSED
    if args.json:
        json.dump(result, out, indent=2)
        out.write("\n")
    elif args.command == "status":
        render_status(result, out)
    else:
        print(_admin_text(args.command, result), file=out)
    return EXIT_OK


def _admin_parsers(commands: Any) -> None:
    helps = {"status": "show a running server's state", "add": "add a server (as spare)",
             "assign": "change a server's role", "remove": "remove a server",
             "transfer": "hand leadership to a server (0 or none: any voter)",
             "snapshot": "take a snapshot now"}
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=f"{text} through the admin "
                                  "endpoint (a Unix socket path, or host:port)")
        sub.add_argument("endpoint", metavar="ENDPOINT")
        if name in ("add", "assign", "remove"):
            sub.add_argument("id", type=int, metavar="ID")
        if name == "transfer":
            sub.add_argument("id", type=int, metavar="ID", nargs="?", default=0)
        if name == "add":
            sub.add_argument("address", metavar="ADDRESS")
        if name == "assign":
            sub.add_argument("role", choices=["voter", "standby", "spare"])
        sub.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
        sub.add_argument("--json", action="store_true", help="print the result as JSON")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raftpy", description="raftpy command-line tools")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _admin_parsers(commands)
    inspect = commands.add_parser(
        "inspect", help="check a libraft data directory (read-only)",
        description="Print the metadata, segments and snapshots of a libraft data directory "
                    "and verify every checksum. Nothing is modified. Exit status: 0 sound, "
                    "1 corruption found, 2 usage error or unreadable directory.")
    inspect.add_argument("directory", metavar="DIR")
    inspect.add_argument("--entries", action="store_true", help="also dump every entry")
    inspect.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``raftpy`` console script; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:          # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command != "inspect":
        return run_admin(args, sys.stdout, sys.stderr)
    return run_inspect(args.directory, args.entries, args.json, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
