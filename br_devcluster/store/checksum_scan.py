"""The Coprocessor checksum's pass over a range without locks: one loop over the write CF.

Every key restored or loaded is read by this pass once per verification, so it skips what the
general forward scan (mvcc_scan + txn_reads) builds per key: no KeyVersions, no Write objects
for the common records (type, start_ts, maybe a short value), no per-key generator. The rule is
the general scan's (TxnReader.first_visible): of a key's records at or below ts, newest first,
a Put is the value, a Delete or a failed gc_fence check is no value, Lock and Rollback records
are stepped over. A range holding any lock takes the general scan (it reports or resolves it).
"""
from __future__ import annotations

from br_common.checksum import RunningChecksum
from br_common.txn_codec import U64_SIZE, Write, WriteType, decode_bytes, plain_write_fields, ts_of
from br_devcluster.store.mvcc_scan import ValueCursor, encoded_range
from br_devcluster.store.txn_reader import CF_LOCK, CF_WRITE, CFReader, TxnDataError

_PUT, _DELETE = int(WriteType.PUT), int(WriteType.DELETE)
_LOCK, _ROLLBACK = int(WriteType.LOCK), int(WriteType.ROLLBACK)


def has_locks(cfs: CFReader, low: bytes, high: bytes | None) -> bool:
    start, end = encoded_range(low, high)
    return next(iter(cfs.iterate(CF_LOCK, start, end)), None) is not None


def add_visible(cfs: CFReader, low: bytes, high: bytes | None, ts: int, checksum: RunningChecksum) -> None:
    """Add every value visible at ts in the raw-key range [low, high) (no locks in it) to checksum."""
    start, end = encoded_range(low, high)
    values = ValueCursor(cfs, low, high)
    decided = b""  # the encoded key whose visible version is settled: its older records are skipped
    for key, record in cfs.iterate(CF_WRITE, start, end):
        encoded = key[:-U64_SIZE]
        if encoded == decided or ts_of(key) > ts:
            continue
        kind = record[0]
        if kind == _LOCK or kind == _ROLLBACK:
            if plain_write_fields(record) is not None:  # no gc_fence to check
                continue
            if Write.parse(record).check_gc_fence_as_latest_version(ts):
                continue
            decided = encoded
            continue
        decided = encoded
        value = _put_value(record, encoded, ts, values) if kind == _PUT or kind == _DELETE else _bad(record, key)
        if value is not None:
            checksum.add(decode_bytes(encoded)[0], value)


def _put_value(record: bytes, encoded: bytes, ts: int, values: ValueCursor) -> bytes | None:
    """A Put's value (None for a Delete, or a record whose gc_fence hides it at ts)."""
    fields = plain_write_fields(record)
    if fields is not None:
        kind, start_ts, short_value = fields
        if kind == _DELETE:
            return None
        return short_value if short_value is not None else values.value_at(encoded, start_ts)
    write = Write.parse(record)  # gc_fence, last_change, txn_source: the full parser
    if not write.check_gc_fence_as_latest_version(ts) or write.write_type == WriteType.DELETE:
        return None
    return write.short_value if write.short_value is not None else values.value_at(encoded, write.start_ts)


def _bad(record: bytes, key: bytes) -> None:
    Write.parse(record)  # raises CodecError for an unknown type
    raise TxnDataError(f"write record of {key.hex()} has an unexpected type")
