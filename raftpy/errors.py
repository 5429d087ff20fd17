"""Error classes of raftpy, one per libraft error code (spec §1.2).

May import: the standard library only.  Every error raised by raftpy is a
``RaftError``; ``code`` carries libraft's numeric value so that errors can be
compared with libraft's across the two implementations.  Messages follow
libraft's convention of prefixing context: ``"load segment X: header checksum
mismatch"``.
"""

from __future__ import annotations

__all__ = [
    "RaftError", "NoMemError", "BadIdError", "DuplicateIdError",
    "DuplicateAddressError", "BadRoleError", "MalformedError",
    "NotLeaderError", "LeadershipLostError", "ShutdownError",
    "CantBootstrapError", "CantChangeError", "CorruptError", "CanceledError",
    "NameTooLongError", "TooBigError", "NoConnectionError", "BusyError",
    "IOError_", "NotFoundError", "InvalidError", "UnauthorizedError",
    "NoSpaceError", "TooManyError", "error_for_code",
]


class RaftError(Exception):
    """Base class: ``code`` is libraft's error number, ``str(e)`` the message."""

    code = 0
    default_message = "unknown error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])

    def wrap(self, context: str) -> RaftError:
        """Return an error of the same class whose message is prefixed with context."""
        err = type(self).__new__(type(self))
        RaftError.__init__(err, f"{context}: {self.message}")
        err.__dict__.update({k: v for k, v in self.__dict__.items()})
        return err


def _make(name: str, code: int, text: str) -> type[RaftError]:
    return type(name, (RaftError,), {"code": code, "default_message": text,
                                     "__doc__": f"RAFT error {code}: {text}."})


NoMemError = _make("NoMemError", 1, "out of memory")
BadIdError = _make("BadIdError", 2, "server ID is not valid")
DuplicateIdError = _make("DuplicateIdError", 3, "server ID already in use")
DuplicateAddressError = _make("DuplicateAddressError", 4, "server address already in use")
BadRoleError = _make("BadRoleError", 5, "server role is not valid")
LeadershipLostError = _make("LeadershipLostError", 8, "server has lost leadership")
ShutdownError = _make("ShutdownError", 9, "server is shutting down")
CantBootstrapError = _make("CantBootstrapError", 10, "bootstrap only works on new clusters")
CantChangeError = _make("CantChangeError", 11, "a configuration change is already in progress")
CorruptError = _make("CorruptError", 12, "persisted data is corrupted")
CanceledError = _make("CanceledError", 13, "operation canceled")
NameTooLongError = _make("NameTooLongError", 14, "resource name too long")
TooBigError = _make("TooBigError", 15, "data is too big")
NoConnectionError = _make("NoConnectionError", 16, "no connection to remote server available")
BusyError = _make("BusyError", 17, "operation can't be performed at this time")
IOError_ = _make("IOError_", 18, "I/O error")
NotFoundError = _make("NotFoundError", 19, "Resource not found")
InvalidError = _make("InvalidError", 20, "Invalid parameter")
UnauthorizedError = _make("UnauthorizedError", 21, "No access to resource")
NoSpaceError = _make("NoSpaceError", 22, "Not enough disk space")
TooManyError = _make("TooManyError", 23, "System or raft limit met or exceeded")


class MalformedError(RaftError):
    """RAFT error 6: encoded data is malformed (a real class: raftpy.io.wire.WireError
    subclasses it, which mypy cannot check for the classes _make builds)."""

    code = 6
    default_message = "encoded data is malformed"


class NotLeaderError(RaftError):
    """RAFT error 7: this server is not the leader; says who is, if known."""

    code = 7
    default_message = "server is not the leader"

    def __init__(self, message: str | None = None, leader_id: int = 0,
                 leader_address: str | None = None) -> None:
        super().__init__(message)
        self.leader_id = leader_id
        self.leader_address = leader_address


_BY_CODE: dict[int, type[RaftError]] = {
    cls.code: cls for cls in (
        NoMemError, BadIdError, DuplicateIdError, DuplicateAddressError, BadRoleError,
        MalformedError, NotLeaderError, LeadershipLostError, ShutdownError,
        CantBootstrapError, CantChangeError, CorruptError, CanceledError,
        NameTooLongError, TooBigError, NoConnectionError, BusyError, IOError_,
        NotFoundError, InvalidError, UnauthorizedError, NoSpaceError, TooManyError)
}


def error_for_code(code: int, message: str | None = None) -> RaftError:
    """Build the error object for libraft error number ``code``."""
    cls = _BY_CODE.get(code, RaftError)
    return cls(message)
