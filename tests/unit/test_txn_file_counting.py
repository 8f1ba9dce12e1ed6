"""txn_files.txn_file_checksum over write-CF records of every shape: the plain ones take the fast
path (plain_write_fields), the others Write.parse; both must count as TiKV counts."""
from __future__ import annotations

import pytest

from br_common.checksum import Checksum
from br_common.data_keys import DATA_PREFIX
from br_common.txn_codec import Write, WriteType, append_ts, encode_bytes, plain_write_fields
from br_common.txn_files import txn_file_checksum


def _pair(key: bytes, write: Write | bytes) -> tuple[bytes, bytes]:
    value = write if isinstance(write, bytes) else write.to_bytes()
    return DATA_PREFIX + append_ts(encode_bytes(key), 100), value


def test_every_record_shape_counts_as_tikv_counts() -> None:
    pairs = [
        _pair(b"a", Write(WriteType.PUT, 90, b"short")),  # plain, short value: counted
        _pair(b"b", Write(WriteType.PUT, 90)),  # long value: counted by the default file
        _pair(b"c", Write(WriteType.DELETE, 90)),  # counted as (key, b"")
        _pair(b"d", Write(WriteType.LOCK, 90)),  # not counted
        _pair(b"e", Write(WriteType.ROLLBACK, 90, b"p")),  # protected rollback: not counted
        _pair(b"f", Write(WriteType.PUT, 90, b"v", last_change_ts=5, versions_to_last_change=2)),  # full parse
        _pair(b"g", Write(WriteType.PUT, 90, b"fenced", gc_fence=120)),  # full parse, counted
    ]
    want = Checksum().add_pairs([(b"a", b"short"), (b"c", b""), (b"f", b"v"), (b"g", b"fenced")])
    assert txn_file_checksum(pairs, "write") == want
    assert txn_file_checksum(pairs, "write", b"b", b"f") == Checksum().add_pairs([(b"c", b"")])


def test_plain_fields_only_for_plain_records() -> None:
    assert plain_write_fields(Write(WriteType.PUT, 300, b"x").to_bytes()) == (ord("P"), 300, b"x")
    assert plain_write_fields(Write(WriteType.DELETE, 7).to_bytes()) == (ord("D"), 7, None)
    assert plain_write_fields(Write(WriteType.PUT, 7, b"x", gc_fence=9).to_bytes()) is None
    assert plain_write_fields(b"P\x80") is None  # a truncated varint
    assert plain_write_fields(b"Zab") is None  # an unknown type: Write.parse reports it


def test_a_record_tikv_would_not_write_is_refused() -> None:
    with pytest.raises(ValueError):
        txn_file_checksum([_pair(b"a", b"Z\x05")], "write")
