"""backup.Backup/backup: each region this store leads -> SST files on the local backend.

One response per region overlapping the request, in key order: its files, or a region error
(NotLeader with the leader) for regions led elsewhere, with the sub-range as start/end key.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from br_common.kvproto import brpb_pb2, brpb_pb2_grpc, errorpb_pb2
from br_common.pd_client import PDError, RegionInfo
from br_common.redaction import show_key
from br_devcluster.store.backup_files import CF, RegionBackup, write_region_files
from br_devcluster.store.engine import Snapshot
from br_devcluster.store.errors import RegionError, StoreError, pd_unavailable
from br_devcluster.store.ratelimit import RateLimiter
from br_devcluster.store.regions import epoch_not_match, region_not_found
from br_devcluster.store.sstfiles import sst_options
from br_devcluster.store.state import StoreState

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
            regions = list(self._state.pd.scan_regions(request.start_key, request.end_key))
        except StoreError as exc:
            yield brpb_pb2.BackupResponse(start_key=whole[0], end_key=whole[1], error=brpb_pb2.Error(msg=str(exc)))
            return
        except PDError as exc:
            yield _failed(*whole, pd_unavailable(exc).error)
            return
        limiter = RateLimiter(request.rate_limit)  # per request: bounds this request's SST bytes
        for info in regions:
            yield self._backup_region(request, root, info, limiter)

    def _backup_region(self, request: brpb_pb2.BackupRequest, root: Path, info: RegionInfo,
                       limiter: RateLimiter) -> brpb_pb2.BackupResponse:
        region = info.region
        start = max(request.start_key, region.start_key)
        end = _min_end(request.end_key, region.end_key)
        try:
            snapshot = self._leader_snapshot(info)
            target = RegionBackup(root=root, store_id=self._state.store_id, region_id=region.id,
                                  epoch_version=region.region_epoch.version, start_key=start, end_key=end,
                                  start_version=request.start_version, end_version=request.end_version)
            options = sst_options(request.compression_type, request.compression_level)
            files = write_region_files(target, snapshot.scan(start, end, request.end_version), options, limiter)
        except RegionError as exc:
            return _failed(start, end, exc.error)
        except PDError as exc:
            return _failed(start, end, pd_unavailable(exc).error)
        except Exception as exc:  # noqa: BLE001 - disk full, bad path, corrupt data: tell the client
            log.warning("backup of region %d failed: %s", region.id, exc)
            return brpb_pb2.BackupResponse(start_key=start, end_key=end, error=brpb_pb2.Error(msg=str(exc)))
        log.info("backed up region %d [%r, %r): %d files", region.id, start, end, len(files))
        return brpb_pb2.BackupResponse(start_key=start, end_key=end, files=files)

    def _leader_snapshot(self, scanned: RegionInfo) -> Snapshot:
        """Under the write lock: still the leader of the region as scanned, then the snapshot."""
        state = self._state
        with state.write_lock:
            info = state.pd.region_by_id(scanned.id)
            if info is None:
                raise region_not_found(scanned.id)
            state.checker.require_leader(info)
            if info.region.region_epoch != scanned.region.region_epoch:
                raise epoch_not_match(scanned.region.region_epoch, info.region)
            return state.engine.snapshot()


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
    if request.cf not in ("", CF):
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
