"""TiKV's txn codecs: vectors from TiKV's own tests (tikv_util codec/bytes.rs test_enc_dec_bytes,
test_dec_bytes_fail; txn_types types.rs test_append_ts) and records built by hand from the
layouts in write.rs / lock.rs to_bytes, plus TiKV's round-trip cases."""
from __future__ import annotations

import random

import pytest
from google.protobuf.internal import encoder, wire_format

from br_common import txn_codec
from br_common.txn_codec import (
    TS_MAX, CodecError, Lock, LockType, Reader, Write, WriteType, append_ts, decode_bytes,
    encode_bytes, encode_compact_bytes, encode_u64, encode_var_i64, encode_var_u64, split_ts,
)

# (raw, ascending encoding) from tikv_util codec/bytes.rs test_enc_dec_bytes
ENC_VECTORS = [
    (b"", bytes([0, 0, 0, 0, 0, 0, 0, 0, 247])),
    (b"\x00", bytes([0, 0, 0, 0, 0, 0, 0, 0, 248])),
    (bytes([1, 2, 3]), bytes([1, 2, 3, 0, 0, 0, 0, 0, 250])),
    (bytes([1, 2, 3, 0]), bytes([1, 2, 3, 0, 0, 0, 0, 0, 251])),
    (bytes([1, 2, 3, 4, 5, 6, 7]), bytes([1, 2, 3, 4, 5, 6, 7, 0, 254])),
    (bytes(8), bytes([0, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 247])),
    (bytes([1, 2, 3, 4, 5, 6, 7, 8]), bytes([1, 2, 3, 4, 5, 6, 7, 8, 255, 0, 0, 0, 0, 0, 0, 0, 0, 247])),
    (bytes([1, 2, 3, 4, 5, 6, 7, 8, 9]), bytes([1, 2, 3, 4, 5, 6, 7, 8, 255, 9, 0, 0, 0, 0, 0, 0, 0, 248])),
]

# from test_dec_bytes_fail
BAD_ENCODINGS = [
    [1, 2, 3, 4],
    [0, 0, 0, 0, 0, 0, 0, 247],
    [0, 0, 0, 0, 0, 0, 0, 0, 246],
    [0, 0, 0, 0, 0, 0, 0, 1, 247],
    [1, 2, 3, 4, 5, 6, 7, 8, 0],
    [1, 2, 3, 4, 5, 6, 7, 8, 255, 1],
    [1, 2, 3, 4, 5, 6, 7, 8, 255, 1, 2, 3, 4, 5, 6, 7, 8],
    [1, 2, 3, 4, 5, 6, 7, 8, 255, 1, 2, 3, 4, 5, 6, 7, 8, 255],
    [1, 2, 3, 4, 5, 6, 7, 8, 255, 1, 2, 3, 4, 5, 6, 7, 8, 0],
    [1, 2, 3, 4, 5, 6, 7, 8, 255, 1, 0, 0, 0, 0, 0, 0, 0, 247],
]


@pytest.mark.parametrize(("raw", "encoded"), ENC_VECTORS)
def test_encode_bytes_matches_tikv(raw: bytes, encoded: bytes) -> None:
    assert encode_bytes(raw) == encoded
    with_ts = append_ts(encoded, 0)  # TiKV's test: a trailing ts is left for the caller
    assert decode_bytes(with_ts) == (raw, encode_u64(TS_MAX))


@pytest.mark.parametrize("bad", BAD_ENCODINGS)
def test_decode_bytes_rejects_what_tikv_rejects(bad: list[int]) -> None:
    with pytest.raises(CodecError):
        decode_bytes(bytes(bad))


def test_encode_bytes_keeps_order_and_round_trips() -> None:
    rng = random.Random(7)
    keys = [bytes(rng.choice(b"\x00\x01\xfe\xff") for _ in range(rng.randrange(40))) for _ in range(300)]
    assert sorted(keys, key=encode_bytes) == sorted(keys)
    for key in keys:  # 1 to 5 groups, with and without what follows (a ts of 0xFF bytes is the hard one)
        assert decode_bytes(encode_bytes(key)) == (key, b"")
        assert decode_bytes(append_ts(encode_bytes(key), 0)) == (key, encode_u64(TS_MAX))


def test_append_ts_matches_tikv() -> None:
    assert append_ts(b"abc", 100) == b"abc" + bytes([0xFF] * 7 + [0x9B])
    assert append_ts(encode_bytes(b"z"), 1000) == bytes(
        [ord("z"), 0, 0, 0, 0, 0, 0, 0, 0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC, 0x17])
    assert split_ts(append_ts(b"abc", 100)) == (b"abc", 100)


def test_newer_versions_sort_first() -> None:
    key = encode_bytes(b"k")
    assert append_ts(key, 20) < append_ts(key, 10) < append_ts(encode_bytes(b"k\x00"), 30)


def test_split_ts_needs_eight_bytes() -> None:
    with pytest.raises(CodecError):
        split_ts(b"1234567")


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 1234, 1 << 40, TS_MAX])
def test_var_u64_is_protobuf_varint(value: int) -> None:
    assert encode_var_u64(value) == encoder._VarintBytes(value)
    assert Reader(encode_var_u64(value)).var_u64() == value


def test_var_u64_known_bytes() -> None:
    assert encode_var_u64(1234) == bytes([210, 9])
    assert encode_var_u64(256) == bytes([128, 2])
    assert encode_var_u64(TS_MAX) == bytes([255] * 9 + [1])


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, -(1 << 63), (1 << 63) - 1])
def test_var_i64_is_zigzag(value: int) -> None:
    assert encode_var_i64(value) == encoder._VarintBytes(wire_format.ZigZagEncode(value))
    assert Reader(encode_var_i64(value)).var_i64() == value


def test_var_u64_rejects_truncated_and_overlong() -> None:
    with pytest.raises(CodecError):
        Reader(b"\x80\x80").var_u64()
    with pytest.raises(CodecError):
        Reader(b"\xff" * 11).var_u64()


@pytest.mark.parametrize("data", [b"", b"hello", "世界".encode()])
def test_compact_bytes_round_trip(data: bytes) -> None:
    reader = Reader(encode_compact_bytes(data) + b"rest")
    assert reader.compact_bytes() == data
    assert reader.take(4) == b"rest" and reader.empty


# --- Write records: hand-built bytes from write.rs to_bytes ---------------------------------

WRITE_VECTORS = [
    (Write(WriteType.PUT, 0, b"short_value"), b"P\x00v\x0bshort_value"),
    (Write(WriteType.DELETE, 1 << 20), b"D\x80\x80\x40"),
    (Write.rollback(1 << 40, protected=True), b"R\x80\x80\x80\x80\x80\x20v\x01p"),
    (Write(WriteType.ROLLBACK, 1 << 41), b"R\x80\x80\x80\x80\x80\x40"),
    (Write(WriteType.PUT, 123, has_overlapped_rollback=True), b"P\x7bR"),
    (Write(WriteType.PUT, 123, has_overlapped_rollback=True, gc_fence=1234567),
     b"P\x7bRF" + (1234567).to_bytes(8, "big")),
    (Write(WriteType.PUT, 456, b"short_value", True, gc_fence=0),
     b"P\xc8\x03v\x0bshort_valueRF" + bytes(8)),
    (Write(WriteType.LOCK, 456, last_change_ts=345, versions_to_last_change=11),
     b"L\xc8\x03l" + (345).to_bytes(8, "big") + b"\x0b"),
    (Write(WriteType.LOCK, 456, versions_to_last_change=1), b"L\xc8\x03l" + bytes(8) + b"\x01"),
    (Write(WriteType.LOCK, 456, txn_source=1), b"L\xc8\x03S\x01"),
]


@pytest.mark.parametrize(("write", "encoded"), WRITE_VECTORS)
def test_write_bytes(write: Write, encoded: bytes) -> None:
    assert write.to_bytes() == encoded
    assert Write.parse(encoded) == write


def test_write_parse_stops_at_unknown_tag() -> None:
    write = Write(WriteType.LOCK, 1, b"short_value")
    assert Write.parse(write.to_bytes() + b"unknown") == write


@pytest.mark.parametrize("bad", [b"", b"L", b"X\x01", b"P\x01v\x05abc"])
def test_write_parse_rejects_bad_records(bad: bytes) -> None:
    with pytest.raises(CodecError):
        Write.parse(bad)


def test_write_rejects_long_short_value() -> None:
    Write(WriteType.PUT, 1, b"x" * 255).to_bytes()
    with pytest.raises(CodecError):
        Write(WriteType.PUT, 1, b"x" * 256).to_bytes()


def test_protected_rollback_and_gc_fence() -> None:
    assert Write.rollback(1, protected=True).is_protected()
    assert not Write.rollback(2, protected=False).is_protected()
    assert not Write(WriteType.PUT, 3, b"p").is_protected()
    cases = [(None, 10, True), (0, 100, True), (0, TS_MAX, True), (100, 50, True),
             (100, 100, False), (100, 150, False)]  # write.rs test_check_gc_fence
    for fence, read_ts, valid in cases:
        write = Write(WriteType.PUT, 5, has_overlapped_rollback=True, gc_fence=fence)
        assert write.check_gc_fence_as_latest_version(read_ts) is valid


# --- Lock records ---------------------------------------------------------------------------

def _u64s(*values: int) -> bytes:
    return b"".join(v.to_bytes(8, "big") for v in values)


LOCK_VECTORS = [
    (Lock(LockType.PUT, b"pk", 1, 10), b"P\x04pk\x01\x0a"),
    (Lock(LockType.DELETE, b"pk", 1, 10, b"short_value"), b"D\x04pk\x01\x0av\x0bshort_value"),
    (Lock(LockType.PUT, b"pkpkpk", 111, 222, None, 333, 444, 555),
     b"P\x0cpkpkpk\x6f\xde\x01f" + _u64s(333) + b"t" + _u64s(444) + b"c" + _u64s(555)),
    (Lock(LockType.PUT, b"pk", 111, 222, b"short_value", 333, 444, 555, use_async_commit=True,
          secondaries=(b"k",), rollback_ts=(12, 24, 13)),
     b"P\x04pk\x6f\xde\x01v\x0bshort_valuef" + _u64s(333) + b"t" + _u64s(444) + b"c" + _u64s(555)
     + b"a\x01\x02kr\x03" + _u64s(12, 24, 13)),
    (Lock(LockType.PUT, b"pk", 1, 2, use_async_commit=True), b"P\x04pk\x01\x02a\x00"),
    (Lock(LockType.LOCK, b"pk", 1, 10, None, 6, 16, 8, last_change_ts=4, versions_to_last_change=2,
          txn_source=1, generation=10),
     b"L\x04pk\x01\x0af" + _u64s(6) + b"t" + _u64s(16) + b"c" + _u64s(8) + b"l" + _u64s(4)
     + b"\x02s\x01g" + _u64s(10)),
    (Lock(LockType.PESSIMISTIC, b"pk", 5, 3000, for_update_ts=7, is_locked_with_conflict=True),
     b"S\x04pk\x05\xb8\x17f" + _u64s(7) + b"F"),
]


@pytest.mark.parametrize(("lock", "encoded"), LOCK_VECTORS)
def test_lock_bytes(lock: Lock, encoded: bytes) -> None:
    assert lock.to_bytes() == encoded
    assert Lock.parse(encoded) == lock


def test_lock_without_ttl_and_unknown_tags() -> None:
    assert Lock.parse(b"P\x04pk\x01") == Lock(LockType.PUT, b"pk", 1, 0)
    lock = Lock(LockType.LOCK, b"pk", 1, 10, b"short_value")
    assert Lock.parse(lock.to_bytes() + b"unknown") == lock


@pytest.mark.parametrize("bad", [b"", b"P\x04p", b"H\x04pk\x01\x0a", b"P\x04pk\x01\x0af\x00"])
def test_lock_parse_rejects_bad_records(bad: bytes) -> None:
    with pytest.raises(CodecError):
        Lock.parse(bad)


def test_lock_type_to_write_type() -> None:
    assert LockType.PUT.write_type() == WriteType.PUT
    assert LockType.DELETE.write_type() == WriteType.DELETE
    assert LockType.LOCK.write_type() == WriteType.LOCK
    assert LockType.PESSIMISTIC.write_type() is None


def _outcome(parse, data: bytes) -> object:  # noqa: ANN001 - Lock.parse or Write.parse
    try:
        return parse(data)
    except CodecError:
        return CodecError


@pytest.mark.parametrize(("lock", "encoded"), LOCK_VECTORS)
def test_lock_fast_parse_agrees_on_every_prefix(lock: Lock, encoded: bytes) -> None:
    """The position-based parse of common locks answers what the tag-by-tag reader does."""
    for cut in range(len(encoded) + 1):
        record = encoded[:cut]
        fast = txn_codec._parse_plain_lock(record)
        if fast is not None:
            assert fast == _outcome(_slow_lock, record), record
            assert hash(fast) == hash(_slow_lock(record))


def _slow_lock(data: bytes) -> Lock:
    reader = txn_codec.Reader(data)
    if reader.empty:
        raise CodecError("empty lock record")
    lock_type = txn_codec._enum_or_error(LockType, reader.u8(), "lock type")
    primary, ts = reader.compact_bytes(), reader.var_u64()
    fields: dict = {"ttl": 0 if reader.empty else reader.var_u64()}
    while not reader.empty and txn_codec._parse_lock_tag(reader, reader.u8(), fields):
        pass
    return Lock(lock_type, primary, ts, **fields)


@pytest.mark.parametrize("write", [Write(WriteType.PUT, 5), Write(WriteType.PUT, 1 << 40, b"v" * 255),
                                   Write(WriteType.DELETE, 3, b""), Write(WriteType.ROLLBACK, 7, b"p")])
def test_write_fast_parse_agrees_on_every_prefix(write: Write) -> None:
    encoded = write.to_bytes()
    assert Write.parse(encoded) == write and hash(Write.parse(encoded)) == hash(write)
    for cut in range(len(encoded)):
        fast = _outcome(txn_codec._parse_plain_write, encoded[:cut])
        assert fast is None or fast == _outcome(Write.parse, encoded[:cut])
