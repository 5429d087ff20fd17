"""The sans-I/O Raft core: ``Raft.step(event) -> Update``.

May import: the standard library and ``raftpy.errors`` only (a test parses the
imports).  Nothing in this package performs I/O, reads a clock or draws from
global random state: time arrives in events as ``time_ms`` and randomness from
the ``random.Random`` handed to ``Raft``.  Import modules by full path, e.g.
``from raftpy.core.raft import Raft``.
"""
