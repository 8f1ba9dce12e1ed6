"""The backup an incremental one builds on: it must be a complete transactional backup, or the
increment restores onto a base that never existed (BR trusts --lastbackupts blindly).

* `--lastbackup URL`: the previous backup's backupmeta, read by an agent (the coordinator opens no
  storage), checked against its seal, must be a transactional backup that covers the range backed
  up now; its end_version is the increment's start (with --lastbackupts as well, they must agree).
* `--lastbackupts TS` alone: the fleet's job records (Redis, kept job_ttl_days) are searched for a
  backup of this cluster whose backup ts is TS. A complete one is the base; one that is known but
  unfinished (or raw, or of a smaller range) is refused; none known (its record expired, or it was
  taken by another tool) is a warning only, so that BR-style usage keeps working.
"""
from __future__ import annotations

import logging

import redis

from br_common.backupmeta import meta as backupmeta
from br_common.backupmeta import seal as backupmeta_seal
from br_common.backupmeta.kind import BackupKind
from br_common.fleet.jobs import KEY_PREFIX, JobState, JobStore
from br_common.fleet.keyranges import subtract
from br_common.fleet.messages import KeyRange
from br_common.fleet.signing import Signer
from br_coordinator.errors import CommandError

log = logging.getLogger("br.backup")

BUILD_ON = "build an incremental backup on it"


def from_backupmeta(data: bytes, seal: bytes | None, signer: Signer | None, where: str, whole: KeyRange,
                    cluster_id: int, last_backup_ts: int) -> int:
    """The start version an incremental of `whole` takes from the previous backup's backupmeta
    (as read by an agent); CommandError (one line, what to do) when it cannot be the base."""
    hint = "name the complete transactional backup this one builds on, or take a full backup"
    try:
        meta = backupmeta.parse(data, where)
        ours = meta.br_version.startswith(backupmeta.BR_VERSION_PREFIX)
        warning = backupmeta_seal.check(data, seal, ours, signer, where, use=BUILD_ON)
        kind = backupmeta.kind_of(meta, where)
    except backupmeta.MetaError as exc:
        raise CommandError(f"--lastbackup: {exc}: {hint}") from None
    if warning:
        log.warning("%s", warning)
    if kind is not BackupKind.TXN:
        raise CommandError(f"--lastbackup: {where} is a raw KV backup: an incremental backup builds on a "
                           f"transactional one; {hint}")
    gaps = subtract(whole, backupmeta.ranges(meta))
    if gaps:
        raise CommandError(f"--lastbackup: {where} does not cover {gaps[0].label()} of the range backed up now "
                           f"({whole.label()}): an increment over it would restore onto nothing; {hint}")
    if last_backup_ts and last_backup_ts != meta.end_version:
        raise CommandError(f"--lastbackupts {last_backup_ts} is not the end version {meta.end_version} of "
                           f"--lastbackup {where}: give one of them, or both naming the same backup")
    if meta.cluster_id != cluster_id:
        log.warning("--lastbackup %s is a backup of cluster %d, this is cluster %d: the increment holds this "
                    "cluster's changes after ts %d", where, meta.cluster_id, cluster_id, meta.end_version)
    log.info("incremental backup of the changes after ts %d, the end version of %s", meta.end_version, where)
    return meta.end_version


def check_job_records(client: redis.Redis, cluster_id: int, ts: int, whole: KeyRange) -> None:
    """--lastbackupts alone: the fleet's record of the backup that ended at ts, if it has one."""
    found = _backups_at(client, cluster_id, ts)
    complete = [s for s in found if s.status == "done" and _fits(s, whole)]
    if complete:
        log.info("--lastbackupts %d is the end of backup job %s at %s (complete)", ts, complete[0].job_id,
                 complete[0].spec.storage_url)
        return
    if found:
        raise CommandError(f"--lastbackupts {ts} is the backup ts of {_describe(found[0], whole)}: an increment on "
                           f"it would restore onto an incomplete base; finish that backup (rerun its command) or "
                           f"build on a complete one (--lastbackup URL)")
    log.warning("--lastbackupts %d: the fleet knows no backup of cluster %d that ended at that ts (records are "
                "kept for a limited time), so its completeness cannot be checked: give --lastbackup URL to have "
                "it checked", ts, cluster_id)


def _backups_at(client: redis.Redis, cluster_id: int, ts: int) -> list[JobState]:
    """The records of this cluster's backup jobs whose backup ts is ts."""
    out = []
    for raw in client.scan_iter(match=f"{KEY_PREFIX}*", count=1000):
        job_id = raw.decode().removeprefix(KEY_PREFIX)
        if ":" in job_id:
            continue  # a job's ranges/cancelled/lease keys
        state = JobStore(client, job_id).load()
        if state and state.spec.kind == "backup" and state.spec.cluster_id == cluster_id and state.job_ts == ts:
            out.append(state)
    return sorted(out, key=lambda s: s.status != "done")


def _kind(state: JobState) -> str:
    return str(state.spec.options.get("backup_kind") or BackupKind.RAW.value)


def _fits(state: JobState, whole: KeyRange) -> bool:
    return _kind(state) == BackupKind.TXN.value and not subtract(whole, state.spec.ranges)


def _describe(state: JobState, whole: KeyRange) -> str:
    what = f"backup job {state.job_id} at {state.spec.storage_url}"
    if state.status != "done":
        return f"{what}, which is {state.status}" + (f" ({state.message})" if state.message else "")
    if _kind(state) != BackupKind.TXN.value:
        return f"{what}, a raw KV backup"
    return f"{what}, which does not cover the range backed up now ({whole.label()})"
