"""Trace lines: the words the interaction transcripts and RAFTPY_TRACE print.

May import: the standard library only (``logging`` is allowed: it performs no
I/O by itself; handlers are the shell's business).  The core calls a tracer
``tracer(server_id, time_ms, text)`` only when one is installed, so tracing
off costs one ``is None`` test per trace point.  The shell decides whether to
install one, e.g. from ``RAFTPY_TRACE`` (libraft's LIBRAFT_TRACE, spec §1.12):
``tracer_from_env(os.environ)``; the core never reads the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

__all__ = ["Tracer", "format_line", "LoggingTracer", "ListTracer", "tracer_from_env"]

Tracer = Callable[[int, int, str], None]

_log = logging.getLogger("raftpy.trace")


def format_line(server_id: int, time_ms: int, text: str) -> str:
    """The one line format everyone uses: ``<time ms> <server id>: <text>``."""
    return f"{time_ms:>7} {server_id}: {text}"


class LoggingTracer:
    """Send trace lines to ``logging`` at DEBUG level (the RAFTPY_TRACE sink)."""

    __slots__ = ()

    def __call__(self, server_id: int, time_ms: int, text: str) -> None:
        _log.debug("%s", format_line(server_id, time_ms, text))


class ListTracer:
    """Collect trace lines in memory; with ``limit`` keep only the newest ones."""

    __slots__ = ("lines", "limit")

    def __init__(self, limit: int = 0) -> None:
        self.lines: list[str] = []
        self.limit = limit

    def __call__(self, server_id: int, time_ms: int, text: str) -> None:
        self.lines.append(format_line(server_id, time_ms, text))
        if self.limit and len(self.lines) > 2 * self.limit:
            del self.lines[:-self.limit]

    def tail(self, n: int) -> list[str]:
        return self.lines[-n:]


def tracer_from_env(environ: Mapping[str, str]) -> Tracer | None:
    """A LoggingTracer if RAFTPY_TRACE is set (any value, as LIBRAFT_TRACE), else None."""
    return LoggingTracer() if "RAFTPY_TRACE" in environ else None
