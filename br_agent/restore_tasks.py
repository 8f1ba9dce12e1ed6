"""Celery tasks of a restore, run by the agent beside each store (and one on `br.<cluster>.storage`).

`br.restore.download` (every peer of a region): fetch each piece's file from storage with this
host's credentials into a per-attempt staging dir, check size and sha256 against backupmeta
(a changed or missing object stops the restore before anything of it is ingested), then
ImportSST.Download it from the staging dir with the piece's range (the store cuts the file to it,
as TiKV does; for a piece that is part of its file the agent counts the part's checksum) and
an empty RewriteRule (keys and timestamps kept). Staged copies go right after
Download and, whatever happens, in `finally`.

`br.restore.ingest` (the region's leader): MultiIngest of what every peer downloaded (Ingest one
by one where MultiIngest is not served). Region errors come back as error_kind "region": the
coordinator re-resolves the region through PD and redoes the work.

`br.restore.discard` (every store, when the restore ends): remove from TiKV's import directory the
staged SSTs of this restore that will never be ingested (br_common.import_files).

`br.storage.restore_check_objects`: before anything is touched, every file of the backup must be
listed with its recorded size (needs only s3:ListBucket).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import grpc

from br_agent.context import AgentTaskError
from br_agent.environment import RestoreEnv
from br_agent.interruption import AttemptCancelled
from br_agent.sst_files import SstError, file_checksum
from br_agent.task_base import Report, agent_task, no_space_left, stop_if_withdrawn
from br_common.backupmeta.kind import rules, sst_cf
from br_common.checksum import Checksum
from br_common.fleet import restore_messages as rm
from br_common.fleet.task_errors import ErrorKind, TaskFatalError
from br_common.import_files import staged_ssts, staged_ssts_of_job
from br_common.kvproto import brpb_pb2, errorpb_pb2, import_sstpb_pb2
from br_common.storage import ExternalStorage, ObjectNotFound, StorageError
from br_common.tikv_client import describe_region_error

log = logging.getLogger(__name__)

RPC_TIMEOUT = 600.0  # a Download of a large SST under a low speed limit takes a while
FATAL_STORAGE_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket")


class PieceError(Exception):
    """One piece failed; kind tells the coordinator what to do (task_errors.ErrorKind)."""

    def __init__(self, message: str, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind = kind


# --- download ---------------------------------------------------------------------------------
def run_download(context: RestoreEnv, task: rm.DownloadTask, _report: Report | None = None) -> rm.DownloadResult:
    _check_target(context, task.cluster_id, task.store_id)
    storage = context.open_storage(task.storage, rate_limit=task.rate_limit)
    _set_speed_limit(context, task.rate_limit)
    stage = context.staging(task.job_id, task.attempt)
    staged: list[rm.StagedPiece] = []
    fetched = 0
    try:
        for piece in task.pieces:
            item, size = _download_piece(context, task, storage, stage, piece)
            staged.append(item)
            fetched += size
            _unstage_if_withdrawn(context, task, staged)
    except PieceError as exc:
        log.warning("restore download %s: %s", task.attempt, exc)
        return _download_result(context, task, staged=staged, bytes_downloaded=fetched,
                                error=context.scrub(str(exc)), error_kind=exc.kind)
    finally:
        context.drop_staging(stage)
    return _download_result(context, task, staged=staged, bytes_downloaded=fetched)


def _download_piece(context: RestoreEnv, task: rm.DownloadTask, storage: ExternalStorage, stage: Path,
                    piece: rm.Piece) -> tuple[rm.StagedPiece, int]:
    """Fetch + check, count a part's checksum, Download; the staged copy removed."""
    fetched = stage / "src" / piece.file.name
    try:
        _fetch(context, storage, piece.file, fetched)
        checksum = None if piece.whole_file else _part_checksum(fetched, task, piece, stage / "scratch")
        # nothing of a raw file in this piece (a txn piece counting 0 keys may still hold write
        # records of long values: the store's Download says whether it is empty)
        if checksum is not None and checksum.total_kvs == 0 and rules(task.kind).is_raw_kv:
            return rm.StagedPiece(uuid=piece.uuid, cf=sst_cf(piece.file.cf), is_empty=True,
                                  checksum=checksum), piece.file.size
        return _store_download(context, task, piece, fetched, checksum), piece.file.size
    finally:
        fetched.unlink(missing_ok=True)


def _unstage_if_withdrawn(context: RestoreEnv, task: rm.DownloadTask, staged: list[rm.StagedPiece]) -> None:
    """A download that outlived its attempt (the coordinator died and a rerun took over, or the job
    ended) removes what it staged: nobody will ingest it (a dead run's work landing late)."""
    try:
        stop_if_withdrawn(context, task)
    except AttemptCancelled as exc:
        if context.store_import_dir is not None:
            for path in staged_ssts(context.store_import_dir, [s.uuid for s in staged]):
                path.unlink(missing_ok=True)
        raise AttemptCancelled(f"{exc}: its staged pieces removed") from None


def _part_checksum(path: Path, task: rm.DownloadTask, piece: rm.Piece, scratch: Path) -> Checksum:
    """What the store will stage of a piece that is part of its file (Download cuts the file to the
    piece's range, as TiKV does): the expected checksum of that part, which backupmeta lacks."""
    try:
        return file_checksum(path, scratch, task.kind, piece.file.cf, piece.range)
    except SstError as exc:
        raise PieceError(str(exc), "integrity") from None


def _fetch(context: RestoreEnv, storage: ExternalStorage, f: rm.FileInfo, dest: Path) -> None:
    """Download and check one backup file; a missing or changed object is an integrity error.
    (--ratelimit is the storage's own: AgentContext.open_storage.)"""
    try:
        digest = storage.get_file(f.name, dest)  # hashed as it was written: no second read here
    except ObjectNotFound:
        raise PieceError(f"backup file {storage.uri(f.name)} is missing from storage: restore stopped "
                         "before ingesting it", "integrity") from None
    except StorageError as exc:
        kind: ErrorKind = "integrity" if exc.code in FATAL_STORAGE_CODES else "retryable"
        raise PieceError(no_space_left(context, exc) or str(exc), kind) from None
    size = dest.stat().st_size
    if size != f.size:
        raise PieceError(f"backup file {storage.uri(f.name)} has {size} bytes, backupmeta says {f.size}: "
                         "it changed after the backup; restore stopped before ingesting it", "integrity")
    if digest != f.sha256:
        raise PieceError(f"backup file {storage.uri(f.name)} does not match the sha256 in backupmeta: "
                         "it changed after the backup; restore stopped before ingesting it", "integrity")


def _store_download(context: RestoreEnv, task: rm.DownloadTask, piece: rm.Piece, path: Path,
                    checksum: Checksum | None) -> rm.StagedPiece:
    """ImportSST.Download from the local staging dir (the store runs on this host)."""
    kind_rules = rules(task.kind)
    start, end = kind_rules.pd_bounds(piece.range.start, piece.range.end)  # SSTMeta.range: engine keys
    request = import_sstpb_pb2.DownloadRequest(
        sst=_sst_meta(task.region, piece.uuid, start, end, exclusive=True, cf=sst_cf(piece.file.cf)),
        name=path.name, storage_backend=brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(path.parent))),
        # an empty rule, no new_timestamp: TiKV's importer would replace the last 8 bytes of every
        # key with it (a ts), which raw V1 keys do not carry (BR sets it only for API V2); txn keys
        # keep their commit ts. The store can then move the file whole instead of rewriting it.
        rewrite_rule=import_sstpb_pb2.RewriteRule(),
        is_raw_kv=kind_rules.is_raw_kv, context=task.region.context(task.cluster_id))
    try:
        response = context.import_stub().Download(request, timeout=RPC_TIMEOUT)
    except grpc.RpcError as exc:
        raise PieceError(f"store {context.store_id} Download: {exc.code().name}: {exc.details()}", "retryable") from None
    if response.HasField("error") and (response.error.message or response.error.HasField("store_error")):
        raise _store_error("Download", response.error.store_error, response.error.message)
    return rm.StagedPiece(uuid=piece.uuid, cf=sst_cf(piece.file.cf), first_key=response.range.start,
                          last_key=response.range.end, is_empty=response.is_empty, length=response.length,
                          checksum=checksum)


def _sst_meta(region: rm.RegionRef, uuid: bytes, start: bytes, end: bytes, exclusive: bool, cf: str,
              length: int = 0) -> import_sstpb_pb2.SSTMeta:
    return import_sstpb_pb2.SSTMeta(uuid=uuid, range=import_sstpb_pb2.Range(start=start, end=end),
                                    end_key_exclusive=exclusive, cf_name=cf, region_id=region.id,
                                    region_epoch=region.epoch(), length=length)


def _store_error(method: str, err: errorpb_pb2.Error, message: str) -> PieceError:
    if _is_region_error(err):
        return PieceError(f"{method}: {describe_region_error(err)}", "region")
    return PieceError(f"{method}: {message or err.message or 'unknown store error'}", "retryable")


def _is_region_error(err: errorpb_pb2.Error) -> bool:
    return any(err.HasField(f) for f in ("not_leader", "region_not_found", "key_not_in_region", "epoch_not_match",
                                         "server_is_busy", "stale_command", "store_not_match"))


def _download_result(context: RestoreEnv, task: rm.DownloadTask, **fields: object) -> rm.DownloadResult:
    return rm.DownloadResult(job_id=task.job_id, attempt=task.attempt, store_id=context.store_id,
                             agent=context.instance, region_id=task.region.id, **fields)


# --- rate limits --------------------------------------------------------------------------------
def _set_speed_limit(context: RestoreEnv, rate: int) -> None:
    """Pass --ratelimit on to the store (bounds Download's reads there); 0 lifts the limit."""
    try:
        context.import_stub().SetDownloadSpeedLimit(
            import_sstpb_pb2.SetDownloadSpeedLimitRequest(speed_limit=rate), timeout=30)
    except grpc.RpcError as exc:
        raise AgentTaskError(f"store {context.store_id} SetDownloadSpeedLimit: {exc.code().name}: "
                             f"{exc.details()}") from None


# --- ingest -------------------------------------------------------------------------------------
def run_ingest(context: RestoreEnv, task: rm.IngestTask, _report: Report | None = None) -> rm.IngestResult:
    _check_target(context, task.cluster_id, task.store_id)
    metas = [_sst_meta(task.region, s.uuid, s.first_key, s.last_key, exclusive=False, cf=s.cf, length=s.length)
             for s in task.ssts if not s.is_empty]
    try:
        _multi_ingest(context, task, metas)
    except _IngestFailed as exc:
        log.warning("restore ingest %s on region %d: %s", task.attempt, task.region.id, exc)
        return _ingest_result(context, task, error=str(exc), error_kind=exc.kind, leader=exc.leader)
    return _ingest_result(context, task)


class _IngestFailed(PieceError):
    def __init__(self, message: str, kind: ErrorKind, leader: rm.PeerRef | None = None) -> None:
        super().__init__(message, kind)
        self.leader = leader


def _multi_ingest(context: RestoreEnv, task: rm.IngestTask, metas: list[import_sstpb_pb2.SSTMeta]) -> None:
    stub = context.import_stub()
    ctx = task.region.context(task.cluster_id)
    try:
        responses = [stub.MultiIngest(import_sstpb_pb2.MultiIngestRequest(context=ctx, ssts=metas),
                                      timeout=RPC_TIMEOUT)]
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise _IngestFailed(f"store {context.store_id} MultiIngest: {exc.code().name}: {exc.details()}",
                                "retryable") from None
        responses = [_ingest_one(stub, ctx, meta, context.store_id) for meta in metas]
    for response in responses:
        if response.HasField("error"):
            raise _ingest_error(response.error)


def _ingest_one(stub, ctx, meta: import_sstpb_pb2.SSTMeta, store_id: int):  # noqa: ANN001, ANN202
    try:
        return stub.Ingest(import_sstpb_pb2.IngestRequest(context=ctx, sst=meta), timeout=RPC_TIMEOUT)
    except grpc.RpcError as exc:
        raise _IngestFailed(f"store {store_id} Ingest: {exc.code().name}: {exc.details()}", "retryable") from None


def _ingest_error(err: errorpb_pb2.Error) -> _IngestFailed:
    if not _is_region_error(err):
        return _IngestFailed(f"Ingest: {err.message or 'unknown store error'}", "retryable")
    leader = None
    if err.HasField("not_leader") and err.not_leader.leader.store_id:
        leader = rm.PeerRef(id=err.not_leader.leader.id, store_id=err.not_leader.leader.store_id)
    return _IngestFailed(f"Ingest: {describe_region_error(err)}", "region", leader)


def _ingest_result(context: RestoreEnv, task: rm.IngestTask, **fields: object) -> rm.IngestResult:
    return rm.IngestResult(job_id=task.job_id, attempt=task.attempt, store_id=context.store_id,
                           agent=context.instance, region_id=task.region.id, **fields)


# --- discard ------------------------------------------------------------------------------------
def run_discard(context: RestoreEnv, task: rm.DiscardTask, _report: Report | None = None) -> rm.DiscardResult:
    """The coordinator sends this once no task of the job can ingest these uuids any more."""
    _check_target(context, task.cluster_id, task.store_id)
    import_dir = context.store_import_dir
    if import_dir is None:
        return rm.DiscardResult(store_id=context.store_id, skipped="store_import_dir is not set on this agent: "
                                "TiKV drops them once their region changes")
    removed = 0
    paths = set(staged_ssts(import_dir, task.uuids)) | set(staged_ssts_of_job(import_dir, task.job_tag))
    for path in sorted(paths):
        path.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.info("restore %s: removed %d staged SSTs it will never ingest from %s", task.job_id, removed, import_dir)
    return rm.DiscardResult(store_id=context.store_id, removed=removed)


# --- storage side -------------------------------------------------------------------------------
def run_check_objects(context: RestoreEnv, task: rm.CheckObjectsTask,
                      _report: Report | None = None) -> rm.CheckObjectsResult:
    """Every object listed with its recorded size: one listing per top-level name ("1", "2", ...)."""
    storage = context.open_storage(task.storage)
    listed: dict[str, int] = {}
    for prefix in _list_prefixes(o.name for o in task.objects):
        listed.update((obj.key, obj.size) for obj in storage.list(prefix))
    problems = []
    for obj in task.objects:
        size = listed.get(obj.name)
        if size is None:
            problems.append(f"backup file {storage.uri(obj.name)} is missing from storage")
        elif size != obj.size:
            problems.append(f"backup file {storage.uri(obj.name)} has {size} bytes, backupmeta says {obj.size}")
    return rm.CheckObjectsResult(problems=problems)


def _list_prefixes(names: Iterable[str]) -> list[str]:
    """The store directories without their '/' ("1" also covers "10"): fewer listings, and moto's
    IAM check miscomputes the signature of a ListObjectsV2 whose prefix holds a '/'."""
    heads = sorted({name.split("/", 1)[0] for name in names})
    out: list[str] = []
    for head in heads:
        if not out or not head.startswith(out[-1]):
            out.append(head)
    return out


def _check_target(context: RestoreEnv, cluster_id: int, store_id: int) -> None:
    """Never stage or ingest into another cluster's store: store ids repeat across clusters."""
    if cluster_id != context.cluster_id:
        raise TaskFatalError(f"a restore task for cluster {cluster_id} reached the agent of store "
                             f"{context.store_id} of cluster {context.cluster_id}: agents consume only their "
                             "cluster's queues, so it was sent to the wrong one")
    if store_id != context.store_id:
        raise TaskFatalError(f"task for store {store_id} reached the agent of store {context.store_id}")


# --- the Celery tasks (br_agent.task_base: parse, withdrawn attempts end as REVOKED, one-line errors)
download = agent_task(rm.DOWNLOAD, rm.DownloadTask)(run_download)
ingest = agent_task(rm.INGEST, rm.IngestTask)(run_ingest)
discard = agent_task(rm.DISCARD, rm.DiscardTask)(run_discard)
check_objects = agent_task(rm.CHECK_OBJECTS, rm.CheckObjectsTask)(run_check_objects)
