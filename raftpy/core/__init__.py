"""The sans-I/O Raft core: ``Raft.step(event) -> Update``.

May import: the standard library and ``raftpy.errors`` only (a test parses the
imports).  Nothing in this package performs I/O, reads a clock or draws from
global random state: time arrives in events as ``time_ms`` and randomness from
the ``random.Random`` handed to ``Raft``.  Import modules by full path, e.g.
``from raftpy.core.raft import Raft``.

Modules, inner to outer: types (Entry, EntryType, State), config (Config),
configuration (Role, Server, Configuration, spec §3.3 encoding), messages
(the six messages), events (inputs), update (outputs), log (Log), progress
(Progress), trace (tracers), state (RaftState fields), convert / election /
replication (behaviour, as mixins of RaftState), raft (Raft: dispatch,
timers, client requests).

Where snapshots, compaction and membership changes plug in:

* ``Log`` already separates the snapshot boundary (``snapshot_index``,
  ``snapshot_term``) from the first kept entry (``offset``), with
  ``compact(up_to)`` for trailing compaction and ``restart`` for an
  installed snapshot; ``term_of`` answers for the boundary.
* ``send_append_entries`` already detects a ``next_index`` behind the log
  (``term_of`` is None): that is where InstallSnapshot is sent;
  ``ProgressMode.SNAPSHOT`` and its branch of ``_maybe_decrement`` exist.
* Configurations are values; the core keeps the one in effect, the committed
  one (``configuration_committed``/``configuration_index``) and the index of
  an uncommitted one, adopts a follower's CHANGE entries once persisted, rolls
  back when a truncation removes the uncommitted one, and marks it committed
  in ``apply_committed``.  ``_build_progress`` keeps existing Progress records
  when the server set changes.  A leader's change request appends one CHANGE
  entry and calls ``_set_configuration`` and ``_build_progress``.
"""
