"""raftpy: Raft consensus for Python, compatible with libraft's formats.

The public surface grows with the project; today it holds the error classes
(with libraft's codes) and the log entry types.  The C engine is reached
through ``raftpy._bindings``; the sans-I/O algorithm lives in ``raftpy.core``.
"""

from raftpy import errors as _errors
from raftpy.core.types import Entry, EntryType
from raftpy.errors import *  # noqa: F403  (the error classes are public API)

__version__ = "0.1.0"

__all__ = ["Entry", "EntryType", "__version__"]
__all__ += _errors.__all__
