"""Metadata files (spec §3.4): golden bytes from real libraft, load rules, errors."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftpy.errors import CorruptError, MalformedError
from raftpy.io.metadata import (
    FRESH,
    METADATA_SIZE,
    Metadata,
    choose_metadata,
    decode_metadata,
    encode_metadata,
    metadata_file_for,
)

# Spec §3.12: written by libraft 0.18.1 (identical with 0.15.0) after
# bootstrap, set_term(2), set_vote(1).
GOLDEN_METADATA1 = bytes.fromhex(
    "0100000000000000" "0300000000000000"     # format 1, version 3 (set_vote)
    "0200000000000000" "0100000000000000")    # term 2, voted_for 1
GOLDEN_METADATA2 = bytes.fromhex(
    "0100000000000000" "0200000000000000"     # format 1, version 2 (set_term(2))
    "0200000000000000" "0000000000000000")    # term 2, no vote

u64 = st.integers(0, (1 << 64) - 1)


def test_golden_bytes_encode() -> None:
    assert encode_metadata(3, 2, 1) == GOLDEN_METADATA1
    assert encode_metadata(2, 2, 0) == GOLDEN_METADATA2
    assert len(GOLDEN_METADATA1) == METADATA_SIZE == 32


def test_golden_bytes_decode_and_choose() -> None:
    m1 = decode_metadata(GOLDEN_METADATA1, "metadata1")
    m2 = decode_metadata(GOLDEN_METADATA2, "metadata2")
    assert m1 == Metadata(version=3, term=2, voted_for=1)
    assert m2 == Metadata(version=2, term=2, voted_for=0)
    assert choose_metadata(m1, m2) == m1
    assert choose_metadata(m2, m1) == m1          # the winner is by version, not by slot


def test_fresh_bootstrap_state() -> None:
    # Bootstrap writes metadata1 = (version 1, term 1, no vote) and nothing else.
    m1 = decode_metadata(encode_metadata(1, 1, 0), "metadata1")
    assert choose_metadata(m1, None) == Metadata(1, 1, 0)
    assert metadata_file_for(1) == "metadata1"


def test_metadata_file_for_alternates() -> None:
    assert [metadata_file_for(v) for v in (1, 2, 3, 4, 5)] == [
        "metadata1", "metadata2", "metadata1", "metadata2", "metadata1"]


def test_metadata_is_a_frozen_slotted_value() -> None:
    m = Metadata(1, 2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.term = 5  # type: ignore[misc]
    assert not hasattr(m, "__dict__")


@pytest.mark.parametrize("size", [0, 1, 8, 31])
def test_short_file_counts_as_missing(size: int) -> None:
    assert decode_metadata(GOLDEN_METADATA1[:size], "metadata1") is None


@pytest.mark.parametrize("size", [33, 40, 4096])
def test_long_file_is_corrupt(size: int) -> None:
    data = GOLDEN_METADATA2 + bytes(size - 32)
    with pytest.raises(CorruptError) as info:
        decode_metadata(data, "metadata2")
    assert str(info.value) == f"metadata2 has size {size} instead of 32"
    assert info.value.code == 12


@pytest.mark.parametrize("fmt", [0, 2, 1 << 63])
def test_bad_format_is_malformed(fmt: int) -> None:
    data = fmt.to_bytes(8, "little") + GOLDEN_METADATA1[8:]
    with pytest.raises(MalformedError) as info:
        decode_metadata(data, "metadata1")
    assert str(info.value) == f"decode content of metadata1: bad format version {fmt}"
    assert info.value.code == 6


def test_zero_version_is_corrupt() -> None:
    data = GOLDEN_METADATA1[:8] + bytes(8) + GOLDEN_METADATA1[16:]
    with pytest.raises(CorruptError) as info:
        decode_metadata(data, "metadata1")
    assert str(info.value) == "decode content of metadata1: version is set to zero"


def test_choose_both_missing_is_fresh() -> None:
    assert choose_metadata(None, None) == FRESH == Metadata(0, 0, 0)


def test_choose_equal_versions_is_corrupt() -> None:
    with pytest.raises(CorruptError) as info:
        choose_metadata(Metadata(7, 3, 1), Metadata(7, 3, 2))
    assert str(info.value) == "metadata1 and metadata2 are both at version 7"


def test_choose_one_missing() -> None:
    m = Metadata(2, 5, 0)
    assert choose_metadata(None, m) is m
    assert choose_metadata(m, None) is m


@given(u64.filter(bool), u64, u64)
def test_round_trip(version: int, term: int, voted_for: int) -> None:
    data = encode_metadata(version, term, voted_for)
    assert len(data) == 32
    name = metadata_file_for(version)
    assert decode_metadata(data, name) == Metadata(version, term, voted_for)


@given(u64.filter(bool), u64.filter(bool), u64, u64)
def test_choose_takes_higher_version(v1: int, v2: int, term: int, vote: int) -> None:
    m1, m2 = Metadata(v1, term, vote), Metadata(v2, term + 1 if term < 2**64 - 1 else 0, 0)
    if v1 == v2:
        with pytest.raises(CorruptError):
            choose_metadata(m1, m2)
    else:
        assert choose_metadata(m1, m2) == (m1 if v1 > v2 else m2)


@given(st.binary(min_size=0, max_size=64))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        result = decode_metadata(data, "metadata1")
    except (CorruptError, MalformedError):
        return
    assert (result is None) == (len(data) < 32)
    if result is not None:
        assert encode_metadata(result.version, result.term, result.voted_for) == data
