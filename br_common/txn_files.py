"""Counting a transactional backup file as TiKV counts it (crc64xor / total_kvs / total_bytes of
backup.File; ../shared/reference/tikv-txn.md A2), from the file's own records:

    default file: every record counts (raw user key, the value);
    write file:   a Put with a short value counts (raw user key, short value), a Delete counts
                  (raw user key, b""); a Put whose value is long is counted by the default file.

Keys are data keys ('z' + memcomparable key + ~ts); the checksum is over the raw user key. A file
is thereby checkable on its own, and so is the part of it inside a raw-key range (a restore
piece), which is what the Coprocessor checksum of the restored range must then add up to.
"""
from __future__ import annotations

from collections.abc import Iterable

from fastcrc import crc64

from br_common.checksum import Checksum
from br_common.data_keys import origin_key
from br_common.txn_codec import Write, WriteType, decode_bytes, plain_write_fields

CF_WRITE = "write"
_PUT, _DELETE = int(WriteType.PUT), int(WriteType.DELETE)


def txn_file_checksum(pairs: Iterable[tuple[bytes, bytes]], cf: str, start: bytes = b"",
                      end: bytes = b"") -> Checksum:
    """The counters of the file's records whose raw user key lies in [start, end) (end b"": unbounded);
    raises ValueError (CodecError) on a key or record TiKV would not have written. One loop with
    the counters in locals (the agent checks every record of a backup with it). Over a whole file
    a write record that counts nothing (a long value's, a Lock, a Rollback) is not decoded: its
    key would only be checked, and such records are most of a file of long values."""
    xz = crc64.xz
    crc = kvs = size = 0
    is_write = cf == CF_WRITE
    bounded = bool(start or end)
    for stored, value in pairs:
        if not is_write:
            counted = value
        else:
            fields = plain_write_fields(value)  # the common record, without a Write
            if fields is not None:
                kind, _start_ts, short_value = fields
                counted = b"" if kind == _DELETE else short_value if kind == _PUT else None
            else:
                counted = _counted_write(value)
            if counted is None and not bounded:
                continue
        raw_key, _ts = decode_bytes(origin_key(stored))
        if raw_key < start:
            continue
        if end and raw_key >= end:
            break
        if counted is not None:
            crc ^= xz(raw_key + counted)
            kvs += 1
            size += len(raw_key) + len(counted)
    return Checksum(crc64xor=crc, total_kvs=kvs, total_bytes=size)


def _counted_write(value: bytes) -> bytes | None:
    """What a write-CF record counts as: its short value, b"" for a Delete, None when not counted
    here (a long value, counted in the default file; Lock and Rollback records)."""
    write = Write.parse(value)
    if write.write_type == WriteType.DELETE:
        return b""
    if write.write_type == WriteType.PUT:
        return write.short_value  # None: long, counted in the default file
    return None
