"""What TiKV's backup endpoint reads for a transactional (is_raw_kv=false) backup: per user key
the newest version visible at backup_ts (ForwardScanner with LatestEntryPolicy, see
../shared/reference/tikv-txn.md A2), as entries ready for the backup files.

    - the newest Write with commit_ts <= backup_ts, skipping Lock and Rollback records;
    - nothing when that commit_ts <= after_ts (an incremental backup's start_version);
    - Put: the write record, plus the default-CF value when the value is not short;
    - Delete: the write record only, and only for incremental backups (after_ts > 0);
    - a lock that blocks a read at backup_ts aborts the region with its LockInfo, so a backup
      never holds half of a transaction (the client resolves the lock and retries).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.txn_codec import Lock, Write, WriteType, append_ts, decode_bytes, encode_bytes
from br_devcluster.store.checksum_scan import has_locks, visible_writes
from br_devcluster.store.mvcc_scan import KeyVersions, ValueCursor, forward_keys
from br_devcluster.store.txn_reader import (
    CF_DEFAULT, CF_WRITE, CFReader, TxnReader, lock_blocks_read, lock_info,
)

_PUT = int(WriteType.PUT)


class BackupLocked(Exception):
    """A lock blocks the read at backup_ts: TiKV answers Error.kv_error.locked."""

    def __init__(self, lock: pb.LockInfo) -> None:
        super().__init__(f"key {lock.key.hex()} is locked by txn {lock.lock_version}")
        self.lock = lock


class TxnEntry(NamedTuple):
    """One logical key of the backup: its CF records and what its checksum counts (a NamedTuple:
    a backup builds one per key, and a frozen dataclass costs a setattr per field)."""

    raw_key: bytes
    commit_ts: int
    write: bytes  # the write CF value, byte for byte as stored
    start_ts: int
    value: bytes  # the user value (b"" for a Delete)
    long_value: bool  # the value lives in the default CF (> 255 bytes)
    encoded: bytes = b""  # enc(raw_key) when the scan has it (saves encoding it again)

    def records(self) -> list[tuple[str, bytes, bytes]]:
        """(cf, MVCC key without 'z', value): default first, as TiKV lists the files."""
        encoded = self.encoded or encode_bytes(self.raw_key)
        write = (CF_WRITE, append_ts(encoded, self.commit_ts), self.write)
        return [(CF_DEFAULT, append_ts(encoded, self.start_ts), self.value), write] if self.long_value else [write]

    @property
    def counted_in(self) -> str:
        """The file whose crc64xor/total_kvs/total_bytes count this key (TiKV: default if there)."""
        return CF_DEFAULT if self.long_value else CF_WRITE


def backup_entries(reader: TxnReader, low: bytes, high: bytes | None, after_ts: int, backup_ts: int,
                   bypass_locks: Iterable[int] = ()) -> Iterator[TxnEntry]:
    """Entries of the raw keys in [low, high) in key order, in one forward pass; raises
    BackupLocked. A range without locks (nearly every region of a backup) takes the lock-free
    loop over the write CF (a model test holds the two equal)."""
    if not has_locks(reader.cfs, low, high):
        return lock_free_entries(reader.cfs, low, high, after_ts, backup_ts)
    return scanned_entries(reader, low, high, after_ts, backup_ts, bypass_locks)


def scanned_entries(reader: TxnReader, low: bytes, high: bytes | None, after_ts: int, backup_ts: int,
                    bypass_locks: Iterable[int] = ()) -> Iterator[TxnEntry]:
    """The general pass (mvcc_scan's lock and write cursors together): checks every lock."""
    bypass = set(bypass_locks)
    values = ValueCursor(reader.cfs, low, high)
    for key in forward_keys(reader.cfs, low, high, backup_ts):
        if key.lock is not None:
            lock = Lock.parse(key.lock)
            if lock_blocks_read(lock, key.raw_key, backup_ts, bypass):
                raise BackupLocked(lock_info(lock, key.raw_key))
        entry = latest_entry(key, after_ts, backup_ts, values)
        if entry is not None:
            yield entry


def latest_entry(key: KeyVersions, after_ts: int, backup_ts: int, values: ValueCursor) -> TxnEntry | None:
    """LatestEntryPolicy::handle_write for one key (its records at or below backup_ts)."""
    for commit_ts, data in key.writes:
        if commit_ts <= after_ts:
            return None
        write = Write.parse(data)
        if not write.check_gc_fence_as_latest_version(backup_ts):
            return None
        if write.write_type == WriteType.PUT:
            return TxnEntry(key.raw_key, commit_ts, data, write.start_ts, values.value_of(key, write),
                            write.short_value is None, key.encoded)
        if write.write_type == WriteType.DELETE:
            return TxnEntry(key.raw_key, commit_ts, data, write.start_ts, b"", False, key.encoded) if after_ts else None
    return None


def lock_free_entries(cfs: CFReader, low: bytes, high: bytes | None, after_ts: int,
                      backup_ts: int) -> Iterator[TxnEntry]:
    """latest_entry for every key of a range holding no lock, from one loop over the write CF
    (checksum_scan.visible_writes: no KeyVersions and no Write for the common records). A key's
    visible Put is its entry, a Delete one only for an incremental backup, and nothing when that
    record is at or below after_ts (every older record is too, so the key has not changed since)."""
    values = ValueCursor(cfs, low, high)
    for encoded, commit_ts, record, kind, start_ts, short_value in visible_writes(cfs, low, high, backup_ts):
        if commit_ts <= after_ts:
            continue
        if kind == _PUT:
            value = short_value if short_value is not None else values.value_at(encoded, start_ts)
            yield TxnEntry(decode_bytes(encoded)[0], commit_ts, record, start_ts, value, short_value is None, encoded)
        elif after_ts:  # a Delete
            yield TxnEntry(decode_bytes(encoded)[0], commit_ts, record, start_ts, b"", False, encoded)
