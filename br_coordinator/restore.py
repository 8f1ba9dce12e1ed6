"""`br restore full|txn|raw`: read a backup through an agent, split and scatter the target's regions,
have every peer's agent download the files and every leader's agent ingest them, verify.

A transactional backup (full/txn) keeps its commit timestamps (TiKV copies the keys under an
empty rewrite rule) and its ranges are raw user keys (split at their encodings); a region's write
and default files are downloaded together and ingested by one MultiIngest, so no reader sees a
commit record without its value. New transactions must never commit below the restored ones:
the restore ts (PD's TSO when the job starts, before any ingest) must lie after the backup's
end_version. PD's TSO follows its clock, so on one host (and on EC2 with synced clocks) it does;
if it does not, br waits a moment for PD's clock to pass it, then moves PD's TSO past it with
PD's admin API `/pd/api/v1/admin/reset-ts` (as BR's restore does: br_common.pd_admin), reads the
TSO again, and refuses unless it is now past.

Order (each step's why in its function): job lease (one runner per identical command) -> the
cluster's restore lease (one restore per target cluster: cluster_lease) -> job
record (resume: same restore ts, restored file parts skipped) -> backupmeta read and checked by
an agent (the coordinator opens no storage) -> target must be empty in the restored ranges ->
every object listed with its recorded size -> one restore ts from PD for the whole job ->
split at every file boundary, scatter -> per-region download on every peer, then ingest on the
leader (follow.engine with follow.restore_book) -> checksum of every range against backupmeta -> summary.
"""
from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from br_common.backupmeta import meta as backupmeta
from br_common.backupmeta import seal as backupmeta_seal
from br_common.backupmeta.kind import BackupKind, rules
from br_common.checksum import Checksum
from br_common.fleet import messages as m
from br_common.fleet import restore_messages as rm
from br_common.fleet.app import make_app
from br_common.fleet.jobs import JobSpec, JobState, RangeRecord
from br_common.fleet.registry import Registry
from br_common.kvproto import brpb_pb2
from br_common import pd_admin
from br_common.pd_client import PDClient, RegionInfo
from br_common.tikv_client import RawKVClient
from br_common.tso import physical_ms, ts_time
from br_common.txn_checksum import TxnChecksum
from br_coordinator import cluster_lease, flags, restore_base
from br_coordinator import restore_plan as plan
from br_coordinator.errors import CommandError
from br_coordinator.follow.agents import FollowConfig, check_agents
from br_coordinator.follow.book import Send
from br_coordinator.follow.engine import FollowEngine, FollowStats, Outgoing
from br_coordinator.follow.resolvers import RestoreResolver
from br_coordinator.follow.restore_book import DOWNLOAD, Ingest, RestoreBook
from br_coordinator.follow.storage_book import call_storage
from br_coordinator.restore_discard import StagedDiscard, discard_unconsumed
from br_coordinator.job_options import CHECKSUM_CONCURRENCY, RestoreOptions
from br_coordinator.job_runner import Connections, JobRunner, connections
from br_coordinator.progress import JobProgress, human_bytes, print_summary

log = logging.getLogger("br.restore")


def run_full(args: argparse.Namespace) -> int:
    return run(args, None)


def run_raw(args: argparse.Namespace) -> int:
    return run(args, flags.raw_range(args, "raw backups"), BackupKind.RAW)


def run_txn(args: argparse.Namespace) -> int:
    return run(args, flags.key_range(args), BackupKind.TXN)


def run(args: argparse.Namespace, wanted: m.KeyRange | None, only_kind: BackupKind | None = None) -> int:
    options = RestoreOptions.from_args(args, wanted, only_kind)
    with connections(args, errors=(plan.PlanError,)) as conn:
        return Restore(options, conn).run()


# --- the job ------------------------------------------------------------------------------------
@dataclass
class Restore:
    options: RestoreOptions
    conn: Connections

    def __post_init__(self) -> None:
        self.wanted = self.options.wanted
        self.specs, self.settings, self.pd = self.conn.specs, self.conn.settings, self.conn.pd
        self.app = make_app(self.settings.broker, self.settings)
        self.registry = Registry(self.conn.redis)
        self._call_storage = partial(call_storage, self.app, self.pd, self.registry)
        spec = JobSpec(kind="restore", cluster_id=self.pd.cluster_id, storage_url=self.specs.url,
                       ranges=[self.wanted or m.KeyRange()], options={"full": self.wanted is None})
        # a restore holds no GC safe point: a rerun resumes it for as long as its record is kept
        self.runner = JobRunner(self.conn.redis, spec, self.settings.job_ttl_days, "restore",
                                resumable_for=self.settings.job_ttl_days * 86400)
        self.jobs, self.lease = self.runner.jobs, self.runner.lease
        self.cluster_lease = cluster_lease.restore_lease(self.conn.redis, self.pd.cluster_id, self.job_id)
        self.started = time.monotonic()
        self._spec: tuple[float, m.StorageSpec] | None = None
        self.kind = BackupKind.RAW  # what the backup holds: set from its backupmeta

    @property
    def job_id(self) -> str:
        return self.jobs.job_id

    def run(self) -> int:
        try:
            return self.runner.run(lambda previous, _state: self._run(previous),
                                   refuse=lambda _previous: cluster_lease.take(self.cluster_lease, self.pd.cluster_id,
                                                                              self.job_id))
        finally:
            self.cluster_lease.release()  # only if this run holds it

    def _run(self, previous: JobState | None) -> int:
        self._check_agents()
        meta = self._read_meta()
        ranges = plan.restore_ranges(backupmeta.ranges(meta), self.wanted)
        parts = plan.select_parts(backupmeta.files(meta), ranges)
        done = self.jobs.ranges()
        todo = _not_done(parts, done)
        resuming = previous is not None and previous.job_ts != 0  # an earlier run fixed the restore ts
        log.info("restore job %s of %s into cluster %d: %d files, %d ranges%s", self.job_id, self.specs.url,
                 self.pd.cluster_id, len(parts), len(ranges),
                 f" (resuming: {len(done)} file parts restored)" if resuming else "")
        if _incremental(meta):
            restore_base.check_base(self.conn.redis, self.pd.cluster_id, meta, f"{self.specs.url}/backupmeta")
        elif not resuming:
            self._check_empty(ranges)  # an incremental applies onto its base: the target holds data
        self._check_objects(todo)
        restore_ts = self._restore_ts(meta)
        regions = self._prepare_regions(todo, ranges)
        book, stats = self._follow(todo, regions, restore_ts)
        verified = self._verify(ranges, meta)
        if not rules(self.kind).is_raw_kv and self.wanted is None:  # the whole backup is in: a base now
            restore_base.record(self.conn.redis, self.pd.cluster_id, meta)
        self.jobs.finish("done")
        self._summary(meta, parts, restore_ts, book, stats, verified, resumed=resuming)
        return 0

    # --- before any change ---------------------------------------------------------------------------
    def _check_agents(self) -> None:
        """After scatter any store may hold a peer: each needs a live agent that accepts the URL
        and trusts our signing key (as backup checks)."""
        stores = {store.id for store in self.pd.stores()}
        check_agents(self.registry.alive(self.pd.cluster_id), self.specs, self.app.signer, stores, self.pd)

    def _read_meta(self) -> brpb_pb2.BackupMeta:
        """An agent reads and checks backupmeta with its own credentials; we check it again by the
        same rules (br_common.backupmeta), and against its seal, rather than trust what came over
        the broker."""
        task = m.ReadBackupMetaTask(storage=self._storage_spec())
        result = self._call_storage(m.READ_BACKUPMETA, task, m.ReadBackupMetaResult,
                                    shadow=f"read backupmeta job={self.job_id} {self.specs.url}")
        where = f"{self.specs.url}/backupmeta"
        try:
            meta = backupmeta.parse(result.backupmeta, where)
            ours = meta.br_version.startswith(backupmeta.BR_VERSION_PREFIX)
            warning = backupmeta_seal.check(result.backupmeta, result.seal, ours, self.app.signer, where)
        except backupmeta.MetaError as exc:
            raise CommandError(str(exc)) from None
        if warning:
            log.warning("%s", warning)
        self.kind = backupmeta.kind_of(meta)
        _check_verb(self.options.only_kind, self.kind, where)
        return meta

    def _check_empty(self, ranges: list[m.KeyRange]) -> None:
        """Refuse to mix a backup into live data unless the operator says so."""
        for r in ranges:
            found = self._some_key(r)
            if not found:
                continue
            if self.options.allow_non_empty:
                log.warning("the target holds keys in %s (%s): restoring over them (--allow-non-empty)",
                            r.label(), found)
                continue
            raise CommandError(f"the target cluster already holds keys in {r.label()} ({found}): "
                               "restore into an empty cluster, or pass --allow-non-empty to overwrite")

    def _some_key(self, r: m.KeyRange) -> str:
        """What the target holds in r, in the backup's key space ("": nothing)."""
        if rules(self.kind).is_raw_kv:
            with RawKVClient(self.pd) as kv:
                found = kv.scan(r.start, r.end, limit=1, key_only=True)
            return f"e.g. {found[0][0]!r}" if found else ""
        with TxnChecksum(self.pd) as txn:
            held = txn.checksum_at(r.start, r.end, self.pd.tso())
        return f"{held.total_kvs} committed keys" if held.total_kvs else ""

    def _restore_ts(self, meta: brpb_pb2.BackupMeta) -> int:
        """One ts for the job (the first run's wins: re-ingest is harmless); for a txn backup PD's TSO
        must already be past every restored commit ts, before anything is ingested."""
        if not rules(self.kind).is_raw_kv:
            ensure_tso_past(self.pd, meta.end_version, self.options.tso_patience)
        return self.jobs.fix_job_ts(self.pd.tso())

    def _check_objects(self, parts: list[rm.FilePart]) -> None:
        """Every file listed with its recorded size before anything is touched (s3:ListBucket only)."""
        objects = [rm.ObjectRef(name=p.file.name, size=p.file.size) for p in parts]
        if not objects:
            return
        task = rm.CheckObjectsTask(storage=self._storage_spec(), objects=objects)
        result = self._call_storage(rm.CHECK_OBJECTS, task, rm.CheckObjectsResult,
                                    shadow=f"check objects job={self.job_id} {self.specs.url}")
        if result.problems:
            more = f" (and {len(result.problems) - 1} more problems)" if len(result.problems) > 1 else ""
            raise CommandError(f"{result.problems[0]}{more}: nothing was restored from it")

    # --- regions -----------------------------------------------------------------------------------
    def _prepare_regions(self, parts: list[rm.FilePart], ranges: list[m.KeyRange]) -> list[RegionInfo]:
        """Split at every part boundary, then scatter, so ingest spreads over all stores."""
        if not parts:
            return []
        keys = plan.split_keys(parts, rules(self.kind))
        batch = self.options.split_batch
        for i in range(0, len(keys), batch):
            self.pd.split_regions(keys[i:i + batch])
        regions = self._regions(ranges)
        failed = self.pd.scatter_regions([r.id for r in regions], group=f"br-restore-{self.job_id}")
        if failed:
            log.warning("PD could not scatter %d of %d regions; ingest may be uneven", len(failed), len(regions))
        regions = self._regions(ranges)
        log.info("split at %d keys and scattered %d regions over %d stores", len(keys), len(regions),
                 len({p.store_id for r in regions for p in r.region.peers}))
        return regions

    def _regions(self, ranges: list[m.KeyRange]) -> list[RegionInfo]:
        kind_rules = rules(self.kind)
        return [info for r in ranges for info in self.pd.scan_regions(*kind_rules.pd_bounds(r.start, r.end))]

    # --- the work ----------------------------------------------------------------------------------
    def _follow(self, parts: list[rm.FilePart], regions: list[RegionInfo],
                restore_ts: int) -> tuple[RestoreBook, FollowStats]:
        book = RestoreBook(parts, plan.assign_regions(parts, regions, self.job_id, rules(self.kind)))
        progress = JobProgress(f"restore {self.job_id}", unit="files")
        config = FollowConfig(concurrency=self.options.concurrency)
        engine = FollowEngine(self.app, self.pd, self.registry, book,
                              lambda attempt, send: self._region_task(attempt, send, restore_ts), config,
                              RestoreResolver(self.pd, book, self.job_id, self.kind), self.jobs,
                              [self.lease, self.cluster_lease],
                              on_progress=lambda p: progress.update(*p))
        completed = False
        try:
            stats = engine.run()
            completed = True
        except BaseException:
            engine.cancel_all()
            raise
        finally:
            progress.close()
            discarded = discard_unconsumed(StagedDiscard(self.app, self.pd, self.registry, self.job_id), engine,
                                           book, self.options.discard_timeout, completed)
            if discarded:
                log.info("removed %d staged SSTs that this run will not ingest from the stores", discarded)
        return book, stats

    def _region_task(self, attempt: str, send: Send, restore_ts: int) -> Outgoing:
        """A region's download on one peer's store, or its ingest on the leader's."""
        if send.lane == DOWNLOAD:
            work = send.body
            assert isinstance(work, rm.RegionWork) and send.store_id is not None
            message: rm.DownloadTask | rm.IngestTask = rm.DownloadTask(
                job_id=self.job_id, attempt=attempt, cluster_id=self.pd.cluster_id, store_id=send.store_id,
                region=work.region, pieces=work.pieces, restore_ts=restore_ts, kind=self.kind,
                rate_limit=self.options.rate_limit, storage=self._storage_spec())
            name = rm.DOWNLOAD
        else:
            assert isinstance(send.body, Ingest) and send.store_id is not None
            work = send.body.work
            message = rm.IngestTask(job_id=self.job_id, attempt=attempt, cluster_id=self.pd.cluster_id,
                                    store_id=send.store_id, region=work.region, ssts=send.body.ssts)
            name = rm.INGEST
        shadow = f"restore {send.lane} job={self.job_id} store={send.store_id} region={work.region.id} " \
                 f"{len(work.pieces)} files"
        return Outgoing(name, message, shadow)

    def _storage_spec(self) -> m.StorageSpec:
        """Sealed to the live agents (with -c); one registry read per second, not one per task."""
        now = time.monotonic()
        if self._spec is None or now - self._spec[0] > self.options.spec_refresh:
            self._spec = (now, self.specs.for_agents(self.registry.alive(self.pd.cluster_id)))
        return self._spec[1]

    # --- after ---------------------------------------------------------------------------------------
    def _verify(self, ranges: list[m.KeyRange], meta: brpb_pb2.BackupMeta) -> bool:
        """The target's checksum of every restored range == XOR/sums of its files (backupmeta's
        numbers): RawChecksum for raw KV, the Coprocessor checksum at a fresh ts for txn KV."""
        if not self.options.checksum:
            log.warning("--checksum=false: the restore is not verified")
            return False
        if _incremental(meta):  # the target also holds the base: its checksum is not the files' (BR skips it)
            log.warning("an incremental restore is not verified by checksum: the target holds its base too")
            return False
        restored = [(r.range, Checksum(crc64xor=f.crc64xor, total_kvs=f.total_kvs, total_bytes=f.total_bytes))
                    for r in self.jobs.ranges() for f in r.files]
        expected = plan.expected_checksums(ranges, restored)
        log.info("every file ingested; verifying %d ranges by checksum", len(ranges))
        with self._checksum_client() as kv, ThreadPoolExecutor(CHECKSUM_CONCURRENCY) as pool:
            for (rng, want), got in zip(expected, pool.map(lambda item: kv(item[0]), expected)):
                if got != want:
                    raise CommandError(f"checksum mismatch in range {rng.label()}: the backup has {want}, "
                                       f"the restored cluster has {got}")
        log.info("checksum verified over %d ranges", len(ranges))
        return True

    @contextmanager
    def _checksum_client(self) -> Iterator[Callable[[m.KeyRange], Checksum]]:
        """range -> the target's checksum of it now, by the backup's kind."""
        if rules(self.kind).is_raw_kv:
            with RawKVClient(self.pd) as kv:
                yield lambda rng: kv.checksum(rng.start, rng.end)
            return
        with TxnChecksum(self.pd) as txn:
            read_ts = self.pd.tso()
            yield lambda rng: txn.checksum_at(rng.start, rng.end, read_ts)

    def _summary(self, meta: brpb_pb2.BackupMeta, parts: list[rm.FilePart], restore_ts: int, book: RestoreBook,
                 stats: FollowStats, verified: bool, resumed: bool) -> None:
        elapsed = time.monotonic() - self.started
        size = sum(p.file.size for p in parts)
        kvs = sum(f.total_kvs for r in self.jobs.ranges() for f in r.files)
        print_summary("Restore complete" + (" (resumed)" if resumed else ""), [
            ("storage", self.specs.url), ("job", self.job_id), ("cluster", str(self.pd.cluster_id)),
            ("backup_ts", f"{meta.end_version} ({ts_time(meta.end_version)})"),
            ("restore_ts", f"{restore_ts} ({ts_time(restore_ts)})"),
            ("files", str(len(parts))), ("size", f"{human_bytes(size)} ({size} bytes in SST files)"),
            ("kvs", str(kvs)), ("regions", str(book.regions)),
            ("checksum", "verified" if verified else
             "skipped" + ("" if self.options.checksum else " (--checksum=false)")),
            ("duration", f"{elapsed:.1f}s"),
            ("throughput", f"{human_bytes(book.bytes_downloaded / elapsed if elapsed else 0)}/s from storage "
                           f"({stats.retries} retries, {stats.resent_lost} resent after a lost agent)"),
        ])


def _incremental(meta: brpb_pb2.BackupMeta) -> bool:
    """BR's IsIncremental: changes after start_version, to apply onto a restored base."""
    return meta.start_version not in (0, meta.end_version)


def _check_verb(only_kind: BackupKind | None, kind: BackupKind, where: str) -> None:
    """`restore raw` takes raw backups, `restore txn` transactional ones (BR's ErrRestoreModeMismatch)."""
    if only_kind is None or only_kind is kind:
        return
    raise CommandError(f"{where} holds a {rules(kind).label} backup: `br restore {only_kind.value}` restores "
                       f"{rules(only_kind).label} backups only (use `br restore {kind.value}` or `br restore full`)")


def ensure_tso_past(pd: PDClient, ts: int, patience: float) -> None:
    """Return once PD's TSO is after ts (the backup's max commit ts), so that no new transaction
    commits below a restored one. Clocks of hosts differ by milliseconds: wait up to `patience`
    seconds; then ask PD to move its TSO past ts (reset-ts) and read it again to see that it did."""
    behind = _wait_tso_past(pd, ts, patience)
    if not behind:
        return
    lag = f"{(physical_ms(ts) - physical_ms(behind)) / 1000:.1f}s"
    yourself = (f"move PD's TSO past {ts} yourself (POST {pd_admin.RESET_TS_PATH} {{\"tso\": \"{ts + 1}\", "
                "\"force-use-larger\": true}) or fix PD's clock, then rerun")
    urls = list(pd.members().leader.client_urls)
    try:
        answer = pd_admin.reset_ts(urls, ts + 1, pd.tls)
    except pd_admin.PDAdminError as exc:
        raise CommandError(f"the target PD's TSO is {lag} behind the backup's end version {ts} and br could not move "
                           f"it: {exc}; {yourself}") from None
    now = pd.tso()
    if now <= ts:
        raise CommandError(f"the target PD's TSO is {lag} behind the backup's end version {ts} ({ts_time(ts)}) and PD "
                           f"did not move it (reset-ts: HTTP {answer.status} {answer.text}): new transactions would "
                           f"commit below restored ones; {yourself}")
    log.warning("the target PD's TSO was %s behind the backup's end version %d (%s): moved it past with PD's "
                "reset-ts (%s), now %d", lag, ts, ts_time(ts), answer.url, now)


def _wait_tso_past(pd: PDClient, ts: int, patience: float) -> int:
    """0 once PD's TSO is after ts within `patience` seconds; else the last TSO read (behind it)."""
    deadline = time.monotonic() + patience
    while (now := pd.tso()) <= ts:
        if time.monotonic() > deadline:
            return now
        time.sleep(0.1)
    return 0


def _not_done(parts: list[rm.FilePart], done: list[RangeRecord]) -> list[rm.FilePart]:
    restored = {(f.name, r.range.start) for r in done for f in r.files}
    return [p for p in parts if (p.file.name, p.range.start) not in restored]

