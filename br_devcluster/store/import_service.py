"""import_sstpb.ImportSST: Download (read, cut, rewrite, stage) and Ingest into the SST's CF.

The file holds data keys (b"z" + key), as TiKV's backup files do. sst.range is in the rewritten
key space (TiKV undoes the rewrite to cut the file): Download keeps the keys inside it (end
inclusive unless end_key_exclusive) and stages nothing when none is (is_empty), as TiKV does.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

from rocksdict import Options

from br_common.data_keys import DATA_PREFIX, origin_key
from br_common.sst_files import sst_summary
from br_common.kvproto import import_sstpb_pb2, import_sstpb_pb2_grpc, kvrpcpb_pb2
from br_common.redaction import show_key
from br_common.txn_codec import U64_SIZE, Write, append_ts
from br_devcluster.store.txn_reader import CF_WRITE
from br_devcluster.store.errors import InvalidArgument, StoreError, rpc
from br_devcluster.store.regions import key_in_region, key_not_in_region
from br_devcluster.store.sstfiles import SstBuilder, SstError, read_sst
from br_devcluster.store.staging import StagedSst, Staging
from br_devcluster.store.state import StoreState

log = logging.getLogger(__name__)

SUPPORTED_CFS = ("", "default", "write")  # write: transactional backups (TiKV's write CF files)


class ImportService(import_sstpb_pb2_grpc.ImportSSTServicer):
    def __init__(self, state: StoreState, staging: Staging) -> None:
        self._state = state
        self._staging = staging
        self._mode = import_sstpb_pb2.Normal
        self._mode_lock = threading.Lock()

    # --- mode and speed ----------------------------------------------------------------------
    @rpc(import_sstpb_pb2.SwitchModeResponse)
    def SwitchMode(self, request, context):  # noqa: ANN001, ANN201, N802
        if request.mode not in (import_sstpb_pb2.Normal, import_sstpb_pb2.Import):
            raise InvalidArgument(f"unknown mode {request.mode}")
        with self._mode_lock:
            self._mode = request.mode
        return import_sstpb_pb2.SwitchModeResponse()

    @rpc(import_sstpb_pb2.GetModeResponse)
    def GetMode(self, request, context):  # noqa: ANN001, ANN201, N802
        with self._mode_lock:
            return import_sstpb_pb2.GetModeResponse(mode=self._mode)

    @rpc(import_sstpb_pb2.SetDownloadSpeedLimitResponse)
    def SetDownloadSpeedLimit(self, request, context):  # noqa: ANN001, ANN201, N802
        self._state.download_limiter.set_rate(request.speed_limit)
        return import_sstpb_pb2.SetDownloadSpeedLimitResponse()

    # --- download ----------------------------------------------------------------------------
    @rpc(import_sstpb_pb2.DownloadResponse)
    def Download(self, request, context):  # noqa: ANN001, ANN201, N802
        sst = request.sst
        source = _source_path(request)
        if not sst.uuid:
            raise StoreError("sst.uuid must not be empty")
        if sst.cf_name not in SUPPORTED_CFS:
            raise StoreError(f"unsupported column family {sst.cf_name!r}")
        self._staging.remove(sst.uuid)  # a repeated download replaces the earlier one
        staged = self._stage(source, sst, request.rewrite_rule)
        self._staging.record(staged)
        meta = import_sstpb_pb2.SSTMeta()
        meta.CopyFrom(sst)
        meta.range.CopyFrom(import_sstpb_pb2.Range(start=staged.first_key, end=staged.last_key))
        meta.end_key_exclusive = False
        meta.length, meta.total_kvs, meta.total_bytes = staged.size, staged.total_kvs, staged.total_bytes
        log.info("downloaded %s as %s: %d pairs", source, sst.uuid.hex(), staged.total_kvs)
        return import_sstpb_pb2.DownloadResponse(range=meta.range, is_empty=staged.is_empty, length=staged.size,
                                                 ssts=[meta])

    def _stage(self, source: Path, sst: import_sstpb_pb2.SSTMeta, rule: import_sstpb_pb2.RewriteRule) -> StagedSst:
        """Raw KV (API V1): the rewritten data keys with the values as they are, for sst.cf_name.
        A file that needs no rewrite and lies inside the range is staged whole (TiKV's
        direct_retval: the file is moved, never iterated); else it is read and cut pair by pair."""
        epoch = sst.region_epoch
        staged = StagedSst(uuid=sst.uuid, region_id=sst.region_id, conf_ver=epoch.conf_ver, version=epoch.version,
                           cf=sst.cf_name or "default")
        try:
            if _identity(rule) and self._stage_whole(source, sst, rule, staged):
                return staged
            return self._stage_pairs(source, sst, rule, staged)
        except SstError as exc:
            raise StoreError(str(exc)) from None

    def _stage_whole(self, source: Path, sst: import_sstpb_pb2.SSTMeta, rule: import_sstpb_pb2.RewriteRule,
                     staged: StagedSst) -> bool:
        """Stage the file as it is (a hard link, else a copy) when its first and last keys lie in
        the range (and carry the rule's prefix: then every key between does); False (nothing
        staged) when it must be read pair by pair, which also reports a key without the prefix."""
        summary = sst_summary(source, self._staging.scratch)
        if summary is None:
            return True  # no pairs: is_empty, as TiKV answers an empty file
        first, last = _origin_key(summary.first_key, source), _origin_key(summary.last_key, source)
        prefix = rule.old_key_prefix
        if (summary.deletions or not first.startswith(prefix) or not last.startswith(prefix)
                or before_range(first, sst) or after_range(last, sst)):
            return False
        self._state.download_limiter.consume(summary.key_bytes + summary.value_bytes)
        staged.size = _place(source, self._staging.sst_path(staged))
        staged.first_key, staged.last_key = first, last
        staged.total_kvs = summary.entries
        staged.total_bytes = summary.key_bytes - len(DATA_PREFIX) * summary.entries + summary.value_bytes
        return True

    def _stage_pairs(self, source: Path, sst: import_sstpb_pb2.SSTMeta, rule: import_sstpb_pb2.RewriteRule,
                     staged: StagedSst) -> StagedSst:
        """Read the file, keep the rewritten keys inside the range, write them to a new SST
        (counters kept in locals: the pydantic model would check every per-pair assignment)."""
        builder: SstBuilder | None = None
        limiter = self._state.download_limiter
        first_key = last_key = b""
        total_kvs = total_bytes = 0
        try:
            with read_sst(source, self._staging.scratch) as pairs:
                for stored, value in pairs:
                    limiter.consume(len(stored) + len(value))
                    new_key = rewrite_key(_origin_key(stored, source), rule)
                    if rule.new_timestamp:
                        new_key, value = with_new_timestamp(new_key, value, rule.new_timestamp, sst.cf_name)
                    if before_range(new_key, sst):
                        continue
                    if after_range(new_key, sst):
                        break
                    if builder is None:
                        builder = SstBuilder(self._staging.sst_path(staged), Options(raw_mode=True))
                        first_key = new_key
                    builder.add(DATA_PREFIX + new_key, value)
                    last_key = new_key
                    total_kvs += 1
                    total_bytes += len(new_key) + len(value)
            if builder is not None:
                staged.size = builder.finish().size
                builder = None
        finally:
            if builder is not None:
                builder.abort()
        staged.first_key, staged.last_key = first_key, last_key
        staged.total_kvs, staged.total_bytes = total_kvs, total_bytes
        return staged

    # --- ingest ------------------------------------------------------------------------------
    @rpc(import_sstpb_pb2.IngestResponse)
    def Ingest(self, request, context):  # noqa: ANN001, ANN201, N802
        self._ingest(request.context, [request.sst])
        return import_sstpb_pb2.IngestResponse()

    @rpc(import_sstpb_pb2.IngestResponse)
    def MultiIngest(self, request, context):  # noqa: ANN001, ANN201, N802
        self._ingest(request.context, list(request.ssts))
        return import_sstpb_pb2.IngestResponse()

    def _ingest(self, ctx: kvrpcpb_pb2.Context, metas: list[import_sstpb_pb2.SSTMeta]) -> None:
        """Leader ingests, then every follower ingests its own downloaded copy, under the write lock."""
        uuids = [meta.uuid for meta in metas]
        if not uuids or any(not uuid for uuid in uuids):
            raise StoreError("every SST to ingest needs its uuid")
        state = self._state
        with state.write_lock:
            info = state.checker.leader_region(ctx)
            staged = [self._staging.load(uuid) for uuid in uuids]
            for item in staged:
                for key in (item.first_key, item.last_key) if not item.is_empty else ():
                    if not key_in_region(key, info.region):
                        raise key_not_in_region(key, info.region)
            self._staging.ingest(state.engine, staged)
            for peer in info.region.peers:
                if peer.store_id != state.store_id:
                    state.peers.ingest_replica(peer.store_id, info.id, uuids)
        for uuid in uuids:
            self._staging.remove(uuid)
        log.info("ingested %d SSTs into region %d", len(uuids), info.id)


def _source_path(request: import_sstpb_pb2.DownloadRequest) -> Path:
    if request.storage_backend.WhichOneof("backend") != "local":
        raise StoreError("only the local storage backend is supported by the devcluster store")
    if not request.storage_backend.local.path or not request.name:
        raise StoreError("storage_backend.local.path and name must not be empty")
    if request.cipher_info.cipher_key:
        raise StoreError("encrypted SSTs are not supported by the devcluster store")
    source = Path(request.storage_backend.local.path) / request.name
    if not source.is_file():
        raise StoreError(f"SST file {source} not found")
    return source


def _identity(rule: import_sstpb_pb2.RewriteRule) -> bool:
    """A rule that changes no key and no timestamp and filters no version (TiKV moves such files
    without reading them: sst_importer's direct_retval)."""
    return (rule.old_key_prefix == rule.new_key_prefix and rule.new_timestamp == 0
            and rule.ignore_after_timestamp == 0 and rule.ignore_before_timestamp == 0)


def _place(source: Path, target: Path) -> int:
    """The file at target (a hard link, a copy across filesystems), atomically; its size."""
    tmp = target.with_name(f".{target.name}.{uuid4().hex}.tmp")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target.stat().st_size


def rewrite_key(key: bytes, rule: import_sstpb_pb2.RewriteRule) -> bytes:
    if not key.startswith(rule.old_key_prefix):
        raise StoreError(f"key {show_key(key)} does not start with the rewrite rule's old prefix {show_key(rule.old_key_prefix)} (hex)")
    return rule.new_key_prefix + key[len(rule.old_key_prefix):]


def with_new_timestamp(key: bytes, value: bytes, ts: int, cf: str) -> tuple[bytes, bytes]:
    """TiKV's importer under a rule with new_timestamp: every key's last 8 bytes (its ts) replaced
    (Key::truncate_ts + append_ts), and a write record's start_ts too. Keys are taken to carry a
    ts: a raw V1 key loses its last 8 bytes, which is why BR sends new_timestamp only for V2."""
    if len(key) < U64_SIZE:
        raise StoreError(f"bad format key {show_key(key)} (hex): too short to carry a timestamp")
    key = append_ts(key[:-U64_SIZE], ts)
    if cf == CF_WRITE:
        value = replace(Write.parse(value), start_ts=ts).to_bytes()
    return key, value


def before_range(key: bytes, sst: import_sstpb_pb2.SSTMeta) -> bool:
    return key < sst.range.start


def after_range(key: bytes, sst: import_sstpb_pb2.SSTMeta) -> bool:
    end = sst.range.end
    return bool(end) and (key >= end if sst.end_key_exclusive else key > end)


def _origin_key(stored: bytes, source: Path) -> bytes:
    try:
        return origin_key(stored)
    except ValueError as exc:
        raise StoreError(f"{source.name}: {exc}: not a TiKV backup file") from None
