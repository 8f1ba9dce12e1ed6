"""Celery task `br.backup.range`: one store backs up one key range into S3.

The store's Backup RPC writes SSTs into a per-attempt staging directory (local backend); as
each BackupResponse arrives its files are checked (size, sha256) and uploaded exclusively under
names fenced to the attempt ({store_id}/{attempt}/...sst, br_common.backupmeta.layout), so nothing
ever overwrites an object, and a straggler of an old attempt lands where no backupmeta looks.
Staged files go once uploaded, and all of them in `finally`. The result tiles
the task's range: covered pieces (with their files) and uncovered pieces (region errors,
store errors, a cut stream) for the coordinator to re-resolve.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from pathlib import Path

import grpc

from br_agent.context import AgentTaskError
from br_agent.environment import BackupEnv
from br_common.fleet.task_errors import TaskFatalError
from br_agent.interruption import AttemptCancelled
from br_agent.sst_files import SstError, file_checksum
from br_agent.task_base import Report, agent_task, stop_if_withdrawn
from br_common.backupmeta.kind import BackupKind, rules
from br_common.backupmeta.layout import BACKUPMETA, attempt_object_name
from br_common.checksum import Checksum
from br_common.fleet import messages as m
from br_common.fleet.keyranges import intersect, subtract
from br_common.kvproto import brpb_pb2, kvrpcpb_pb2
from br_common.storage import ExternalStorage, StorageError, check_key
from br_common.storage.base import BAD_DIGEST
from br_common.tikv_client import RawKVError, describe_region_error

log = logging.getLogger(__name__)

UPLOADS_IN_FLIGHT = 2  # the store writes the next region while the previous one uploads
LOCK_WAIT_CAP = 3.0  # seconds an agent waits on a live lock before the coordinator's backoff takes over

def run_backup(context: BackupEnv, task: m.BackupRangeTask, report: Report) -> m.BackupRangeResult:
    if task.store_id != context.store_id:
        raise TaskFatalError(f"task for store {task.store_id} reached the agent of store {context.store_id}")
    # --ratelimit is the store's budget: every upload of this agent shares one stream at that rate
    storage = context.open_storage(task.storage, rate_limit=task.store_budget)
    if storage.exists(BACKUPMETA):  # the storage, not the broker, says whether the backup is finished
        log.warning("refusing backup attempt %s: %s already holds a complete backup", task.attempt,
                    storage.uri())
        raise AttemptCancelled(f"{storage.uri()} already holds a complete backup (backupmeta)")
    report(m.TaskProgress(agent=context.instance))
    stage = context.staging(task.job_id, task.attempt)
    try:
        return _backup_into(context, task, storage, stage, report)
    finally:
        context.drop_staging(stage)


backup_range = agent_task(m.BACKUP_RANGE, m.BackupRangeTask)(run_backup)


def _backup_into(context: BackupEnv, task: m.BackupRangeTask, storage: ExternalStorage, stage: Path,
                 report: Report) -> m.BackupRangeResult:
    uploader = _Uploader(context, task, storage, stage, report)
    covered: list[m.CoveredRange] = []
    failed: list[m.UncoveredRange] = []
    stream_error = ""
    call = context.backup_stub().backup(_request(task, stage))
    try:
        for response in call:
            piece = m.KeyRange(start=response.start_key, end=response.end_key)
            if response.HasField("error"):
                failed.append(_error_range(context, task, piece, response.error))
                continue
            covered.append(m.CoveredRange(range=piece, files=uploader.submit(response.files)))
    except grpc.RpcError as exc:
        stream_error = f"store {context.store_id} backup stream failed: {exc.code().name}: {exc.details()}"
        log.warning("%s", stream_error)
    finally:
        call.cancel()
        uploader.store_done()  # the store may start on the next range while these files upload
        uploaded = uploader.wait()  # raises the first upload failure: the task fails, nothing recorded
    covered = [m.CoveredRange(range=c.range, files=[uploaded[f.name] for f in c.files]) for c in covered]
    uncovered = _uncovered(task.range, covered, failed, stream_error)
    return _result(context, task, covered=covered, uncovered=uncovered, bytes_uploaded=uploader.bytes_done)


def _request(task: m.BackupRangeTask, stage: Path) -> brpb_pb2.BackupRequest:
    return brpb_pb2.BackupRequest(
        cluster_id=task.cluster_id, start_key=task.range.start, end_key=task.range.end,
        start_version=task.start_version, end_version=task.backup_ts, rate_limit=task.rate_limit,
        is_raw_kv=rules(task.kind).is_raw_kv, cf=rules(task.kind).request_cf,
        compression_type=m.COMPRESSION_TYPES[task.compression], compression_level=task.compression_level,
        storage_backend=brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(stage))),
        dst_api_version=kvrpcpb_pb2.V1, unique_id=task.attempt)


def _error_range(context: BackupEnv, task: m.BackupRangeTask, piece: m.KeyRange,
                 error: brpb_pb2.Error) -> m.UncoveredRange:
    """A store's error response for a piece, with its kind (what the coordinator does about it)."""
    if error.HasField("kv_error") and error.kv_error.HasField("locked"):
        return _locked_range(context, task, piece, error.kv_error.locked)
    if error.HasField("region_error"):
        return m.UncoveredRange(range=piece, reason=describe_region_error(error.region_error), error_kind="region")
    if error.HasField("cluster_id_error"):
        raise TaskFatalError(f"cluster id mismatch: the store is in cluster {error.cluster_id_error.current}, "
                             f"the backup is of cluster {error.cluster_id_error.request}")
    return m.UncoveredRange(range=piece, reason=error.msg or "unknown store error", error_kind="retryable")


def _locked_range(context: BackupEnv, task: m.BackupRangeTask, piece: m.KeyRange,
                  lock: kvrpcpb_pb2.LockInfo) -> m.UncoveredRange:
    """A lock blocks the read at backup_ts (TiKV leaves it to the client, as BR does): resolve it
    through its primary, then the coordinator retries the piece; a live txn is waited on a little
    here (up to LOCK_WAIT_CAP) and then retried with the coordinator's backoff."""
    try:
        resolution = context.lock_resolver().resolve(lock, task.backup_ts)
    except RawKVError as exc:
        return m.UncoveredRange(range=piece, reason=f"resolving a lock: {exc}", error_kind="retryable")
    log.info("backup of %s at ts %d met a %s", piece.label(), task.backup_ts, resolution.detail)
    if resolution.resolved:
        return m.UncoveredRange(range=piece, reason=resolution.detail, error_kind="region")
    time.sleep(min(resolution.wait_ms / 1000, LOCK_WAIT_CAP))
    return m.UncoveredRange(range=piece, reason=resolution.detail, error_kind="retryable")


def _uncovered(whole: m.KeyRange, covered: list[m.CoveredRange], failed: list[m.UncoveredRange],
               stream_error: str) -> list[m.UncoveredRange]:
    """Every gap in the covered pieces, with the reason of the error response overlapping it."""
    out = []
    for gap in subtract(whole, [c.range for c in covered]):
        errors = [f for f in failed if intersect(f.range, gap) is not None]
        if errors:
            out.append(errors[0].model_copy(update={"range": gap}))
        else:
            out.append(m.UncoveredRange(range=gap, reason=stream_error or "the store did not report this range",
                                        error_kind="retryable"))
    return out


def _result(context: BackupEnv, task: m.BackupRangeTask, **fields: object) -> m.BackupRangeResult:
    return m.BackupRangeResult(job_id=task.job_id, attempt=task.attempt, store_id=context.store_id,
                               agent=context.instance, **fields)


class _Uploader:
    """Checks and uploads staged files on a small pool; the stream keeps flowing meanwhile."""

    def __init__(self, context: BackupEnv, task: m.BackupRangeTask, storage: ExternalStorage, stage: Path,
                 report: Report) -> None:
        self._context = context
        self._task = task
        self._storage = storage
        self._stage = stage
        self._report = report
        self._pool = ThreadPoolExecutor(max_workers=UPLOADS_IN_FLIGHT, thread_name_prefix="br-upload")
        # --checksum reads each file back while it uploads (CPU beside I/O): a file that fails the
        # check fails the task and is never recorded, its object left under the attempt's own name
        self._checks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="br-check")
        self._check_pairs = task.checksum and rules(task.kind).files_recountable
        self._futures: list[tuple[str, Future]] = []  # (the store's file name, its upload)
        self._lock = threading.Lock()
        self.bytes_done = 0
        self.files_done = 0
        self._store_done = False

    def store_done(self) -> None:
        """The Backup stream ended: say so in the task's progress (FollowConfig.tail_in_flight)."""
        with self._lock:  # reported under the lock: an older progress never lands after this one
            self._store_done = True
            self._report(self._progress())

    def _progress(self) -> m.TaskProgress:
        return m.TaskProgress(agent=self._context.instance, bytes_uploaded=self.bytes_done,
                              files_uploaded=self.files_done, store_done=self._store_done)

    def submit(self, files: list[brpb_pb2.File]) -> list[m.FileInfo]:
        infos = [m.FileInfo.from_proto(f) for f in files]
        for info in infos:
            self._futures.append((info.name, self._pool.submit(self._upload, info)))
        return infos

    def wait(self) -> dict[str, m.FileInfo]:
        """The store's file name -> what was uploaded (named as stored: fenced to the attempt)."""
        try:
            return {name: future.result() for name, future in self._futures}
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._checks.shutdown(wait=True, cancel_futures=True)

    def _upload(self, info: m.FileInfo) -> m.FileInfo:
        name = _checked_name(info.name, self._context.store_id)
        path = self._stage / name
        key = attempt_object_name(name, self._task.attempt)  # fenced: see br_common.backupmeta.layout
        check: Future | None = None
        try:
            # cancelled (job failed, interrupted, attempt resent): stop uploading now
            stop_if_withdrawn(self._context, self._task, prefix="stopped: ")
            _verify(path, info)
            if self._check_pairs:
                check = self._checks.submit(_verify_pairs, path, info, self._stage / ".scratch", self._task.kind)
            uploaded = _put_checked(self._storage, key, path, info)
            if check is not None:
                check.result()  # raises: the task fails before this file is recorded anywhere
            if not uploaded:
                raise AgentTaskError(f"{key} already exists with other content: not overwritten")
        finally:
            if check is not None:
                wait_for([check])  # it reads the file: remove it only after
            path.unlink(missing_ok=True)
        info = info.model_copy(update={"name": key})
        with self._lock:
            self.bytes_done += info.size
            self.files_done += 1
            self._report(self._progress())
        return info


def _checked_name(name: str, store_id: int) -> str:
    try:
        check_key(name)
    except ValueError as exc:
        raise AgentTaskError(f"the store returned a bad file name: {exc}") from None
    if not name.startswith(f"{store_id}/") or not name.endswith(".sst"):
        raise AgentTaskError(f"the store returned {name!r}, not a {store_id}/...sst file")
    return name


def _verify(path: Path, info: m.FileInfo) -> None:
    """A staged file must be exactly what the store described (a torn write must not upload): its
    size here, its sha256 by the storage as it uploads (_put_checked)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AgentTaskError(f"staged file {info.name} is missing") from None
    if size != info.size:
        raise AgentTaskError(f"staged file {info.name} has {size} bytes, the store said {info.size}")
    if not info.sha256:
        raise AgentTaskError(f"the store gave no sha256 for {info.name}")


def _put_checked(storage: ExternalStorage, key: str, path: Path, info: m.FileInfo) -> bool:
    """put_file_exclusive, which stores nothing unless the bytes hash to the store's sha256 (S3
    checks x-amz-checksum-sha256 itself: no second read of the file here)."""
    try:
        return storage.put_file_exclusive(key, path, info.sha256)
    except StorageError as exc:
        if exc.code == BAD_DIGEST:
            raise AgentTaskError(f"staged file {info.name} does not match its sha256: not uploaded") from None
        raise


def _verify_pairs(path: Path, info: m.FileInfo, scratch: Path, kind: BackupKind = BackupKind.RAW) -> None:
    """--checksum: the records in the file are what the store counted (a real TiKV has no RawChecksum
    at a ts, so this, not the live cluster, is what a raw backup is checked against; a txn backup
    is also checked against the Coprocessor checksum at backup_ts by the coordinator)."""
    want = Checksum(crc64xor=info.crc64xor, total_kvs=info.total_kvs, total_bytes=info.total_bytes)
    try:
        got = file_checksum(path, scratch, kind, info.cf)
    except SstError as exc:
        raise AgentTaskError(f"staged file {info.name}: {exc}") from None
    if got != want:
        raise AgentTaskError(f"staged file {info.name} holds {got}, the store counted {want}: not recorded")
