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
from br_common.txn_codec import (
    SHORT_VALUE_PREFIX, TS_MAX, U64_SIZE, Write, WriteType, decode_bytes, encode_bytes,
)
from br_devcluster.store.txn_reader import CF_DEFAULT, CF_LOCK, CF_WRITE, CFReader, TxnDataError

_PUT, _DELETE = int(WriteType.PUT), int(WriteType.DELETE)
_LOCK, _ROLLBACK = int(WriteType.LOCK), int(WriteType.ROLLBACK)


def has_locks(cfs: CFReader, low: bytes, high: bytes | None) -> bool:
    start, end = _encoded(low, high)
    return next(iter(cfs.iterate(CF_LOCK, start, end)), None) is not None


def add_visible(cfs: CFReader, low: bytes, high: bytes | None, ts: int, checksum: RunningChecksum) -> None:
    """Add every value visible at ts in the raw-key range [low, high) (no locks in it) to checksum."""
    start, end = _encoded(low, high)
    values = _Values(cfs, start, end)
    decided = b""  # the encoded key whose visible version is settled: its older records are skipped
    for key, record in cfs.iterate(CF_WRITE, start, end):
        encoded = key[:-U64_SIZE]
        if encoded == decided or TS_MAX ^ int.from_bytes(key[-U64_SIZE:], "big") > ts:
            continue
        kind = record[0]
        if kind == _LOCK or kind == _ROLLBACK:
            if _plain(record):
                continue
            if Write.parse(record).check_gc_fence_as_latest_version(ts):
                continue
            decided = encoded
            continue
        decided = encoded
        value = _put_value(record, encoded, ts, values) if kind == _PUT or kind == _DELETE else _bad(record, key)
        if value is not None:
            checksum.add(decode_bytes(encoded)[0], value)


class _Values:
    """Default-CF values asked for in ascending key order, read by one forward stream over the
    range (mvcc_scan.ValueCursor's job, with the stream kept in two attributes); a value behind
    the stream falls back to a point read."""

    __slots__ = ("_cfs", "_pairs", "_item")

    def __init__(self, cfs: CFReader, start: bytes, end: bytes | None) -> None:
        self._cfs = cfs
        self._pairs = iter(cfs.iterate(CF_DEFAULT, start, end))
        self._item = next(self._pairs, None)

    def at(self, encoded: bytes, start_ts: int) -> bytes:
        target = encoded + (TS_MAX ^ start_ts).to_bytes(U64_SIZE, "big")
        item, pairs = self._item, self._pairs
        if item is not None and item[0] > target:
            found = self._cfs.get(CF_DEFAULT, target)
        else:
            while item is not None and item[0] < target:
                item = next(pairs, None)
            self._item = item
            found = item[1] if item is not None and item[0] == target else None
        if found is None:
            raise TxnDataError(f"default CF value of {decode_bytes(encoded)[0]!r} at start_ts {start_ts} is missing")
        return found


def _put_value(record: bytes, encoded: bytes, ts: int, values: _Values) -> bytes | None:
    """A Put's value (None for a Delete, or a record whose gc_fence hides it at ts)."""
    start_ts, pos = _var_u64(record, 1)
    size = len(record)
    if pos == size:  # plain, without a short value
        return None if record[0] == _DELETE else values.at(encoded, start_ts)
    if record[pos] == SHORT_VALUE_PREFIX and pos + 2 + record[pos + 1] == size:
        return record[pos + 2:] if record[0] == _PUT else None
    write = Write.parse(record)  # gc_fence, last_change, txn_source: the full parser
    if not write.check_gc_fence_as_latest_version(ts) or write.write_type == WriteType.DELETE:
        return None
    return write.short_value if write.short_value is not None else values.at(encoded, start_ts)


def _var_u64(data: bytes, pos: int) -> tuple[int, int]:
    """read_var_u64 without its checks, for records the store wrote (a truncated one raises
    IndexError here; Write.parse, which reports it, reads every record that is not plain)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _plain(record: bytes) -> bool:
    """A record of type and start_ts alone, or with a short value: no gc_fence to check."""
    _, pos = _var_u64(record, 1)
    return pos == len(record) or (record[pos] == SHORT_VALUE_PREFIX and pos + 2 + record[pos + 1] == len(record))


def _bad(record: bytes, key: bytes) -> None:
    Write.parse(record)  # raises CodecError for an unknown type
    raise TxnDataError(f"write record of {key.hex()} has an unexpected type")


def _encoded(low: bytes, high: bytes | None) -> tuple[bytes, bytes | None]:
    return encode_bytes(low), encode_bytes(high) if high else None
