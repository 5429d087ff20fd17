"""Configuration encoding (spec §3.3), byte exact, and the Configuration helpers."""

from __future__ import annotations

import struct
import time

import pytest

from raftpy.core.configuration import (
    Configuration,
    Role,
    Server,
    decode_configuration,
    encode_configuration,
)
from raftpy.errors import BadIdError, DuplicateAddressError, DuplicateIdError, MalformedError

# The upstream test vector: one server, id 5, address "x.y", voter.
ONE = bytes.fromhex("01" "0100000000000000" "0500000000000000" "782e7900" "01")


def test_encode_matches_upstream_vector_padded_with_zeros() -> None:
    data = Configuration.of((5, "x.y")).encode()
    assert data == ONE + bytes(2)
    assert len(data) % 8 == 0


def test_decode_ignores_uninitialised_padding() -> None:
    # libraft leaves pad bytes uninitialised (observed "00 ff ff ff ff ff ff 7f").
    conf = decode_configuration(ONE + b"\xff\x7f")
    assert conf.servers == (Server(5, "x.y", Role.VOTER),)


def test_roundtrip_keeps_order_and_roles() -> None:
    conf = Configuration.of((3, "c:1"), (1, "a:1", Role.STANDBY), (2, "b:1", Role.SPARE))
    assert decode_configuration(conf.encode()) == conf
    assert [s.id for s in conf.servers] == [3, 1, 2]
    assert conf.voter_ids == (3,)


def test_size_formula() -> None:
    conf = Configuration.of((1, "127.0.0.1:9001"), (2, "127.0.0.1:9002"))
    raw = 1 + 8 + 2 * (8 + len("127.0.0.1:9001") + 1 + 1)
    assert len(conf.encode()) == raw + (-raw % 8)


@pytest.mark.parametrize("data", [
    b"",
    bytes.fromhex("02" "0100000000000000" "0500000000000000" "782e7900" "01"),  # version
    bytes.fromhex("01" "0100000000000000" "0500000000000000" "782e79"),         # no NUL
    bytes.fromhex("01" "0100000000000000" "0500000000000000" "782e7900" "07"),  # role
    bytes.fromhex("01" "0200000000000000" "0500000000000000" "6100" "01"
                  "0500000000000000" "6200" "01"),                                # dup id
    bytes.fromhex("01" "0200000000000000" "0500000000000000" "6100" "01"
                  "0600000000000000" "6100" "01"),                                # dup addr
    bytes.fromhex("01" "0200000000000000" "0500000000000000" "6100" "01"),      # short
    bytes.fromhex("01" "0100000000000000" "0000000000000000" "6100" "01"),      # id 0
])
def test_malformed(data: bytes) -> None:
    with pytest.raises(MalformedError):
        decode_configuration(data)


def test_decode_is_linear_in_the_number_of_servers() -> None:
    """A peer's InstallSnapshot carries a configuration: 30,000 servers (~600 KB)
    decode in well under a second (server-by-server add() took about 36 s)."""
    n = 30000
    data = b"\x01" + struct.pack("<Q", n) + b"".join(
        struct.pack("<Q", i + 1) + f"h{i}".encode() + b"\0\x01" for i in range(n))
    start = time.perf_counter()
    conf = decode_configuration(data)
    assert len(conf) == n and conf.servers[-1] == Server(n, f"h{n - 1}", Role.VOTER)
    assert time.perf_counter() - start < 3.0


def test_bytes_after_the_last_server_are_ignored() -> None:
    assert decode_configuration(ONE + b"garbage!") == Configuration.of((5, "x.y"))


def test_add_checks_in_libraft_order() -> None:
    conf = Configuration.of((1, "a"))
    with pytest.raises(DuplicateIdError):
        conf.add(1, "a")
    with pytest.raises(DuplicateAddressError):
        conf.add(2, "a")
    with pytest.raises(BadIdError):
        conf.add(0, "z")
    assert conf.add(2, "b", Role.SPARE).role_of(2) is Role.SPARE


def test_remove_and_assign_return_new_values() -> None:
    conf = Configuration.of((1, "a"), (2, "b"))
    assert conf.remove(2) == Configuration.of((1, "a"))
    assert conf.assign(2, Role.STANDBY).role_of(2) is Role.STANDBY
    assert conf.role_of(2) is Role.VOTER
    with pytest.raises(BadIdError):
        conf.remove(9)


def test_encode_requires_a_server() -> None:
    with pytest.raises(AssertionError):
        encode_configuration(Configuration())
