"""The sans-I/O Raft core: ``Raft.step(event) -> Update``.

May import: the standard library and ``raftpy.errors`` only (a test parses the
imports).  Nothing in this package performs I/O, reads a clock or draws from
global random state: time arrives in events as ``time_ms`` and randomness from
the ``random.Random`` handed to ``Raft``.  Import modules by full path, e.g.
``from raftpy.core.raft import Raft``.

Modules, inner to outer: types (Entry, EntryType, State), config (Config),
configuration (Role, Server, Configuration, spec §3.3 encoding),
snapshot_types (Snapshot), messages (the six messages), events (inputs),
update (outputs), log (Log), progress (Progress), trace (tracers), state
(RaftState fields), convert / election / replication / snapshot / membership
(behaviour, as mixins of RaftState), raft (Raft: dispatch, timers, client
requests).

Snapshots and compaction (snapshot.py, spec §2.11, §2.13): after an apply
pass that reaches ``snapshot_threshold`` the core asks for a snapshot
(``Update.take_snapshot``) and keeps serving; a ``TakeSnapshot`` event asks
for one at once, whatever the threshold; ``SnapshotTaken`` compacts the
``Log`` keeping ``snapshot_trailing`` entries.  A follower whose next entry
is compacted gets ``InstallSnapshot`` (``ProgressMode.SNAPSHOT``, abandoned
after ``install_snapshot_timeout_ms``); it installs it through
``Update.install_snapshot`` and ``SnapshotInstalled``.  ``Raft(snapshot=...)``
starts from a loaded snapshot.

Membership (membership.py, spec §2.10): ``Add``/``Assign``/``Remove``
events append one CHANGE entry, in effect when appended (the leader) or
persisted (followers), rolled back when truncated; promotion to voter runs
catch-up rounds first.  ``bootstrap`` and ``recover_entry`` are the pure
parts of raft_bootstrap and raft_recover.
"""
