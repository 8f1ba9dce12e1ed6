"""MVCC key encoding: order across lengths, prefixes and \\x00 bytes; round trips."""
from __future__ import annotations

import itertools

import pytest

from br_devcluster.store import mvcc

KEYS = [b"", b"\x00", b"\x00\x00", b"\x00\x01", b"\x00\xff", b"\x01", b"a", b"a\x00", b"a\x00\x00", b"a\x00b",
        b"a\x01", b"a\xff", b"ab", b"abc", b"b", b"\xff", b"\xff\x00", b"\xff\xff\xff"]
TIMESTAMPS = [0, 1, 2, 1 << 18, (1 << 40) + 5, mvcc.TS_MAX - 1, mvcc.TS_MAX]


def test_order_is_user_key_then_newest_first() -> None:
    pairs = list(itertools.product(KEYS, TIMESTAMPS))
    expected = sorted(pairs, key=lambda kt: (kt[0], -kt[1]))
    assert sorted(pairs, key=lambda kt: mvcc.encode_key(*kt)) == expected


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("ts", TIMESTAMPS)
def test_round_trip(key: bytes, ts: int) -> None:
    assert mvcc.decode_key(mvcc.encode_key(key, ts)) == (key, ts)


def test_memcomparable_is_prefix_free() -> None:
    encoded = [mvcc.memcomparable(k) for k in KEYS]
    for a, b in itertools.permutations(encoded, 2):
        assert not b.startswith(a)


def test_bounds_cover_exactly_the_user_range() -> None:
    lower, upper = mvcc.lower_bound(b"a"), mvcc.upper_bound(b"ab")
    inside = [k for k in KEYS if b"a" <= k < b"ab"]
    for key, ts in itertools.product(KEYS, TIMESTAMPS):
        encoded = mvcc.encode_key(key, ts)
        assert (lower <= encoded < upper) == (key in inside)
    assert mvcc.upper_bound(b"") is None


def test_values() -> None:
    assert mvcc.decode_value(mvcc.encode_put(b"")) == b""
    assert mvcc.decode_value(mvcc.encode_put(b"D")) == b"D"
    assert mvcc.decode_value(mvcc.TOMBSTONE) is None
    with pytest.raises(mvcc.MvccError):
        mvcc.decode_value(b"Xjunk")


@pytest.mark.parametrize("bad", [b"", b"short", b"a\x00\x01", b"a\x00b\x00\x01" + b"\x00" * 8])
def test_decode_rejects_foreign_keys(bad: bytes) -> None:
    with pytest.raises(mvcc.MvccError):
        mvcc.decode_key(bad)


def test_ts_out_of_range() -> None:
    with pytest.raises(mvcc.MvccError):
        mvcc.encode_key(b"k", -1)
    with pytest.raises(mvcc.MvccError):
        mvcc.encode_key(b"k", 1 << 64)
