"""One forward pass over a range of TiKV's transactional layout, as TiKV's ForwardScanner does it:
the lock CF and write CF cursors advance together, so a user key costs a step of each cursor
instead of a seek per CF per key, and default-CF values are read by a third cursor that only
moves forward (TiKV's near_seek).

Why not a seek per key: a seek lands on the next *live* key, skipping every deleted one after
the target. After a transactional load the lock CF holds one tombstone per key written (each
commit deletes its locks), so per-key lock seeks made a region's scan quadratic.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from br_common.txn_codec import TS_MAX, U64_SIZE, Write, append_ts, decode_bytes, encode_bytes, ts_of
from br_devcluster.store.txn_reader import CF_DEFAULT, CF_LOCK, CF_WRITE, CFReader, TxnDataError, first_visible



class KeyVersions(NamedTuple):
    """One user key of the range: its lock record and its write records (newest first)."""

    raw_key: bytes
    encoded: bytes  # enc(raw_key): the lock CF key, and the prefix of its write/default keys
    lock: bytes | None  # the lock CF value as stored
    writes: list[tuple[int, bytes]]  # (commit_ts, write CF value) with commit_ts <= max_ts


def encoded_range(low: bytes, high: bytes | None) -> tuple[bytes, bytes | None]:
    """A raw-key range as the lock CF keys and the write/default key prefixes bound it."""
    return encode_bytes(low), encode_bytes(high) if high else None


def forward_keys(cfs: CFReader, low: bytes, high: bytes | None, max_ts: int = TS_MAX) -> Iterator[KeyVersions]:
    """Every raw key in [low, high) with a lock or a write record, in key order (the two cursors
    kept in locals: this loop runs once per key of every scan, backup and checksum)."""
    start, end = encoded_range(low, high)
    locks = iter(cfs.iterate(CF_LOCK, start, end))
    writes = iter(cfs.iterate(CF_WRITE, start, end))
    lock, write = next(locks, None), next(writes, None)
    while lock is not None or write is not None:
        write_prefix = write[0][:-U64_SIZE] if write is not None else None
        if lock is not None and (write_prefix is None or lock[0] <= write_prefix):
            encoded, lock_value = lock
            lock = next(locks, None)
        else:
            encoded, lock_value = write_prefix, None
        found = []  # the key's write records (memcomparable keys are prefix-free: the prefix decides)
        size = len(encoded) + U64_SIZE
        while write is not None:
            key = write[0]
            if len(key) != size or not key.startswith(encoded):
                break
            commit_ts = ts_of(key)
            if commit_ts <= max_ts:
                found.append((commit_ts, write[1]))
            write = next(writes, None)
        yield KeyVersions(decode_bytes(encoded)[0], encoded, lock_value, found)


def visible_put(writes: list[tuple[int, bytes]], ts: int) -> tuple[int, Write] | None:
    """TxnReader.visible_write over a key's records (newest first, all <= ts), parsed as needed."""
    return first_visible(((commit_ts, Write.parse(data)) for commit_ts, data in writes), ts)


class ValueCursor:
    """Default-CF values asked for in ascending key order, read by one forward cursor over
    [low, high); a value asked for behind the cursor falls back to a point read. The stream and
    its current pair are two plain slots: every long value of a scan or a checksum goes through."""

    __slots__ = ("_cfs", "_pairs", "_item")

    def __init__(self, cfs: CFReader, low: bytes, high: bytes | None) -> None:
        self._cfs = cfs
        self._pairs = iter(cfs.iterate(CF_DEFAULT, *encoded_range(low, high)))
        self._item: tuple[bytes, bytes] | None = next(self._pairs, None)

    def value_of(self, key: KeyVersions, write: Write) -> bytes:
        """A Put's value: inline, or the default CF's at enc(key) ‖ ~start_ts."""
        if write.short_value is not None:
            return write.short_value
        return self.value_at(key.encoded, write.start_ts)

    def value_at(self, encoded: bytes, start_ts: int) -> bytes:
        """The default CF's value at enc(key) ‖ ~start_ts; TxnDataError when it is missing."""
        target = append_ts(encoded, start_ts)
        item = self._item
        if item is not None and item[0] > target:
            found = self._cfs.get(CF_DEFAULT, target)
        else:
            pairs = self._pairs
            while item is not None and item[0] < target:
                item = next(pairs, None)
            self._item = item
            found = item[1] if item is not None and item[0] == target else None
        if found is None:
            raise TxnDataError(f"default CF value of {decode_bytes(encoded)[0]!r} at start_ts {start_ts} is missing")
        return found
