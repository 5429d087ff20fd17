"""Cluster configurations: Role, Server, Configuration and their byte encoding (spec §3.3).

May import: the standard library and ``raftpy.errors``.  Configurations are
values: every change returns a new Configuration, so the core can keep the
committed and the uncommitted one side by side (dissertation §4.1) and roll
back by dropping a reference.  Server order is significant (libraft keeps it
in progress arrays and encodings) and is preserved.

Encoding, byte exact: ``u8 version=1 | u64 n | n x (u64 id, address, NUL,
u8 role)`` zero-padded to a multiple of 8.  Readers ignore the padding
(libraft leaves it uninitialised) and bytes after the n-th server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from raftpy.errors import (
    BadIdError,
    BadRoleError,
    DuplicateAddressError,
    DuplicateIdError,
    InvalidError,
    MalformedError,
)

__all__ = ["Role", "Server", "Configuration", "encode_configuration",
           "decode_configuration"]

_U64 = struct.Struct("<Q")
_U64_MAX = 2**64 - 1
_VERSION = 1


class Role(IntEnum):
    """libraft's roles (spec §1.3): STANDBY replicates, VOTER also votes, SPARE does neither."""

    STANDBY = 0
    VOTER = 1
    SPARE = 2


@dataclass(frozen=True, slots=True)
class Server:
    """One member of a configuration."""

    id: int
    address: str
    role: Role = Role.VOTER


@dataclass(frozen=True, slots=True)
class Configuration:
    """An ordered set of servers with unique ids and addresses."""

    servers: tuple[Server, ...] = ()

    @classmethod
    def of(cls, *members: tuple[int, str] | tuple[int, str, Role]) -> Configuration:
        """Build from ``(id, address)`` or ``(id, address, role)``; voters by default."""
        conf = cls()
        for member in members:
            role = member[2] if len(member) > 2 else Role.VOTER
            conf = conf.add(member[0], member[1], role)
        return conf

    def __len__(self) -> int:
        return len(self.servers)

    def get(self, server_id: int) -> Server | None:
        for server in self.servers:
            if server.id == server_id:
                return server
        return None

    def role_of(self, server_id: int) -> Role | None:
        server = self.get(server_id)
        return None if server is None else server.role

    @property
    def voter_ids(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.servers if s.role == Role.VOTER)

    def add(self, server_id: int, address: str, role: Role = Role.VOTER) -> Configuration:
        """Append a server (raft_configuration_add's checks, in its order)."""
        if not isinstance(server_id, int) or not 0 < server_id <= _U64_MAX:
            # libraft's ids are u64: an id the encoding cannot carry would
            # raise in encode, inside the core's step, and stop the server.
            raise BadIdError()
        _check_address(address)
        if not isinstance(role, Role):
            try:
                role = Role(role)
            except ValueError:
                raise BadRoleError() from None
        for server in self.servers:
            if server.id == server_id:
                raise DuplicateIdError()
            if server.address == address:
                raise DuplicateAddressError()
        return Configuration(self.servers + (Server(server_id, address, role),))

    def remove(self, server_id: int) -> Configuration:
        if self.get(server_id) is None:
            raise BadIdError()
        return Configuration(tuple(s for s in self.servers if s.id != server_id))

    def assign(self, server_id: int, role: Role) -> Configuration:
        if self.get(server_id) is None:
            raise BadIdError()
        return Configuration(tuple(Server(s.id, s.address, role) if s.id == server_id
                                   else s for s in self.servers))

    def encode(self) -> bytes:
        return encode_configuration(self)

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Configuration:
        return decode_configuration(data)


def _check_address(address: object) -> None:
    """The encoding carries an address as NUL-terminated UTF-8 (libraft: a C string).
    A NUL inside it ends it early on every reader, which then reads the rest as
    the role and the next server: the configuration in effect on the leader
    would not be the one its followers (and its own restart) decode."""
    if not isinstance(address, str):
        raise InvalidError(f"a server address is a str, not {type(address).__name__}")
    if "\0" in address:
        raise InvalidError(f"server address {address!r} contains a NUL")
    try:
        address.encode()
    except UnicodeEncodeError:
        raise InvalidError(f"server address {address!r} is not valid UTF-8") from None


def encode_configuration(conf: Configuration) -> bytes:
    """Encode per spec §3.3, padding with zeros to a multiple of 8."""
    assert len(conf.servers) > 0, "libraft asserts n > 0"
    parts = [bytes((_VERSION,)), _U64.pack(len(conf.servers))]
    for server in conf.servers:
        parts += [_U64.pack(server.id), server.address.encode(), b"\0",
                  bytes((int(server.role),))]
    out = b"".join(parts)
    return out + bytes(-len(out) % 8)


def decode_configuration(data: bytes | memoryview) -> Configuration:
    """Decode per spec §3.3; MalformedError on anything libraft would reject.

    Linear in the number of servers (sets for the duplicate checks, one tuple
    at the end): the bytes may come from a peer (InstallSnapshot), and adding
    server by server with Configuration.add is quadratic (5,000 servers took a
    second, a 1 MiB header could block the loop for minutes)."""
    buf = bytes(data)
    if len(buf) < 9 or buf[0] != _VERSION:
        raise MalformedError("configuration: bad version or length")
    (n,), pos = _U64.unpack_from(buf, 1), 9
    servers: list[Server] = []
    ids: set[int] = set()
    addresses: set[str] = set()
    for _ in range(n):
        if pos + 8 > len(buf):
            raise MalformedError("configuration: truncated server id")
        (server_id,) = _U64.unpack_from(buf, pos)
        nul = buf.find(b"\0", pos + 8)
        if nul < 0 or nul + 1 >= len(buf):
            raise MalformedError("configuration: unterminated address")
        try:
            address = buf[pos + 8:nul].decode()
            role = Role(buf[nul + 1])
            if server_id <= 0 or server_id in ids or address in addresses:
                # Let add() say which, in its order (the error path only).
                Configuration(tuple(servers)).add(server_id, address, role)
        except (UnicodeDecodeError, ValueError, BadIdError, DuplicateIdError,
                DuplicateAddressError, BadRoleError) as exc:
            raise MalformedError(f"configuration: {exc}") from None
        ids.add(server_id)
        addresses.add(address)
        servers.append(Server(server_id, address, role))
        pos = nul + 2
    return Configuration(tuple(servers))
