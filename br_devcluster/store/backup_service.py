"""backup.Backup/backup: each region this store leads -> SST files on the local backend.

One response per region overlapping the request, in key order: its files, or a region error
(NotLeader with the leader) for regions led elsewhere, with the sub-range as start/end key.
is_raw_kv picks what is read, as in TiKV: raw KV (API V1, default CF, keys as given) or the
transactional key space (start/end_key are raw user keys, regions are compared at their
encoding; txn_backup_scan reads each key's newest version at end_version, and a blocking lock
answers Error.kv_error.locked for the client to resolve).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from rocksdict import Options

from br_common.kvproto import brpb_pb2, brpb_pb2_grpc, errorpb_pb2, kvrpcpb_pb2, metapb_pb2
from br_common.pd_client import PDError, RegionInfo
from br_common.redaction import show_key
from br_common.txn_keys import engine_bound, raw_bounds
from br_devcluster.store.backup_files import CF, RegionBackup, write_raw_region_files, write_region_files
from br_devcluster.store.cf_engine import CFSnapshot
from br_devcluster.store.errors import RegionError, StoreError, pd_unavailable
from br_devcluster.store.ratelimit import RateLimiter
from br_devcluster.store.regions import epoch_not_match, region_not_found
from br_devcluster.store.sstfiles import sst_options
from br_devcluster.store.state import StoreState
from br_devcluster.store.txn_backup_scan import BackupLocked, backup_entries
from br_devcluster.store.txn_reader import TxnReader

log = logging.getLogger(__name__)


class BackupService(brpb_pb2_grpc.BackupServicer):
    def __init__(self, state: StoreState) -> None:
        self._state = state

    def backup(self, request, context) -> Iterator[brpb_pb2.BackupResponse]:  # noqa: ANN001
        whole = (request.start_key, request.end_key)
        if request.cluster_id != self._state.cluster_id:
            mismatch = brpb_pb2.ClusterIDError(current=self._state.cluster_id, request=request.cluster_id)
            yield brpb_pb2.BackupResponse(start_key=whole[0], end_key=whole[1], error=brpb_pb2.Error(
                msg=f"cluster id mismatch: store is in {mismatch.current}, request is for {mismatch.request}",
                cluster_id_error=mismatch))
            return
        try:
            root = _validate(request)
            regions = list(self._state.pd.scan_regions(*_engine_range(request)))
        except StoreError as exc:
            yield brpb_pb2.BackupResponse(start_key=whole[0], end_key=whole[1], error=brpb_pb2.Error(msg=str(exc)))
            return
        except PDError as exc:
            yield _failed(*whole, pd_unavailable(exc).error)
            return
        limiter = RateLimiter(request.rate_limit)  # per request: bounds this request's SST bytes
        for info in regions:
            start, end = _overlap(request, info.region)
            if end and end <= start:
                continue  # a region holding no txn key of the range (its bounds fall between two keys)
            yield self._backup_region(request, root, info, (start, end), limiter)

    def _backup_region(self, request: brpb_pb2.BackupRequest, root: Path, info: RegionInfo,
                       piece: tuple[bytes, bytes], limiter: RateLimiter) -> brpb_pb2.BackupResponse:
        region = info.region
        start, end = piece
        try:
            view = self._leader_view(info, 0 if request.is_raw_kv else request.end_version)
            target = RegionBackup(root=root, store_id=self._state.store_id, region_id=region.id,
                                  epoch_version=region.region_epoch.version, start_key=start, end_key=end,
                                  start_version=request.start_version, end_version=request.end_version)
            options = sst_options(request.compression_type, request.compression_level)
            files = _write_files(request, view, target, options, limiter)
        except BackupLocked as exc:
            return brpb_pb2.BackupResponse(start_key=start, end_key=end, error=brpb_pb2.Error(
                msg=str(exc), kv_error=kvrpcpb_pb2.KeyError(locked=exc.lock)))
        except RegionError as exc:
            return _failed(start, end, exc.error)
        except PDError as exc:
            return _failed(start, end, pd_unavailable(exc).error)
        except Exception as exc:  # noqa: BLE001 - disk full, bad path, corrupt data: tell the client
            log.warning("backup of region %d failed: %s", region.id, exc)
            return brpb_pb2.BackupResponse(start_key=start, end_key=end, error=brpb_pb2.Error(msg=str(exc)))
        log.info("backed up region %d [%r, %r): %d files", region.id, start, end, len(files))
        return brpb_pb2.BackupResponse(start_key=start, end_key=end, files=files)

    def _leader_view(self, scanned: RegionInfo, read_ts: int) -> CFSnapshot:
        """Under the write lock: still the leader of the region as scanned, then a view of every CF.
        A txn backup raises the max ts to backup_ts first (TiKV's endpoint calls update_max_ts
        before its scan), so an async-commit prewrite after it commits above backup_ts."""
        state = self._state
        with state.write_lock:
            info = state.pd.region_by_id(scanned.id)
            if info is None:
                raise region_not_found(scanned.id)
            state.checker.require_leader(info)
            if info.region.region_epoch != scanned.region.region_epoch:
                raise epoch_not_match(scanned.region.region_epoch, info.region)
            state.concurrency.update_max_ts(read_ts)
            return state.engine.snapshot_cfs()


def _engine_range(request: brpb_pb2.BackupRequest) -> tuple[bytes, bytes]:
    """The request's range as PD's region bounds are compared (a txn key at its encoding)."""
    if request.is_raw_kv:
        return request.start_key, request.end_key
    return engine_bound(request.start_key), engine_bound(request.end_key)


def _overlap(request: brpb_pb2.BackupRequest, region: metapb_pb2.Region) -> tuple[bytes, bytes]:
    """The request's range within the region, in the request's key space (b"" end: unbounded)."""
    if request.is_raw_kv:
        lower, upper = region.start_key, region.end_key
    else:
        lower, upper = raw_bounds(region)
    return max(request.start_key, lower), _min_end(request.end_key, upper or b"")


def _write_files(request: brpb_pb2.BackupRequest, view: CFSnapshot, target: RegionBackup, options: Options,
                 limiter: RateLimiter) -> list[brpb_pb2.File]:
    start, end = target.start_key, target.end_key
    if request.is_raw_kv:
        return write_raw_region_files(target, view.iterate(CF, start, end or None, data_keys=True), options, limiter)
    entries = backup_entries(TxnReader(view), start, end or None, request.start_version, request.end_version,
                             request.context.resolved_locks)
    return write_region_files(target, entries, options, limiter)


def _validate(request: brpb_pb2.BackupRequest) -> Path:
    if request.storage_backend.WhichOneof("backend") != "local":
        raise StoreError("only the local storage backend is supported by the devcluster store")
    if not request.storage_backend.local.path:
        raise StoreError("storage_backend.local.path must not be empty")
    if request.end_key and request.end_key <= request.start_key:
        raise StoreError(f"empty or inverted range [{show_key(request.start_key)}, {show_key(request.end_key)}) (hex)")
    if request.end_version == 0 or request.start_version > request.end_version:
        raise StoreError(f"bad versions: start {request.start_version}, end {request.end_version}")
    if request.cipher_info.cipher_key:
        raise StoreError("encrypted backup is not supported by the devcluster store")
    if request.is_raw_kv and request.cf not in ("", CF):
        raise StoreError(f"unsupported column family {request.cf!r} (raw KV uses {CF!r})")
    if request.sub_ranges:
        raise StoreError("sub_ranges are not supported by the devcluster store")
    return Path(request.storage_backend.local.path)


def _failed(start: bytes, end: bytes, error: errorpb_pb2.Error) -> brpb_pb2.BackupResponse:
    return brpb_pb2.BackupResponse(start_key=start, end_key=end,
                                   error=brpb_pb2.Error(msg=error.message, region_error=error))


def _min_end(a: bytes, b: bytes) -> bytes:
    """The smaller of two exclusive ends where b"" is unbounded."""
    if not a:
        return b
    if not b:
        return a
    return min(a, b)
