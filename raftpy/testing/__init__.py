"""Deterministic simulation of raftpy clusters, for raftpy's tests and for users'.

May import: the standard library, ``raftpy.errors`` and ``raftpy.core``.
Modules: cluster.py (servers, simulated clock, network and disk), checkers.py
(Raft safety properties checked after every step), chaos.py (seeded random
fault schedules), script.py (the transcript language of tests/interaction).
"""
