"""`br restore full|raw`: read a backup through an agent, split and scatter the target's regions,
have every peer's agent download the files and every leader's agent ingest them, verify.

Order (each step's why in its function): job lease (one runner per identical command) -> job
record (resume: same restore ts, restored file parts skipped) -> backupmeta read and checked by
an agent (the coordinator opens no storage) -> target must be empty in the restored ranges ->
every object listed with its recorded size -> one restore ts from PD for the whole job ->
split at every file boundary, scatter -> per-region download on every peer, then ingest on the
leader (RestoreFollower) -> checksum of every range against backupmeta -> summary.
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from celery import Celery
from celery.result import AsyncResult
from pydantic import BaseModel, Field

from br_common.checksum import Checksum
from br_common.fleet import messages as m
from br_common.fleet import redis_client
from br_common.fleet import restore_messages as rm
from br_common.fleet.app import make_app, send
from br_common.fleet.config import FleetSettings
from br_common.fleet.jobs import JobSpec, JobState, JobStore, Lease, RangeRecord
from br_common.fleet.queues import store_queue
from br_common.fleet.registry import AgentInfo, Registry
from br_common.kvproto import brpb_pb2
from br_common.pd_client import PDClient, PDError, RegionInfo
from br_common.storage import LocalLocation, S3Location, parse_storage_url
from br_common.tikv_client import RawKVClient, RawKVError
from br_common.tso import physical_ms
from br_coordinator import flags, logging_setup
from br_coordinator import restore_plan as plan
from br_coordinator.errors import CommandError
from br_coordinator.follower import no_agent_message
from br_coordinator.progress import BackupProgress, human_bytes, print_summary
from br_coordinator.storage_jobs import call_storage
from br_coordinator.storage_spec import StorageSpecs

log = logging.getLogger("br.restore")

LEASE_TTL_MS = 30_000
SPLIT_BATCH = 1024  # split keys per SplitRegions call
SPEC_REFRESH = 1.0  # seconds a StorageSpec (sealed to the agents alive then) is reused
RUNNING_STATES = ("STARTED", "PROGRESS", "RETRY")


# --- CLI ----------------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    restore = subparsers.add_parser("restore", help="restore a TiKV cluster from a backup",
                                    description="restore a backup from S3 (or a local directory every agent "
                                                "reaches) into a TiKV cluster, through the br-agent beside "
                                                "each store")
    commands = restore.add_subparsers(dest="restore_command", metavar="<command>", title="Available Commands")
    commands.required = True
    parents = [flags.common_parser(), _restore_parser()]
    full = commands.add_parser("full", parents=parents, help="restore all the backed-up key space",
                               description="restore every range of a (raw) backup",
                               epilog='Example: br restore full --pd "${PDIP}:2379" '
                                      '--storage "s3://${Bucket}/${Folder}" --ratelimit 128 --log-file restore.log')
    full.set_defaults(func=run_full)
    raw = commands.add_parser("raw", parents=[*parents, _raw_parser()], help="restore a raw kv range to TiKV cluster",
                              description="(experimental) restore the part of a raw backup inside [--start, --end)")
    raw.set_defaults(func=run_raw)


def _restore_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("Restore Flags")
    group.add_argument("--allow-non-empty", type=flags.parse_bool, nargs="?", const=True, default=False,
                       metavar="BOOL", help="restore even when the target already holds keys in the restored "
                                            "ranges: the backup's keys are written over them, the others stay "
                                            "(and then fail --checksum, which compares whole ranges) "
                                            "(default false)")
    return parser


def _raw_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("Raw Flags")
    group.add_argument("--start", default="", help="restore raw kv start key, key is inclusive")
    group.add_argument("--end", default="", help="restore raw kv end key, key is exclusive (empty: to the end)")
    group.add_argument("--format", default="hex", choices=["raw", "escaped", "escape", "hex"],
                       help='start/end key format, support raw|escaped|hex (default "hex")')
    group.add_argument("--cf", default="default", help='restore specify cf, correspond to tikv cf (default "default")')
    return parser


def run_full(args: argparse.Namespace) -> int:
    return run(args, None)


def run_raw(args: argparse.Namespace) -> int:
    fmt = "escaped" if args.format == "escape" else args.format
    try:
        start, end = flags.parse_key(args.start, fmt), flags.parse_key(args.end, fmt)
    except argparse.ArgumentTypeError as exc:
        raise CommandError(str(exc)) from None
    if end and end <= start:
        raise CommandError("--end must be greater than --start (or empty for the end of the key space)")
    if args.cf != "default":
        raise CommandError(f"--cf {args.cf}: raw backups hold only the default cf")
    return run(args, m.KeyRange(start=start, end=end))


def run(args: argparse.Namespace, wanted: m.KeyRange | None) -> int:
    if not args.storage:
        raise CommandError("the storage is required: -s/--storage s3://bucket/prefix or local:///path")
    specs = StorageSpecs(_location(args), args.send_credentials_to_tikv)
    logging_setup.setup(args.log_level, args.log_file, quiet_console=sys.stderr.isatty(), secrets=specs.secrets())
    settings = FleetSettings(broker=flags.resolve_broker(args))
    client = redis_client(settings.broker)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CommandError(f"cannot reach the broker (--broker / BR_BROKER): {exc}") from None
    try:
        pd = PDClient(args.pd)
    except PDError as exc:
        raise CommandError(str(exc)) from None
    try:
        return Restore(args, wanted, specs, settings, pd, client).run()
    except (PDError, RawKVError, redis.RedisError, plan.PlanError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        pd.close()


def _location(args: argparse.Namespace) -> S3Location | LocalLocation:
    try:
        return parse_storage_url(args.storage, flags.s3_flags(args))
    except ValueError as exc:
        raise CommandError(f"invalid --storage: {exc}") from None


# --- the job ------------------------------------------------------------------------------------
@dataclass
class Restore:
    args: argparse.Namespace
    wanted: m.KeyRange | None
    specs: StorageSpecs
    settings: FleetSettings
    pd: PDClient
    redis: redis.Redis

    def __post_init__(self) -> None:
        self.app = make_app(self.settings.broker, self.settings)
        self.registry = Registry(self.redis)
        self.spec = JobSpec(kind="restore", cluster_id=self.pd.cluster_id, storage_url=self.specs.url,
                            ranges=[self.wanted or m.KeyRange()], options={"full": self.wanted is None})
        self.jobs = JobStore(self.redis, self.spec.job_id(), self.settings.job_ttl_days)
        self.lease = Lease(self.redis, self.jobs.lease_key, LEASE_TTL_MS)
        self.started = time.monotonic()
        self._spec: tuple[float, m.StorageSpec] | None = None

    @property
    def job_id(self) -> str:
        return self.jobs.job_id

    def run(self) -> int:
        self._take_lease()
        try:
            previous = self.jobs.load()
            self.jobs.create(self.spec)
            return self._run(previous)
        except BaseException as exc:
            self.jobs.finish("failed", _one_line(exc))
            raise
        finally:
            self.lease.release()

    def _take_lease(self) -> None:
        if self.lease.acquire():
            self.lease.start_keepalive()
            return
        holder, left = self.lease.holder() or "?", self.lease.remaining_ms() / 1000
        raise CommandError(f"the same restore (job {self.job_id}) is already running (coordinator {holder}); "
                           f"wait for it, or if it died, rerun in {left:.0f}s to resume it")

    def _run(self, previous: JobState | None) -> int:
        self._check_agents()
        meta = self._read_meta()
        ranges = plan.restore_ranges(plan.backup_ranges(meta), self.wanted)
        parts = plan.select_parts(plan.meta_files(meta), ranges)
        done = self.jobs.ranges()
        todo = _not_done(parts, done)
        # JobState.backup_ts holds a restore job's restore ts: set once an earlier run got that far
        resuming = previous is not None and previous.backup_ts != 0
        log.info("restore job %s of %s into cluster %d: %d files, %d ranges%s", self.job_id, self.specs.url,
                 self.pd.cluster_id, len(parts), len(ranges),
                 f" (resuming: {len(done)} file parts restored)" if resuming else "")
        if not resuming:
            self._check_empty(ranges)
        self._check_objects(todo)
        restore_ts = self.jobs.fix_backup_ts(self.pd.tso())  # the first run's ts wins: re-ingest is harmless
        regions = self._prepare_regions(todo, ranges)
        stats = self._follow(todo, regions, restore_ts)
        verified = self._verify(ranges)
        self.jobs.finish("done")
        self._summary(meta, parts, restore_ts, stats, verified, resumed=resuming)
        return 0

    # --- before any change ---------------------------------------------------------------------------
    def _check_agents(self) -> None:
        """After scatter any store may hold a peer: each needs a live agent that accepts the URL."""
        agents = self.registry.alive()
        self.specs.check_allowed(agents)
        served = {a.store_id for a in agents}
        for store in sorted(self.pd.stores(), key=lambda s: s.id):
            if store.id not in served:
                raise CommandError(no_agent_message(self.pd, store.id))

    def _read_meta(self) -> brpb_pb2.BackupMeta:
        """An agent reads and validates backupmeta with its own credentials; we check what we restore."""
        task = m.ReadBackupMetaTask(storage=self._storage_spec())
        result = call_storage(self.app, self.registry, m.READ_BACKUPMETA, task, m.ReadBackupMetaResult,
                              shadow=f"read backupmeta job={self.job_id} {self.specs.url}")
        meta = brpb_pb2.BackupMeta()
        meta.ParseFromString(result.backupmeta)
        try:
            plan.check_meta(meta)
        except plan.PlanError as exc:
            raise CommandError(f"{self.specs.url}: {exc}") from None
        return meta

    def _check_empty(self, ranges: list[m.KeyRange]) -> None:
        """Refuse to mix a backup into live data unless the operator says so."""
        with RawKVClient(self.pd) as kv:
            for r in ranges:
                found = kv.scan(r.start, r.end, limit=1, key_only=True)
                if not found:
                    continue
                if self.args.allow_non_empty:
                    log.warning("the target holds keys in %s (e.g. %r): restoring over them (--allow-non-empty)",
                                r.label(), found[0][0])
                    continue
                raise CommandError(f"the target cluster already holds keys in {r.label()} (e.g. {found[0][0]!r}): "
                                   "restore into an empty cluster, or pass --allow-non-empty to overwrite")

    def _check_objects(self, parts: list[rm.FilePart]) -> None:
        """Every file listed with its recorded size before anything is touched (s3:ListBucket only)."""
        objects = [rm.ObjectRef(name=p.file.name, size=p.file.size) for p in parts]
        if not objects:
            return
        task = rm.CheckObjectsTask(storage=self._storage_spec(), objects=objects)
        result = call_storage(self.app, self.registry, rm.CHECK_OBJECTS, task, rm.CheckObjectsResult,
                              shadow=f"check objects job={self.job_id} {self.specs.url}")
        if result.problems:
            more = f" (and {len(result.problems) - 1} more problems)" if len(result.problems) > 1 else ""
            raise CommandError(f"{result.problems[0]}{more}: nothing was restored from it")

    # --- regions -----------------------------------------------------------------------------------
    def _prepare_regions(self, parts: list[rm.FilePart], ranges: list[m.KeyRange]) -> list[RegionInfo]:
        """Split at every part boundary, then scatter, so ingest spreads over all stores."""
        if not parts:
            return []
        keys = plan.split_keys(parts)
        for i in range(0, len(keys), SPLIT_BATCH):
            self.pd.split_regions(keys[i:i + SPLIT_BATCH])
        regions = self._regions(ranges)
        failed = self.pd.scatter_regions([r.id for r in regions], group=f"br-restore-{self.job_id}")
        if failed:
            log.warning("PD could not scatter %d of %d regions; ingest may be uneven", len(failed), len(regions))
        regions = self._regions(ranges)
        log.info("split at %d keys and scattered %d regions over %d stores", len(keys), len(regions),
                 len({p.store_id for r in regions for p in r.region.peers}))
        return regions

    def _regions(self, ranges: list[m.KeyRange]) -> list[RegionInfo]:
        return [info for r in ranges for info in self.pd.scan_regions(r.start, r.end)]

    # --- the work ----------------------------------------------------------------------------------
    def _follow(self, parts: list[rm.FilePart], regions: list[RegionInfo], restore_ts: int) -> "FollowStats":
        works = plan.assign_regions(parts, regions, self.job_id)
        book = plan.RestoreBook(parts)
        progress = BackupProgress(f"restore {self.job_id}")
        follower = RestoreFollower(
            app=self.app, pd=self.pd, registry=self.registry, jobs=self.jobs, lease=self.lease, book=book,
            make_download=lambda attempt, store, work: self._download_task(attempt, store, work, restore_ts),
            make_ingest=lambda attempt, store, work, ssts: self._ingest_task(attempt, store, work, ssts),
            config=FollowConfig(concurrency=self.args.concurrency),
            on_part=lambda done: self._part_done(done),
            on_progress=lambda done_bytes, done_parts: progress.update(done_parts, len(parts), done_bytes))
        try:
            stats = follower.run(works)
        except BaseException:
            follower.cancel_all()
            raise
        finally:
            progress.close()
        return stats

    def _download_task(self, attempt: str, store_id: int, work: rm.RegionWork, restore_ts: int) -> rm.DownloadTask:
        return rm.DownloadTask(job_id=self.job_id, attempt=attempt, cluster_id=self.pd.cluster_id,
                               store_id=store_id, region=work.region, pieces=work.pieces, restore_ts=restore_ts,
                               rate_limit=flags.rate_limit_bytes(self.args), storage=self._storage_spec())

    def _ingest_task(self, attempt: str, store_id: int, work: rm.RegionWork,
                     ssts: list[rm.StagedPiece]) -> rm.IngestTask:
        return rm.IngestTask(job_id=self.job_id, attempt=attempt, cluster_id=self.pd.cluster_id,
                             store_id=store_id, region=work.region, ssts=ssts)

    def _part_done(self, done: plan.PartDone) -> None:
        """The checkpoint: the part's range, and the file with the checksum of what was restored."""
        restored = done.file.model_copy(update={"crc64xor": done.checksum.crc64xor,
                                                "total_kvs": done.checksum.total_kvs,
                                                "total_bytes": done.checksum.total_bytes})
        self.jobs.add_range(RangeRecord(range=done.range, files=[restored]))

    def _storage_spec(self) -> m.StorageSpec:
        """Sealed to the live agents (with -c); one registry read per second, not one per task."""
        now = time.monotonic()
        if self._spec is None or now - self._spec[0] > SPEC_REFRESH:
            self._spec = (now, self.specs.for_agents(self.registry.alive()))
        return self._spec[1]

    # --- after ---------------------------------------------------------------------------------------
    def _verify(self, ranges: list[m.KeyRange]) -> bool:
        """RawChecksum of every restored range == XOR/sums of its files (backupmeta's numbers)."""
        if not self.args.checksum:
            log.warning("--checksum=false: the restore is not verified")
            return False
        restored = [(r.range, Checksum(crc64xor=f.crc64xor, total_kvs=f.total_kvs, total_bytes=f.total_bytes))
                    for r in self.jobs.ranges() for f in r.files]
        with RawKVClient(self.pd) as kv:
            for rng, want in plan.expected_checksums(ranges, restored):
                got = kv.checksum(rng.start, rng.end)
                if got != want:
                    raise CommandError(f"checksum mismatch in range {rng.label()}: the backup has {want}, "
                                       f"the restored cluster has {got}")
        log.info("checksum verified over %d ranges", len(ranges))
        return True

    def _summary(self, meta: brpb_pb2.BackupMeta, parts: list[rm.FilePart], restore_ts: int, stats: "FollowStats",
                 verified: bool, resumed: bool) -> None:
        elapsed = time.monotonic() - self.started
        size = sum(p.file.size for p in parts)
        kvs = sum(f.total_kvs for r in self.jobs.ranges() for f in r.files)
        print_summary("Restore complete" + (" (resumed)" if resumed else ""), [
            ("storage", self.specs.url), ("job", self.job_id), ("cluster", str(self.pd.cluster_id)),
            ("backup_ts", f"{meta.end_version} ({_ts_time(meta.end_version)})"),
            ("restore_ts", f"{restore_ts} ({_ts_time(restore_ts)})"),
            ("files", str(len(parts))), ("size", f"{human_bytes(size)} ({size} bytes in SST files)"),
            ("kvs", str(kvs)), ("regions", str(stats.regions)),
            ("checksum", "verified" if verified else "skipped (--checksum=false)"),
            ("duration", f"{elapsed:.1f}s"),
            ("throughput", f"{human_bytes(stats.bytes_downloaded / elapsed if elapsed else 0)}/s from storage "
                           f"({stats.retries} retries, {stats.resent_lost} resent after a lost agent)"),
        ])


def _not_done(parts: list[rm.FilePart], done: list[RangeRecord]) -> list[rm.FilePart]:
    restored = {(f.name, r.range.start) for r in done for f in r.files}
    return [p for p in parts if (p.file.name, p.range.start) not in restored]


# --- following the tasks ---------------------------------------------------------------------------
class FollowConfig(BaseModel):
    concurrency: int = Field(4, ge=1)  # tasks in flight per store
    backoff_base: float = 0.2
    backoff_cap: float = 5.0
    poll_interval: float = 0.05
    agent_wait: float = Field(60.0, ge=0)  # how long a store may have no live agent
    registry_refresh: float = 1.0


@dataclass
class FollowStats:
    regions: int = 0
    parts_done: int = 0
    bytes_downloaded: int = 0
    retries: int = 0
    resent_lost: int = 0


@dataclass
class Flight:
    attempt: str
    kind: str  # "download" | "ingest"
    work_id: int
    store_id: int
    result: AsyncResult
    agents_at_send: set[str]


DownloadFactory = Callable[[str, int, rm.RegionWork], rm.DownloadTask]
IngestFactory = Callable[[str, int, rm.RegionWork, list[rm.StagedPiece]], rm.IngestTask]


@dataclass
class RestoreFollower:
    """Carries out RestoreBook's actions over Celery: per-store queues, bounded in flight, redo."""

    app: Celery
    pd: PDClient
    registry: Registry
    jobs: JobStore
    lease: Lease
    book: plan.RestoreBook
    make_download: DownloadFactory
    make_ingest: IngestFactory
    config: FollowConfig
    on_part: Callable[[plan.PartDone], None]
    on_progress: Callable[[int, int], None]
    stats: FollowStats = field(default_factory=FollowStats)
    ready: dict[int, deque[plan.SendDownload | plan.SendIngest]] = field(default_factory=dict)
    in_flight: dict[str, Flight] = field(default_factory=dict)
    redos: list[tuple[float, plan.Redo]] = field(default_factory=list)
    _agents: dict[str, AgentInfo] = field(default_factory=dict)
    _agents_at: float = 0.0
    _no_agent_since: dict[int, float] = field(default_factory=dict)
    _part_bytes: int = 0

    def run(self, works: list[rm.RegionWork]) -> FollowStats:
        self.stats.regions = len(works)
        for work in works:
            self._apply(self.book.add(work))
        while not self.book.done or self.in_flight:
            if self.lease.lost.is_set():
                raise CommandError(f"lost the lease of job {self.jobs.job_id} (another coordinator took it?)")
            self._refresh_agents()
            self._due_redos()
            self._dispatch()
            self._poll()
            self.on_progress(self._part_bytes, self.stats.parts_done)
            time.sleep(self.config.poll_interval)
        return self.stats

    def cancel_all(self) -> None:
        """On failure/interrupt: agents skip what they have not started."""
        for flight in list(self.in_flight.values()):
            self.jobs.cancel_attempt(flight.attempt)
        self.in_flight.clear()

    # --- actions ---------------------------------------------------------------------------------
    def _apply(self, actions: list[plan.Action]) -> None:
        for action in actions:
            if isinstance(action, plan.Fail):
                raise CommandError(action.reason)
            if isinstance(action, plan.PartDone):
                self.on_part(action)
                self.stats.parts_done += 1
                self._part_bytes += action.file.size
            elif isinstance(action, plan.Redo):
                self._drop_flights(action.work_id)
                self.stats.retries += 1
                log.info("region %d: %s; re-resolving", action.work.region.id, action.reason)
                delay = min(self.config.backoff_cap, self.config.backoff_base * 2 ** self.book.tries(action.work_id))
                self.redos.append((time.monotonic() + delay * random.uniform(0.5, 1.0), action))
            else:
                self.ready.setdefault(action.store_id, deque()).append(action)

    def _due_redos(self) -> None:
        now = time.monotonic()
        due = [r for t, r in self.redos if t <= now]
        self.redos = [(t, r) for t, r in self.redos if t > now]
        for redo in due:
            self._apply(self._resolve(redo))

    def _resolve(self, redo: plan.Redo) -> list[plan.Action]:
        """Where the work's pieces live now: same peers -> ingest on the new leader; else redo."""
        work = redo.work
        try:
            if redo.ingest_only:
                info = self.pd.region_by_id(work.region.id)
                if info is not None and info.leader is not None:
                    current = plan.region_ref(info)
                    if current.same_placement(work.region):
                        return self.book.reingest(redo.work_id, current)
            regions = [info for p in work.pieces for info in self.pd.scan_regions(p.range.start, p.range.end)]
        except PDError as exc:
            return self._later(redo, f"PD: {exc}")
        if any(info.leader is None for info in regions):
            return self._later(redo, "a region has no leader yet")
        unique = list({info.id: info for info in regions}.values())
        new = plan.reassign(work.pieces, unique, self.jobs.job_id)
        self.stats.regions += len(new) - 1
        return self.book.replace(redo.work_id, new)

    def _later(self, redo: plan.Redo, reason: str) -> list[plan.Action]:
        """Resolution failed (PD down, no leader yet): try again later, counting an attempt."""
        if not self.book.bump(redo.work_id):
            return [plan.Fail(f"region {redo.work.region.id}: gave up re-resolving it: {reason}")]
        return [plan.Redo(redo.work_id, redo.work, reason, redo.ingest_only)]

    # --- sending -----------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Up to `concurrency` downloads AND as many ingests in flight per store: an ingest is short
        and frees the region's staged copies, so it never waits behind a wave of downloads."""
        for store_id, queue in self.ready.items():
            pending = [a for a in queue if self.book.is_current(a.work_id)]
            queue.clear()
            if not pending:
                continue
            live = [a for a in self._agents.values() if a.store_id == store_id]
            if not live:
                queue.extend(pending)
                self._require_agent_soon(store_id)
                continue
            self._no_agent_since.pop(store_id, None)
            agents = {a.instance for a in live}
            busy = {kind: sum(1 for f in self.in_flight.values() if f.store_id == store_id and f.kind == kind)
                    for kind in ("download", "ingest")}
            for action in pending:
                kind = "download" if isinstance(action, plan.SendDownload) else "ingest"
                if busy[kind] < self.config.concurrency:
                    self._send(action, agents)
                    busy[kind] += 1
                else:
                    queue.append(action)

    def _send(self, action: plan.SendDownload | plan.SendIngest, agents: set[str]) -> None:
        attempt = uuid.uuid4().hex[:16]
        region = action.work.region
        if isinstance(action, plan.SendDownload):
            kind, name, payload = "download", rm.DOWNLOAD, self.make_download(attempt, action.store_id, action.work)
        else:
            kind, name = "ingest", rm.INGEST
            payload = self.make_ingest(attempt, action.store_id, action.work, action.ssts)
        shadow = f"restore {kind} job={self.jobs.job_id} store={action.store_id} region={region.id} " \
                 f"{len(action.work.pieces)} files"
        result = send(self.app, name, payload, queue=store_queue(action.store_id), shadow=shadow, task_id=attempt)
        self.in_flight[attempt] = Flight(attempt, kind, action.work_id, action.store_id, result, agents)

    def _require_agent_soon(self, store_id: int) -> None:
        since = self._no_agent_since.setdefault(store_id, time.monotonic())
        if time.monotonic() - since > self.config.agent_wait:
            raise CommandError(no_agent_message(self.pd, store_id))

    def _drop_flights(self, work_id: int) -> None:
        """A redone work's other tasks are superseded: agents skip them, their results are ignored."""
        for attempt, flight in list(self.in_flight.items()):
            if flight.work_id == work_id:
                self.jobs.cancel_attempt(attempt)
                del self.in_flight[attempt]

    # --- following -----------------------------------------------------------------------------------
    def _poll(self) -> None:
        for attempt, flight in list(self.in_flight.items()):
            if attempt not in self.in_flight:
                continue  # dropped by a redo earlier in this round
            state = flight.result.state
            if state == "SUCCESS":
                del self.in_flight[attempt]
                self._apply(self._succeeded(flight, flight.result.result))
                flight.result.forget()
            elif state in ("FAILURE", "REVOKED"):
                del self.in_flight[attempt]
                self.jobs.cancel_attempt(attempt)
                self._apply(self.book.task_failed(flight.work_id, f"{flight.kind} on store {flight.store_id}: "
                                                                  f"{_error_text(flight.result)}"))
            elif self._lost(flight, state) and self._still_lost(flight):
                del self.in_flight[attempt]
                self.jobs.cancel_attempt(attempt)
                self.stats.resent_lost += 1
                log.warning("resending region %d's %s: the agent of store %d was lost",
                            self.book.work(flight.work_id).region.id, flight.kind, flight.store_id)
                self._apply(self.book.task_failed(flight.work_id, f"agent of store {flight.store_id} lost"))

    def _succeeded(self, flight: Flight, payload: object) -> list[plan.Action]:
        try:
            if flight.kind == "download":
                result = m.parse(rm.DownloadResult, payload)
                self.stats.bytes_downloaded += result.bytes_downloaded
            else:
                result = m.parse(rm.IngestResult, payload)
        except m.MessageError as exc:
            return self.book.task_failed(flight.work_id, str(exc))
        if result.skipped:
            return self.book.task_failed(flight.work_id, f"agent skipped the task: {result.skipped}")
        if isinstance(result, rm.DownloadResult):
            return self.book.downloaded(flight.work_id, flight.store_id, result)
        return self.book.ingested(flight.work_id, result)

    def _lost(self, flight: Flight, state: str) -> bool:
        if state in RUNNING_STATES:
            info = flight.result.info if isinstance(flight.result.info, dict) else {}
            worker, pid = info.get("hostname"), info.get("pid")
            if not worker:
                return False
            return not any(a.worker_name == worker and a.pid == pid for a in self._agents.values())
        # PENDING: queued, or prefetched by a worker; lost once every agent it could reach is gone
        return not (flight.agents_at_send & self._agents.keys())

    def _still_lost(self, flight: Flight) -> bool:
        """Re-check against a fresh registry read (a just-started agent may not be cached yet)."""
        self._agents_at = 0.0
        self._refresh_agents()
        return self._lost(flight, flight.result.state)

    def _refresh_agents(self) -> None:
        now = time.monotonic()
        if now - self._agents_at >= self.config.registry_refresh:
            self._agents = {a.instance: a for a in self.registry.alive()}
            self._agents_at = now


def _error_text(result: AsyncResult) -> str:
    error = result.result
    if isinstance(error, BaseException):
        return str(error) or type(error).__name__
    return str(error)


def _ts_time(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(physical_ms(ts) / 1000))


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
