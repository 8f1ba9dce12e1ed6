"""The Coprocessor checksum's pass over a range without locks: one loop over the write CF.

Every key restored or loaded is read by this pass once per verification, so it skips what the
general forward scan (mvcc_scan + txn_reads) builds per key: no KeyVersions, no Write objects
for the common records (type, start_ts, maybe a short value), no per-key generator. The rule is
the general scan's (TxnReader.first_visible): of a key's records at or below ts, newest first,
a Put is the value, a Delete or a failed gc_fence check is no value, Lock and Rollback records
are stepped over. A range holding any lock takes the general scan (it reports or resolves it).
"""
from __future__ import annotations

from collections.abc import Iterator

from br_common.checksum import RunningChecksum
from br_common.txn_codec import U64_SIZE, Write, WriteType, decode_bytes, plain_write_fields, ts_of
from br_devcluster.store.mvcc_scan import ValueCursor, encoded_range
from br_devcluster.store.txn_reader import CF_LOCK, CF_WRITE, CFReader

_PUT, _LOCK, _ROLLBACK = int(WriteType.PUT), int(WriteType.LOCK), int(WriteType.ROLLBACK)


def has_locks(cfs: CFReader, low: bytes, high: bytes | None) -> bool:
    start, end = encoded_range(low, high)
    return next(iter(cfs.iterate(CF_LOCK, start, end)), None) is not None


def add_visible(cfs: CFReader, low: bytes, high: bytes | None, ts: int, checksum: RunningChecksum) -> None:
    """Add every value visible at ts in the raw-key range [low, high) (no locks in it) to checksum."""
    values = ValueCursor(cfs, low, high)
    for encoded, _commit_ts, _record, kind, start_ts, short_value in visible_writes(cfs, low, high, ts):
        if kind == _PUT:
            checksum.add(decode_bytes(encoded)[0],
                         short_value if short_value is not None else values.value_at(encoded, start_ts))


def visible_writes(cfs: CFReader, low: bytes, high: bytes | None,
                   ts: int) -> Iterator[tuple[bytes, int, bytes, int, int, bytes | None]]:
    """Per key of [low, high) (no locks in it) whose newest record at or below ts, Lock and
    Rollback records stepped over, is a Put or a Delete that its gc_fence does not hide:
    (encoded key, commit_ts, the record as stored, type byte, start_ts, short value). A plain
    tuple: this runs once per key of every checksum and backup."""
    start, end = encoded_range(low, high)
    decided = b""  # the encoded key whose visible version is settled: its older records are skipped
    for key, record in cfs.iterate(CF_WRITE, start, end):
        encoded = key[:-U64_SIZE]
        if encoded == decided:
            continue
        commit_ts = ts_of(key)
        if commit_ts > ts:
            continue
        fields = visible_fields(record, ts)
        if fields is None:
            decided = encoded
            continue
        kind, start_ts, short_value = fields
        if kind == _LOCK or kind == _ROLLBACK:
            continue
        decided = encoded
        yield encoded, commit_ts, record, kind, start_ts, short_value


def visible_fields(record: bytes, ts: int) -> tuple[int, int, bytes | None] | None:
    """(type byte, start_ts, short value) of a write record read at ts, or None when its gc_fence
    hides it (the key then has no value at ts). The common record is read without a Write; any
    other goes through the full parser, which raises CodecError on an unknown type."""
    fields = plain_write_fields(record)
    if fields is not None:
        return fields
    write = Write.parse(record)  # gc_fence, last_change, txn_source
    if not write.check_gc_fence_as_latest_version(ts):
        return None
    return int(write.write_type), write.start_ts, write.short_value
