"""Reading TiKV's transactional layout (lock, write and default CFs) through a small CF interface,
and the batch of changes a transactional command produces.

Keys here are TiKV's MVCC keys *without* the 'z' data prefix (as TiKV's MVCC layer sees them):
    lock CF     enc(key)                 -> Lock record
    write CF    enc(key) ‖ ~commit_ts    -> Write record
    default CF  enc(key) ‖ ~start_ts     -> value longer than 255 bytes
The engine adapter adds and strips the prefix. Semantics follow tikv src/storage/mvcc/reader
(seek_write, get_txn_commit_record, load_data) and txn_types lock.rs check_ts_conflict.
"""
from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from br_common.kvproto import kvrpcpb_pb2
from br_common.txn_codec import (
    TS_MAX, U64_SIZE, Lock, LockType, Write, WriteType, append_ts, decode_bytes, encode_bytes, ts_of,
)

CF_DEFAULT = "default"
CF_LOCK = "lock"
CF_WRITE = "write"

_PAST_TS = b"\xff" * (U64_SIZE + 1)  # enc(key) + this: above every version of the key
_LOCK_OPS = {LockType.PUT: kvrpcpb_pb2.Put, LockType.DELETE: kvrpcpb_pb2.Del,
             LockType.LOCK: kvrpcpb_pb2.Lock, LockType.PESSIMISTIC: kvrpcpb_pb2.PessimisticLock}


class CFReader(Protocol):
    """Point reads and ordered range reads per column family, over MVCC keys (no 'z')."""

    def get(self, cf: str, key: bytes) -> bytes | None: ...

    def iterate(self, cf: str, lower: bytes, upper: bytes | None,
                reverse: bool = False) -> Iterable[tuple[bytes, bytes]]:
        """Pairs with lower <= key < upper (upper None: to the end), descending if reverse."""
        ...


class Modify(NamedTuple):
    """One change of a command's batch; value None deletes the key."""

    cf: str
    key: bytes
    value: bytes | None


class DeleteRange(NamedTuple):
    """Delete every key of cf in [start, end) (end None: to the end)."""

    cf: str
    start: bytes
    end: bytes | None


class TxnDataError(RuntimeError):
    """The CFs contradict themselves (a Put whose long value is missing from the default CF)."""


@dataclass(frozen=True)
class CommitRecord:
    """What the write CF says about one transaction on one key (TiKV's TxnCommitRecord).

    kind "single": the txn's own record (commit or rollback) at commit_ts;
    "overlapped_rollback": another txn committed at our start_ts and carries our rollback flag;
    "none": nothing, overlapped_write being another txn's record at commit_ts == our start_ts."""

    kind: str
    commit_ts: int = 0
    write: Write | None = None
    overlapped_write: Write | None = None
    gc_fence: int = 0

    def is_rolled_back(self) -> bool:
        return self.kind == "overlapped_rollback" or (
            self.kind == "single" and self.write is not None and self.write.write_type == WriteType.ROLLBACK)

    def is_committed(self) -> bool:
        return self.kind == "single" and not self.is_rolled_back()


# A command encodes each of its keys several times (region check, lock, write and default keys,
# the newest-version seek): recent encodings are kept (a command's keys fit many times over).
encoded_key = functools.lru_cache(maxsize=8192)(encode_bytes)


def lock_key(raw_key: bytes) -> bytes:
    return encoded_key(raw_key)


def write_key(raw_key: bytes, commit_ts: int) -> bytes:
    return append_ts(encoded_key(raw_key), commit_ts)


def default_key(raw_key: bytes, start_ts: int) -> bytes:
    return append_ts(encoded_key(raw_key), start_ts)


def lock_info(lock: Lock, raw_key: bytes) -> kvrpcpb_pb2.LockInfo:
    """Lock::into_lock_info."""
    return kvrpcpb_pb2.LockInfo(
        primary_lock=lock.primary, lock_version=lock.ts, key=raw_key, lock_ttl=lock.ttl,
        txn_size=lock.txn_size, lock_type=_LOCK_OPS[lock.lock_type], lock_for_update_ts=lock.for_update_ts,
        use_async_commit=lock.use_async_commit, min_commit_ts=lock.min_commit_ts,
        secondaries=list(lock.secondaries))


def locked_error(lock: Lock, raw_key: bytes) -> kvrpcpb_pb2.KeyError:
    return kvrpcpb_pb2.KeyError(locked=lock_info(lock, raw_key))


def abort_error(message: str) -> kvrpcpb_pb2.KeyError:
    return kvrpcpb_pb2.KeyError(abort=message)


def first_visible(writes: Iterable[tuple[int, Write]], ts: int) -> tuple[int, Write] | None:
    """Of a key's write records (newest first, all <= ts), the Put a read at ts sees: None when
    the newest Put/Delete is a Delete or fails its gc_fence check; Lock and Rollback are skipped."""
    for commit_ts, write in writes:
        if not write.check_gc_fence_as_latest_version(ts):
            return None
        if write.write_type == WriteType.PUT:
            return commit_ts, write
        if write.write_type == WriteType.DELETE:
            return None
    return None


def lock_blocks_read(lock: Lock, raw_key: bytes, ts: int, bypass_locks: Iterable[int] = ()) -> bool:
    """Lock::check_ts_conflict_si: whether a read at ts must report this lock."""
    if lock.ts > ts or lock.lock_type in (LockType.LOCK, LockType.PESSIMISTIC):
        return False
    if lock.min_commit_ts > ts or lock.ts in set(bypass_locks):
        return False
    # a read at the max ts (latest committed) ignores the primary lock of a 2PC txn
    return not (ts == TS_MAX and raw_key == lock.primary and not lock.use_async_commit)


class TxnReader:
    """Typed reads over a CFReader; one reader per command, over one consistent view."""

    def __init__(self, cfs: CFReader) -> None:
        self.cfs = cfs
        self._locks: dict[bytes, Lock] = {}  # parsed by their bytes: a txn's locks mostly repeat them

    def load_lock(self, raw_key: bytes) -> Lock | None:
        data = self.cfs.get(CF_LOCK, lock_key(raw_key))
        if data is None:
            return None
        lock = self._locks.get(data)
        if lock is None:
            lock = self._locks[data] = Lock.parse(data)
        return lock

    def writes(self, raw_key: bytes, max_ts: int = TS_MAX) -> Iterator[tuple[int, Write]]:
        """(commit_ts, Write) of raw_key with commit_ts <= max_ts, newest first."""
        for commit_ts, data in self.write_records(raw_key, max_ts):
            yield commit_ts, Write.parse(data)

    def write_records(self, raw_key: bytes, max_ts: int = TS_MAX) -> Iterator[tuple[int, bytes]]:
        """(commit_ts, the write CF value as stored) newest first: a backup copies the bytes as they are."""
        prefix = encoded_key(raw_key)
        for key, value in self.cfs.iterate(CF_WRITE, append_ts(prefix, max_ts), prefix + _PAST_TS):
            if len(key) == len(prefix) + U64_SIZE:
                yield ts_of(key), value

    def seek_write(self, raw_key: bytes, ts: int = TS_MAX) -> tuple[int, Write] | None:
        """The newest record with commit_ts <= ts, of any type (one seek: every prewrite asks)."""
        prefix = encoded_key(raw_key)
        size = len(prefix) + U64_SIZE
        for key, value in self.cfs.iterate(CF_WRITE, append_ts(prefix, ts), prefix + _PAST_TS):
            if len(key) == size:
                return ts_of(key), Write.parse(value)
        return None

    def txn_commit_record(self, raw_key: bytes, start_ts: int) -> CommitRecord:
        """MvccReader::get_txn_commit_record: scan from the newest version down to start_ts."""
        gc_fence = 0
        for commit_ts, write in self.writes(raw_key):
            if write.start_ts == start_ts:
                return CommitRecord("single", commit_ts, write)
            if commit_ts == start_ts:
                if write.has_overlapped_rollback:
                    return CommitRecord("overlapped_rollback", commit_ts)
                return CommitRecord("none", overlapped_write=write, gc_fence=gc_fence)
            if write.write_type in (WriteType.PUT, WriteType.DELETE):
                gc_fence = commit_ts
            if commit_ts < start_ts:
                break
        return CommitRecord("none")

    def visible_write(self, raw_key: bytes, ts: int) -> tuple[int, Write] | None:
        """The Put a read at ts sees (None: no value or deleted), skipping Lock and Rollback."""
        return first_visible(self.writes(raw_key, ts), ts)

    def value_of(self, raw_key: bytes, write: Write) -> bytes:
        """A Put's value: inline, or from the default CF at the txn's start_ts."""
        if write.short_value is not None:
            return write.short_value
        value = self.cfs.get(CF_DEFAULT, default_key(raw_key, write.start_ts))
        if value is None:
            raise TxnDataError(f"default CF value of {raw_key!r} at start_ts {write.start_ts} is missing")
        return value

    def user_keys(self, lower: bytes, upper: bytes | None, reverse: bool = False,
                  cfs: tuple[str, ...] = (CF_LOCK, CF_WRITE)) -> Iterator[bytes]:
        """Every raw key in [lower, upper) with a lock or a write record (per cfs), once, in order."""
        start, end = encode_bytes(lower), encode_bytes(upper) if upper else None
        streams = [self._encoded_keys(cf, start, end, reverse) for cf in cfs]
        previous = None
        for encoded in heapq.merge(*streams, reverse=reverse):
            if encoded != previous:
                previous = encoded
                yield decode_bytes(encoded)[0]

    def _encoded_keys(self, cf: str, start: bytes, end: bytes | None, reverse: bool) -> Iterator[bytes]:
        """The enc(key) part of each engine key of cf (write/default keys carry a ts)."""
        cut = 0 if cf == CF_LOCK else U64_SIZE
        for key, _ in self.cfs.iterate(cf, start, end, reverse):
            yield key[:len(key) - cut]

    def locks(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, Lock]]:
        """(raw key, Lock) for raw keys in [lower, upper), in key order (upper b"" or None: unbounded)."""
        end = encode_bytes(upper) if upper else None
        for key, value in self.cfs.iterate(CF_LOCK, encode_bytes(lower), end):
            yield decode_bytes(key)[0], Lock.parse(value)
