"""Snapshot-isolation reads of TiKV's transactional layout: KvGet, KvBatchGet, KvScan (both
directions) and KvScanLock, as pure functions over a TxnReader (no region checks here: the
service passes the region's raw-key bounds, which scans are clamped to).

A read at ts sees the newest Put/Delete committed at or before ts; a lock of another txn that
might commit at or before ts is reported as KeyError.locked (TiKV's PointGetter/ForwardScanner
with check_ts_conflict_si); Context.resolved_locks lists txns the reader may ignore and
Context.committed_locks those it may read through (isolation level RC checks no locks).
"""
from __future__ import annotations

from collections.abc import Iterator

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.txn_codec import Lock, LockType, Write, WriteType
from br_devcluster.store.mvcc_scan import KeyVersions, ValueCursor, forward_keys, visible_put
from br_devcluster.store.txn_reader import TxnReader, lock_blocks_read, lock_info, locked_error


def read_key(reader: TxnReader, raw_key: bytes, ts: int,
             context: pb.Context) -> tuple[pb.KeyError | None, bytes | None, int]:
    """(error, value or None when absent, commit ts of the value) of one key at ts.
    A blocking lock of a txn in Context.committed_locks is read as committed (TiKV's access
    locks: the reader knows it committed at or before ts, commit ts unknown: 0)."""
    lock = None if context.isolation_level == pb.RC else reader.load_lock(raw_key)
    if lock is not None and lock_blocks_read(lock, raw_key, ts, context.resolved_locks):
        if lock.ts not in context.committed_locks:
            return locked_error(lock, raw_key), None, 0
        return None, _value_of_lock(reader, raw_key, lock), 0
    found = reader.visible_write(raw_key, ts)
    if found is None:
        return None, None, 0
    return None, reader.value_of(raw_key, found[1]), found[0]


def _value_of_lock(reader: TxnReader, raw_key: bytes, lock: Lock) -> bytes | None:
    """The value a Put/Delete lock will commit (only those block reads)."""
    if lock.lock_type != LockType.PUT:
        return None
    return reader.value_of(raw_key, Write(WriteType.PUT, lock.ts, lock.short_value))


def kv_get(reader: TxnReader, req: pb.GetRequest) -> pb.GetResponse:
    error, value, commit_ts = read_key(reader, req.key, req.version, req.context)
    if error is not None:
        return pb.GetResponse(error=error)
    if value is None:
        return pb.GetResponse(not_found=True)
    return pb.GetResponse(value=value, commit_ts=commit_ts if req.need_commit_ts else 0)


def kv_batch_get(reader: TxnReader, req: pb.BatchGetRequest) -> pb.BatchGetResponse:
    """Found keys as pairs, a locked key as a pair carrying only its error, absent keys left out."""
    response = pb.BatchGetResponse()
    for raw_key in req.keys:
        error, value, commit_ts = read_key(reader, raw_key, req.version, req.context)
        if error is not None:
            response.pairs.add(error=error)
        elif value is not None:
            response.pairs.add(key=raw_key, value=value, commit_ts=commit_ts if req.need_commit_ts else 0)
    return response


def scan_bounds(req: pb.ScanRequest, lower: bytes, upper: bytes | None) -> tuple[bytes, bytes | None]:
    """The raw range [low, high) a scan covers, clamped to the region's [lower, upper).
    Forward scans cover [start_key, end_key); reverse ones [end_key, start_key)."""
    low, high = (req.end_key, req.start_key) if req.reverse else (req.start_key, req.end_key)
    low = max(low, lower)
    if not high or (upper and upper < high):
        high = upper or b""
    return low, high or None


def scan_entries(reader: TxnReader, low: bytes, high: bytes | None, ts: int, context: pb.Context,
                 reverse: bool = False) -> Iterator[tuple[bytes, pb.KeyError | None, bytes | None]]:
    """(raw key, error, value) of every key in [low, high) with a lock or a visible value at ts;
    forward scans read the range in one pass (mvcc_scan), as TiKV's ForwardScanner."""
    if high is not None and high <= low:
        return
    if reverse:
        for raw_key in reader.user_keys(low, high, reverse):
            error, value, _ = read_key(reader, raw_key, ts, context)
            if error is not None or value is not None:
                yield raw_key, error, value
        return
    values = ValueCursor(reader.cfs, low, high)
    for key in forward_keys(reader.cfs, low, high, ts):
        error, value = _read_scanned(key, values, ts, context)
        if error is not None or value is not None:
            yield key.raw_key, error, value


def _read_scanned(key: KeyVersions, values: ValueCursor, ts: int,
                  context: pb.Context) -> tuple[pb.KeyError | None, bytes | None]:
    """read_key over a key of the forward pass."""
    lock = None if key.lock is None or context.isolation_level == pb.RC else Lock.parse(key.lock)
    if lock is not None and lock_blocks_read(lock, key.raw_key, ts, context.resolved_locks):
        if lock.ts not in context.committed_locks:
            return locked_error(lock, key.raw_key), None
        if lock.lock_type != LockType.PUT:
            return None, None
        return None, values.value_of(key, Write(WriteType.PUT, lock.ts, lock.short_value))
    found = visible_put(key.writes, ts)
    return None, values.value_of(key, found[1]) if found is not None else None


def kv_scan(reader: TxnReader, req: pb.ScanRequest, lower: bytes = b"",
            upper: bytes | None = None) -> pb.ScanResponse:
    """Up to limit entries (limit 0: none, as TiKV), in key order or reverse; a locked key counts,
    as a pair carrying only its error (TiKV's extract_kv_pairs sets no key on it)."""
    low, high = scan_bounds(req, lower, upper)
    response = pb.ScanResponse()
    if req.limit == 0:
        return response
    for raw_key, error, value in scan_entries(reader, low, high, req.version, req.context, req.reverse):
        if len(response.pairs) >= req.limit:
            break
        if error is not None:
            response.pairs.add(error=error)
        else:
            response.pairs.add(key=raw_key, value=b"" if req.key_only else value)
    return response


def kv_scan_lock(reader: TxnReader, req: pb.ScanLockRequest, lower: bytes = b"",
                 upper: bytes | None = None) -> pb.ScanLockResponse:
    """Locks with start ts <= max_version in [start_key, end_key) of the region, up to limit."""
    low = max(req.start_key, lower)
    high = req.end_key if req.end_key and (not upper or req.end_key < upper) else upper
    response = pb.ScanLockResponse()
    for raw_key, lock in reader.locks(low, high):
        if req.limit and len(response.locks) >= req.limit:
            break
        if lock.ts <= req.max_version:
            response.locks.append(lock_info(lock, raw_key))
    return response
