"""raftpy: Raft consensus for Python, compatible with libraft's formats.

The public surface: ``Server`` (the asyncio shell), ``BlockingServer`` (it on a
loop thread of its own, for threaded programs), ``StateMachine`` (what the
user replicates), ``Config`` (libraft's tunables and raftpy's limits; ``ReadMode`` for
``Server.read``),
``Configuration``/``Role`` (cluster membership), ``State``, the log entry
types and the error classes (with libraft's codes).  The C engine is reached
through ``raftpy._bindings``; the sans-I/O algorithm lives in ``raftpy.core``.

May import: every raftpy module (it only re-exports).
"""

from raftpy import errors as _errors
from raftpy.blocking import BlockingServer
from raftpy.core.config import Config, ReadMode
from raftpy.core.configuration import Configuration, Role
from raftpy.core.types import Entry, EntryType, State
from raftpy.errors import *  # noqa: F403  (the error classes are public API)
from raftpy.io.tls import Tls
from raftpy.server import Server
from raftpy.state_machine import StateMachine

__version__ = "0.1.0"

__all__ = ["Server", "BlockingServer", "StateMachine", "Config", "ReadMode", "Configuration",
           "Role", "State", "Entry", "EntryType", "Tls", "__version__"]
__all__ += _errors.__all__
