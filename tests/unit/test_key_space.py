"""key_space: region bounds (engine keys) as raw-key bounds for txn requests, checked by brute force."""
from __future__ import annotations

import itertools
import random

import pytest

from br_common.kvproto import kvrpcpb_pb2 as pb, metapb_pb2
from br_common.txn_codec import append_ts, encode_bytes
from br_devcluster.key_layout import split_keys
from br_devcluster.store.errors import RegionError
from br_devcluster.store.key_space import check_raw_ranges, raw_bounds, smallest_raw_at_or_after
from br_devcluster.store.regions import RegionChecker
from tests.doubles import FakePD

ALPHABET = [0x00, 0x01, 0xFE, 0xFF]
RAW_KEYS = sorted(bytes(p) for n in range(10) for p in itertools.product(ALPHABET, repeat=n) if n < 6 or
                  len(set(p)) == 1)
ENCODED = sorted((encode_bytes(k), k) for k in RAW_KEYS)


def _expected(bound: bytes) -> bytes | None:
    return next((k for e, k in ENCODED if e >= bound), None)


def test_valid_encodings_and_keys_with_a_ts() -> None:
    for key in RAW_KEYS[:500]:
        assert smallest_raw_at_or_after(encode_bytes(key)) == key
        assert smallest_raw_at_or_after(append_ts(encode_bytes(key), 5)) == key + b"\x00"
    assert smallest_raw_at_or_after(b"") == b""


def test_arbitrary_bounds_match_brute_force() -> None:
    rng = random.Random(7)
    pool = bytes(ALPHABET) + b"\xf7\xf8\xfd"
    for _ in range(3000):
        bound = bytes(rng.choice(pool) for _ in range(rng.randrange(1, 20)))
        expected = _expected(bound)
        got = smallest_raw_at_or_after(bound)
        assert encode_bytes(got) >= bound
        if expected is not None and len(expected) < 5:
            assert got <= expected or encode_bytes(got) == encode_bytes(expected), bound.hex()


def test_raw_bounds_of_a_region() -> None:
    region = metapb_pb2.Region(start_key=encode_bytes(b"b"), end_key=b"m")
    assert raw_bounds(region) == (b"b", b"m")
    assert raw_bounds(metapb_pb2.Region()) == (b"", None)


def test_pre_split_keys_are_encoded_and_spread() -> None:
    keys = split_keys(4)
    assert keys == [encode_bytes(bytes([b, 0])) for b in (0x40, 0x80, 0xC0)]
    assert split_keys(1) == [] and keys == sorted(keys)
    assert all(raw_bounds(metapb_pb2.Region(start_key=k))[0] == bytes([k[0], 0]) for k in keys)
    with pytest.raises(ValueError):
        split_keys(0)


def test_raw_ranges_are_checked_in_raw_space() -> None:
    pd = FakePD.from_bounds([b"\x40\x00"], [1, 1])  # a raw 2-byte bound, as PD's raw pre-split
    checker = RegionChecker(pd, lambda: 1)
    first, second = (pb.Context(region_id=i) for i in (1, 2))
    assert check_raw_ranges(checker, first, [(b"", b"\x40"), (b"\x3f", b"\x3f\xff")]).id == 1
    assert check_raw_ranges(checker, second, [(b"\x40", b"")]).id == 2
    for ctx, bad in [(first, (b"", b"\x40\x00")), (first, (b"\x10", b"")), (second, (b"\x3f", b"\x41"))]:
        with pytest.raises(RegionError) as refused:
            check_raw_ranges(checker, ctx, [bad])
        assert refused.value.error.HasField("key_not_in_region")
