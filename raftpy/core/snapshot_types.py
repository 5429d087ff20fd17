"""Snapshot: a state machine snapshot with libraft's metadata (spec §1.4, §3.10).

May import: the standard library and ``raftpy.core.configuration``.  A value:
the core keeps the latest one (to send it in InstallSnapshot), asks the shell
to take one (``Update.take_snapshot``, metadata only) and to install one
(``Update.install_snapshot``).  ``configuration`` is the last *committed*
configuration at ``index`` (libraft 0.18, spec §2.11) and
``configuration_index`` the index of its entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftpy.core.configuration import Configuration

__all__ = ["Snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state machine at ``index`` (an entry of ``term``) and the configuration then."""

    index: int
    term: int
    configuration_index: int
    configuration: Configuration
    data: bytes | memoryview = b""

    def __repr__(self) -> str:
        return (f"Snapshot({self.index}/{self.term} conf_index={self.configuration_index} "
                f"size={len(self.data)})")
