"""Celery tasks on the cluster's shared `br.<cluster>.storage` queue: the storage-side steps of a job.

The coordinator holds no storage credentials, so any agent runs these with its own:
* `br.storage.acquire_lock`: refuse a path holding a backupmeta; take backup.lock atomically
  (conditional create: of two backups started at once exactly one gets it);
* `br.storage.write_backupmeta`: write its seal, then backupmeta LAST, never over an existing one;
* `br.storage.read_backupmeta` (restore): read and validate it, with its seal; a clear error when
  missing, unfinished (backup.lock without backupmeta), truncated or of another format.
"""
from __future__ import annotations

import logging

from br_agent.context import AgentTaskError
from br_agent.environment import TaskEnv
from br_common.fleet.task_errors import TaskFatalError
from br_agent.task_base import Report, agent_task
from br_common.backupmeta import layout, meta
from br_common.backupmeta.layout import BACKUPMETA, LOCK, SEAL
from br_common.fleet import messages as m
from br_common.storage import ExternalStorage, ObjectNotFound

log = logging.getLogger(__name__)


def run_acquire_lock(context: TaskEnv, task: m.AcquireLockTask,
                     _report: Report | None = None) -> m.AcquireLockResult:
    return lock(context.open_storage(task.storage), task)


def lock(storage: ExternalStorage, task: m.AcquireLockTask) -> m.AcquireLockResult:
    if storage.exists(BACKUPMETA):
        return m.AcquireLockResult(outcome="complete", detail=f"{storage.uri(BACKUPMETA)} exists")
    body = task.lock_body.encode()
    if storage.create_exclusive(LOCK, body):
        log.info("job %s took %s", task.job_id, storage.uri(LOCK))
        return m.AcquireLockResult(outcome="acquired", detail=storage.uri(LOCK))
    if storage.holds(LOCK, body):  # this job took it in an attempt whose answer was lost
        log.info("job %s already holds %s", task.job_id, storage.uri(LOCK))
        return m.AcquireLockResult(outcome="acquired", detail=storage.uri(LOCK))
    return m.AcquireLockResult(outcome="locked", detail=f"{storage.uri(LOCK)} exists")


def run_write_backupmeta(context: TaskEnv, task: m.WriteBackupMetaTask,
                         _report: Report | None = None) -> m.WriteBackupMetaResult:
    skip = context.jobs(task.job_id).skip_reason("")
    if skip:  # a late redelivery must not write anything
        raise AgentTaskError(f"not writing backupmeta: {skip}")
    storage = context.open_storage(task.storage)
    meta.parse(task.backupmeta, "the backupmeta to write")  # what no restore would accept is never written
    if task.seal and not storage.exists(BACKUPMETA):  # the seal first: backupmeta stays the commit marker
        _write_seal(storage, task.seal.encode())
    written = storage.create_exclusive(BACKUPMETA, task.backupmeta)
    log.info("job %s: backupmeta %s (%d bytes)", task.job_id, "written" if written else "already there",
             len(task.backupmeta))
    return m.WriteBackupMetaResult(outcome="written" if written else "exists", name=storage.uri(BACKUPMETA),
                                   size=len(task.backupmeta))


def _write_seal(storage: ExternalStorage, seal: bytes) -> None:
    """Before backupmeta exists nothing is committed: an earlier run's seal may be replaced."""
    if not storage.create_exclusive(SEAL, seal) and not storage.holds(SEAL, seal):
        storage.put_bytes(SEAL, seal)


def run_read_backupmeta(context: TaskEnv, task: m.ReadBackupMetaTask,
                        _report: Report | None = None) -> m.ReadBackupMetaResult:
    storage = context.open_storage(task.storage)
    data = read_meta_bytes(storage)
    meta.parse(data, storage.uri(BACKUPMETA))  # the rules br plans by: a bad one never leaves the agent
    try:
        seal = storage.get_bytes(SEAL)
    except ObjectNotFound:
        seal = None  # br checks what that means (pingcap's BR writes none)
    return m.ReadBackupMetaResult(backupmeta=data, size=len(data), seal=seal)


def read_meta_bytes(storage: ExternalStorage) -> bytes:
    try:
        return storage.get_bytes(BACKUPMETA)
    except ObjectNotFound:
        if storage.exists(LOCK):
            raise TaskFatalError(f"the backup at {storage.uri()} is unfinished ({LOCK} but no "
                                 f"{BACKUPMETA}): rerun the same `br backup` command to finish it") from None
        raise TaskFatalError(f"no backup at {storage.uri()}: {BACKUPMETA} not found") from None


def run_orphans(context: TaskEnv, task: m.OrphansTask, _report: Report | None = None) -> m.OrphansResult:
    """List (and with remove, delete) the data files a complete backup does not use; for an
    unfinished one, list its files: they are its own until it completes or is given up."""
    storage = context.open_storage(task.storage)
    stored = [(o.key, o.size) for o in storage.list()]
    if not storage.exists(BACKUPMETA):
        files = [m.Orphan(name=n, size=z) for n, z in stored if layout.is_attempt_file(n)]
        return m.OrphansResult(complete=False, orphans=files)
    backup = meta.parse(read_meta_bytes(storage), storage.uri(BACKUPMETA))  # read here, not trusted from br
    found = layout.orphans(stored, {f.name for f in backup.files})
    for name, _size in found if task.remove else []:
        storage.delete(name)
        log.info("removed orphan %s", storage.uri(name))
    return m.OrphansResult(complete=True, orphans=[m.Orphan(name=n, size=z) for n, z in found],
                           removed=len(found) if task.remove else 0)


acquire_lock = agent_task(m.ACQUIRE_LOCK, m.AcquireLockTask)(run_acquire_lock)
write_backupmeta = agent_task(m.WRITE_BACKUPMETA, m.WriteBackupMetaTask)(run_write_backupmeta)
read_backupmeta = agent_task(m.READ_BACKUPMETA, m.ReadBackupMetaTask)(run_read_backupmeta)
orphans = agent_task(m.ORPHANS, m.OrphansTask)(run_orphans)
