"""`br backup full|txn|raw`: plan, follow and commit a distributed backup (full and txn: the
transactional key space at backup_ts; raw: raw KV).

Order (each step's why in its function): job lease (one runner per identical command) ->
job record (resume: same backup_ts, completed ranges skipped) -> backup_ts checked against the
GC safe point and held by a service safe point -> backup.lock via an agent (atomic) -> per-store
range tasks until the key space is covered exactly once (with --checksum each agent checks
every file against the store's counts; a txn backup's ranges then against the Coprocessor
checksum at backup_ts) -> backupmeta written LAST via an agent -> summary.
The coordinator opens no storage itself.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from br_common.backupmeta import meta as backupmeta
from br_common.backupmeta import seal as backupmeta_seal
from br_common.backupmeta.kind import BackupKind, rules
from br_common.checksum import total_of
from br_common.fleet import messages as m
from br_common.fleet.app import make_app
from br_common.version import fleet_version
from br_common.fleet.jobs import JobSpec, JobState, RangeRecord
from br_common.fleet.keyranges import subtract, tiling_problem
from br_common.fleet.registry import Registry
from br_common.gc_safe_point import StaleReadError, require_after_safe_point
from br_common.kvproto import brpb_pb2
from br_common.pd_client import PDClient, PDError
from br_common.tso import from_unix_seconds, physical_ms, ts_time
from br_common.txn_checksum import TxnChecksum
from br_common.storage import parse_storage_url
from br_coordinator import flags, incremental_base, logging_setup
from br_coordinator.errors import CommandError
from br_coordinator.follow.agents import FollowConfig, check_agents
from br_coordinator.follow.backup_book import LANE, BackupBook, BackupTotals
from br_coordinator.follow.book import Send
from br_coordinator.follow.engine import FollowEngine, Outgoing
from br_coordinator.follow.resolvers import BackupResolver
from br_coordinator.job_options import CHECKSUM_CONCURRENCY, BackupOptions
from br_coordinator.job_runner import Connections, JobRunner, connections, one_line
from br_coordinator.storage_spec import StorageSpecs
from br_coordinator.gc_keeper import GCKeeper
from br_coordinator.backup_plan import PlannedTask
from br_coordinator.progress import JobProgress, human_bytes, print_summary
from br_coordinator.follow.storage_book import call_storage

log = logging.getLogger("br.backup")


def run_full(args: argparse.Namespace) -> int:
    return run(args, m.KeyRange(), BackupKind.TXN)


def run_txn(args: argparse.Namespace) -> int:
    return run(args, flags.key_range(args), BackupKind.TXN)


def run_raw(args: argparse.Namespace) -> int:
    return run(args, flags.raw_range(args, "raw backups of this cluster"), BackupKind.RAW)


# --- the job ------------------------------------------------------------------------------------
@dataclass
class Backup:
    options: BackupOptions
    conn: Connections
    base: StorageSpecs | None = field(default=None)  # --lastbackup: the backup this one builds on

    def __post_init__(self) -> None:
        self.whole, self.kind = self.options.whole, self.options.kind
        self.specs, self.settings, self.pd = self.conn.specs, self.conn.settings, self.conn.pd
        self.app = make_app(self.settings.broker, self.settings)
        self.registry = Registry(self.conn.redis)
        self._call_storage = partial(call_storage, self.app, self.pd, self.registry)
        spec = JobSpec(kind="backup", cluster_id=self.pd.cluster_id, storage_url=self.specs.url,
                       ranges=[self.whole], options={"backup_kind": self.kind.value,
                                                     "compression": self.options.compression,
                                                     "compression_level": self.options.compression_level,
                                                     "backupts": self.options.backupts,
                                                     "lastbackupts": self.options.last_backup_ts})
        if self.base is not None:  # only then: the ids of other jobs stay what earlier versions made them
            spec.options["lastbackup"] = self.base.url
        self.runner = JobRunner(self.conn.redis, spec, self.settings.job_ttl_days, "backup")
        self.jobs, self.lease = self.runner.jobs, self.runner.lease
        self.started = time.monotonic()

    @property
    def job_id(self) -> str:
        return self.jobs.job_id

    def run(self) -> int:
        return self.runner.run(lambda _previous, state: self._run(state), refuse=self._refuse)

    def _refuse(self, previous: JobState | None) -> str:
        """A finished backup is never redone into the same path (its record stays "done")."""
        if previous is None or previous.status != "done":
            return ""
        return (f"{self.specs.url} already holds a complete backup (job {self.job_id}, backup ts "
                f"{previous.job_ts}): back up to a new path")

    def _run(self, state: JobState) -> int:
        self._check_agents_alive()
        self._check_base()
        backup_ts = self._backup_ts(state)
        log.info("backup job %s of cluster %d to %s at ts %d (%s)", self.job_id, self.pd.cluster_id, self.specs.url,
                 backup_ts, ts_time(backup_ts))
        # an incremental backup reads every version after --lastbackupts: it holds GC there (as BR)
        held = self.options.last_backup_ts or backup_ts
        with GCKeeper(self.pd, self.job_id, held, self.options.gcttl, keep_for=self.options.checkpoint_gcttl):
            self.runner.resumable_for = self.options.checkpoint_gcttl  # from here on the safe point outlives a failure
            if not state.lock_acquired:
                self._lock()
            records = self._follow(backup_ts)
            self._verify(records, backup_ts)
            meta = self._backupmeta(records, backup_ts)
            self._write_meta(meta)
        self.jobs.finish("done")
        self._summary(meta, resumed=bool(state.lock_acquired))
        return 0

    # --- steps ------------------------------------------------------------------------------------
    def _check_agents_alive(self) -> None:
        """Every store leading a region of the range needs an agent; all must accept the URL."""
        bounds = rules(self.kind).pd_bounds(self.whole.start, self.whole.end)
        leaders = {info.leader_store_id for info in self.pd.scan_regions(*bounds)}
        check_agents(self.registry.alive(self.pd.cluster_id), self.specs, self.app.signer, leaders, self.pd)

    def _check_base(self) -> None:
        """An incremental backup builds on a complete txn backup: --lastbackup is read and checked
        (its end version becomes --lastbackupts); --lastbackupts alone is checked against the fleet's
        job records (incremental_base)."""
        if self.base is not None:
            ts = self._read_base(self.base)
            self.options = self.options.model_copy(update={"last_backup_ts": ts})
        elif self.options.last_backup_ts:
            incremental_base.check_job_records(self.conn.redis, self.pd.cluster_id, self.options.last_backup_ts,
                                               self.whole)

    def _read_base(self, base: StorageSpecs) -> int:
        """An agent reads it (with its own credentials, or the URL's sealed to it with -c)."""
        where = f"{base.url}/backupmeta"
        spec = base.for_agents(self.registry.alive(self.pd.cluster_id))
        try:
            result = self._call_storage(m.READ_BACKUPMETA, m.ReadBackupMetaTask(storage=spec), m.ReadBackupMetaResult,
                                        shadow=f"read the last backup's backupmeta {base.url}")
        except CommandError as exc:
            raise CommandError(f"--lastbackup {base.url}: {one_line(exc)}: name a complete backup, or take a full "
                               f"backup") from None
        return incremental_base.from_backupmeta(result.backupmeta, result.seal, self.app.signer, where, self.whole,
                                                self.pd.cluster_id, self.options.last_backup_ts)

    def _backup_ts(self, state: JobState) -> int:
        if state.job_ts:
            log.info("resuming job %s: reusing backup ts %d", self.job_id, state.job_ts)
            ts = state.job_ts
        else:
            ts = self._new_backup_ts()
        hint = "use a later --backupts/--timeago" + (" or a new storage path" if state.job_ts else "")
        try:
            require_after_safe_point(self.pd, ts, "backup ts", hint)
            self._check_last_backup_ts(ts)
        except StaleReadError as exc:
            raise CommandError(str(exc)) from None
        return self.jobs.fix_job_ts(ts)

    def _check_last_backup_ts(self, backup_ts: int) -> None:
        """An incremental backup needs every version after --lastbackupts: not yet collected by GC."""
        last = self.options.last_backup_ts
        if not last:
            return
        if last >= backup_ts:
            raise CommandError(f"--lastbackupts {last} is not before the backup ts {backup_ts}: nothing to back up")
        require_after_safe_point(self.pd, last, "--lastbackupts",
                                 "the versions since the last backup may be collected: take a full backup")

    def _new_backup_ts(self) -> int:
        """--backupts, --timeago before now, or now; never after PD's current time."""
        now = self.pd.tso()
        if self.options.backupts:
            ts = self.options.backupts
            if ts > now:  # BR accepts it, and then holds data as of when it ran, not as of the ts it names
                raise CommandError(f"--backupts {ts} ({ts_time(ts)}) is after PD's current time {ts_time(now)}: "
                                   f"a backup can only hold what is already committed; use a past ts or omit it")
            return ts
        ts = from_unix_seconds(physical_ms(now) / 1000 - self.options.timeago) if self.options.timeago else now
        if ts > now:
            raise CommandError("--timeago must not be negative")
        return ts

    def _lock(self) -> None:
        # the same bytes on every attempt of this job, so a lost answer is recognised by the lock's ETag
        body = json.dumps({"job_id": self.job_id, "br_version": fleet_version()})
        task = m.AcquireLockTask(job_id=self.job_id, storage=self._storage_spec(), lock_body=body)
        result = self._call_storage(m.ACQUIRE_LOCK, task, m.AcquireLockResult,
                                    shadow=f"lock job={self.job_id} {self.specs.url}")
        if result.outcome == "complete":
            raise CommandError(f"{self.specs.url} already holds a complete backup ({result.detail}): "
                               f"back up to a new path")
        if result.outcome == "locked":
            raise CommandError(f"{self.specs.url} is locked by another backup ({result.detail}): use a new path, "
                               f"or if that backup is dead and unwanted, delete its backup.lock and files")
        self.jobs.mark_lock_acquired()

    def _follow(self, backup_ts: int) -> list[RangeRecord]:
        done = self.jobs.ranges()
        todo = subtract(self.whole, [r.range for r in done])
        totals = BackupTotals(done_regions=len(done), bytes_done=sum(f.size for r in done for f in r.files))
        book = BackupBook(todo, self.options.max_attempts, totals)
        progress = JobProgress(f"backup {self.job_id}")
        engine = FollowEngine(self.app, self.pd, self.registry, book,
                              lambda attempt, send: self._range_task(attempt, send, backup_ts),
                              FollowConfig(concurrency=self.options.concurrency,
                                           tail_in_flight=self.options.concurrency),
                              BackupResolver(self.pd, book, self.kind),
                              self.jobs, [self.lease], on_progress=lambda p: progress.update(*p))
        if done:
            log.info("resuming: %d ranges already backed up, %d pieces to go", len(done), len(todo))
        try:
            stats = engine.run()
        except BaseException:
            engine.cancel_all()
            raise
        finally:
            progress.close()
        log.info("all ranges backed up: %d retries, %d resent after a lost agent", stats.retries, stats.resent_lost)
        records = self.jobs.ranges()
        problem = tiling_problem(self.whole, [r.range for r in records])
        if problem:
            raise CommandError(f"the backed-up ranges do not cover {self.whole.label()} exactly once: {problem}")
        return records

    def _verify(self, records: list[RangeRecord], backup_ts: int) -> None:
        """--checksum of a txn backup: each range's files add up to the Coprocessor checksum at
        backup_ts (what TiDB's ADMIN CHECKSUM reads; the agents already recounted every file).
        Raw KV has no checksum at a ts on TiKV: the agents' file check is all there is."""
        if not self.options.checksum or rules(self.kind).is_raw_kv:
            return
        if self.options.last_backup_ts:  # its files hold changes, not the data at backup_ts (BR skips it too)
            log.info("an incremental backup is not compared with the Coprocessor checksum: its files hold changes")
            return
        with TxnChecksum(self.pd) as txn, ThreadPoolExecutor(CHECKSUM_CONCURRENCY) as pool:
            sums = pool.map(lambda r: txn.checksum_at(r.range.start, r.range.end, backup_ts), records)
            for record, got in zip(records, sums):
                want = total_of(record.files)
                if got != want:
                    raise CommandError(f"checksum mismatch in range {record.range.label()}: its files hold {want}, "
                                       f"the cluster at backup ts {backup_ts} holds {got}")
        log.info("checksum of %d ranges verified against the Coprocessor checksum at ts %d", len(records), backup_ts)

    def _range_task(self, attempt: str, send: Send, backup_ts: int) -> Outgoing:
        assert send.lane == LANE and isinstance(send.body, PlannedTask)
        task = send.body
        message = m.BackupRangeTask(job_id=self.job_id, attempt=attempt, cluster_id=self.pd.cluster_id,
                                    store_id=task.store_id, range=task.range, backup_ts=backup_ts, kind=self.kind,
                                    start_version=self.options.last_backup_ts,
                                    checksum=self.options.checksum, rate_limit=self.options.rate_limit,
                                    store_budget=self.options.rate_limit, compression=self.options.compression,
                                    compression_level=self.options.compression_level, storage=self._storage_spec())
        shadow = (f"backup job={self.job_id} store={task.store_id} {task.range.label()} "
                  f"{task.regions} region{'s' if task.regions != 1 else ''}")
        return Outgoing(m.BACKUP_RANGE, message, shadow)

    def _storage_spec(self) -> m.StorageSpec:
        return self.specs.for_agents(self.registry.alive(self.pd.cluster_id))

    def _backupmeta(self, records: list[RangeRecord], backup_ts: int) -> brpb_pb2.BackupMeta:
        return backupmeta.build(self.kind, cluster_id=self.pd.cluster_id, cluster_version=_cluster_version(self.pd),
                                br_version=f"{backupmeta.BR_VERSION_PREFIX} {fleet_version()}",
                                files=[f for r in records for f in r.files], ranges=[self.whole],
                                end_version=backup_ts, start_version=self.options.last_backup_ts)

    def _write_meta(self, meta: brpb_pb2.BackupMeta) -> None:
        data = meta.SerializeToString()
        task = m.WriteBackupMetaTask(job_id=self.job_id, storage=self._storage_spec(), backupmeta=data,
                                     seal=backupmeta_seal.seal(data, self.app.signer).model_dump_json())
        result = self._call_storage(m.WRITE_BACKUPMETA, task, m.WriteBackupMetaResult,
                                    shadow=f"backupmeta job={self.job_id} {m.human_size(len(task.backupmeta))} "
                                           f"{self.specs.url}")
        if result.outcome == "exists":  # only this job holds the lock: an earlier run of it wrote it
            log.info("backupmeta was already written by an earlier run of job %s", self.job_id)

    def _summary(self, meta: brpb_pb2.BackupMeta, resumed: bool) -> None:
        elapsed = time.monotonic() - self.started
        size = meta.backup_size
        kvs = sum(f.total_kvs for f in meta.files)
        raw = sum(f.total_bytes for f in meta.files)
        print_summary("Backup complete" + (" (resumed)" if resumed else ""), [
            ("storage", self.specs.url), ("job", self.job_id),
            ("backup_ts", f"{meta.end_version} ({ts_time(meta.end_version)})"),
            ("files", str(len(meta.files))), ("size", f"{human_bytes(size)} ({size} bytes in SST files)"),
            ("kvs", f"{kvs} ({human_bytes(raw)} of keys and values)"),
            ("checksum", self._checksum_summary(len(meta.files))),
            ("duration", f"{elapsed:.1f}s"),
            ("throughput", f"{human_bytes(raw / elapsed if elapsed else 0)}/s of data, "
                           f"{human_bytes(size / elapsed if elapsed else 0)}/s to storage"),
        ])


    def _checksum_summary(self, files: int) -> str:
        if not self.options.checksum:
            return "skipped (--checksum=false)"
        checked = f"{files} files checked against the store's counts"
        return checked if rules(self.kind).is_raw_kv else checked + ", every range against the Coprocessor checksum"


def run(args: argparse.Namespace, whole: m.KeyRange, kind: BackupKind) -> int:
    if args.storage and args.backupts and args.timeago:
        raise CommandError("--backupts and --timeago are exclusive")
    if (args.lastbackupts or args.lastbackup) and rules(kind).is_raw_kv:
        raise CommandError("--lastbackupts/--lastbackup: raw KV (API V1) has no versions: incremental backups are "
                           "of txn KV")
    options = BackupOptions.from_args(args, whole, kind)
    base = _base_location(args)
    with connections(args, warn_credentials=True) as conn:
        if base is not None and base.url == conn.specs.url:
            raise CommandError("--lastbackup names this backup's own storage: give the previous backup's URL")
        return Backup(options, conn, base).run()


def _base_location(args: argparse.Namespace) -> StorageSpecs | None:
    """--lastbackup parsed as -s is (the S3 flags apply); its keys are scrubbed from the log."""
    if not args.lastbackup:
        return None
    try:
        base = parse_storage_url(args.lastbackup, flags.s3_flags(args))
    except ValueError as exc:
        raise CommandError(f"invalid --lastbackup: {exc}") from None
    logging_setup.add_secrets(base.secret_values())
    return StorageSpecs(base, args.send_credentials_to_tikv)


def _cluster_version(pd: PDClient) -> str:
    try:
        versions = sorted({s.version for s in pd.stores() if s.version})
    except PDError:
        return ""
    return ",".join(versions)

