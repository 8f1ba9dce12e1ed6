"""RestoreFollower: carries out RestoreBook's actions (restore_plan) over Celery.

Per store, up to `concurrency` downloads and as many ingests in flight, sent to the store's
queue under a fresh attempt id; a region error, failure or lost agent (following.AgentWatch)
becomes a Redo that re-resolves the region through PD after a backoff; a finished part is
handed to `on_part` (the job's checkpoint). An agent's allowlist refusal ends the restore at
once with the agent's one line (its configuration must change: retrying cannot help).
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from celery import Celery
from celery.result import AsyncResult

from br_common.fleet import messages as m
from br_common.fleet import restore_messages as rm
from br_common.fleet.app import send
from br_common.fleet.jobs import JobStore, Lease
from br_common.fleet.queues import store_queue
from br_common.fleet.registry import Registry
from br_common.fleet.task_errors import failure_kind
from br_common.pd_client import PDClient, PDError
from br_coordinator import restore_plan as plan
from br_coordinator.errors import CommandError
from br_coordinator.following import AgentWatch, FollowConfig, backoff, cancel_attempts, cancel_earlier_runs, \
    check_lease, error_text

log = logging.getLogger("br.restore")


class RestoreFollowConfig(FollowConfig):
    poll_interval: float = 0.05  # downloads and ingests are short: answer them quickly


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
    config: RestoreFollowConfig
    on_part: Callable[[plan.PartDone], None]
    on_progress: Callable[[int, int], None]
    stats: FollowStats = field(default_factory=FollowStats)
    ready: dict[int, deque[plan.SendDownload | plan.SendIngest]] = field(default_factory=dict)
    in_flight: dict[str, Flight] = field(default_factory=dict)
    redos: list[tuple[float, plan.Redo]] = field(default_factory=list)
    cancelled: list[AsyncResult] = field(default_factory=list)  # withdrawn while running: may still stage
    _part_bytes: int = 0

    def __post_init__(self) -> None:
        self.watch = AgentWatch(self.registry, self.pd, self.config)

    def run(self, works: list[rm.RegionWork]) -> FollowStats:
        cancel_earlier_runs(self.jobs)  # a killed run's download still running removes what it staged
        self.stats.regions = len(works)
        for work in works:
            self._apply(self.book.add(work))
        while not self.book.done or self.in_flight:
            check_lease(self.lease, self.jobs.job_id)
            self.watch.refresh()
            self._due_redos()
            self._dispatch()
            self._poll()
            self.on_progress(self._part_bytes, self.stats.parts_done)
            time.sleep(self.config.poll_interval)
        return self.stats

    def cancel_all(self) -> None:
        cancel_attempts(self.jobs, list(self.in_flight), self.app)
        self.cancelled += [f.result for f in self.in_flight.values()]
        self.in_flight.clear()

    def discard_unconsumed(self, timeout: float, completed: bool = False) -> int:
        """However the restore ends: each store's agent removes what was staged there and will never
        be ingested (a rerun stages its pieces afresh); once the job completed, every store also drops
        whatever any run of the job staged (a killed run's pieces under an epoch that changed since).
        Best effort within `timeout`, never raising (the restore's own outcome is what the operator
        must see); returns how many staged SSTs the agents removed."""
        deadline = time.monotonic() + timeout
        self._wait_cancelled(deadline)  # a withdrawn download already running still stages its pieces
        unconsumed = self.book.unconsumed()
        tag = plan.job_tag(self.jobs.job_id) if completed else b""
        try:
            # completed: every store with a live agent (one without cannot have staged anything)
            stores = {a.store_id for a in self.registry.alive(self.pd.cluster_id)} if completed else set(unconsumed)
            sent = [self._send_discard(store_id, unconsumed.get(store_id, set()), tag) for store_id in sorted(stores)]
        except Exception as exc:  # noqa: BLE001 - the broker is gone: nothing to send through
            log.warning("staged imports not discarded: %s", exc)
            return 0
        removed = 0
        for store_id, result in sent:
            try:
                answer = result.get(timeout=max(0.1, deadline - time.monotonic()))
                removed += m.parse(rm.DiscardResult, answer).removed
            except Exception as exc:  # noqa: BLE001
                log.warning("staged imports not discarded on store %d: %s", store_id, exc)
            finally:
                result.forget()
        return removed

    def _wait_cancelled(self, deadline: float) -> None:
        try:
            while any(not r.ready() for r in self.cancelled) and time.monotonic() < deadline:
                time.sleep(self.config.poll_interval)
        except Exception as exc:  # noqa: BLE001 - the broker is gone: discard what can be
            log.warning("could not follow the withdrawn tasks: %s", exc)

    def _send_discard(self, store_id: int, uuids: set[bytes], tag: bytes) -> tuple[int, AsyncResult]:
        task = rm.DiscardTask(job_id=self.jobs.job_id, cluster_id=self.pd.cluster_id, store_id=store_id,
                              uuids=sorted(uuids), job_tag=tag)
        shadow = f"restore discard job={self.jobs.job_id} store={store_id} {len(uuids)} staged"
        return store_id, send(self.app, rm.DISCARD, task, queue=store_queue(self.pd.cluster_id, store_id),
                              shadow=shadow)

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
                self.redos.append((time.monotonic() + backoff(self.config, self.book.tries(action.work_id)), action))
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
            live = self.watch.of_store(store_id)
            if not live:
                queue.extend(pending)
                continue
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
        queue = store_queue(self.pd.cluster_id, action.store_id)
        self.jobs.note_sent(attempt)
        result = send(self.app, name, payload, queue=queue, shadow=shadow, task_id=attempt)
        self.in_flight[attempt] = Flight(attempt, kind, action.work_id, action.store_id, result, agents)

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
                self._failed(flight, error_text(flight.result), failure_kind(flight.result.result))
            elif self._lost(flight, state) and self.watch.still_lost(flight.result, flight.agents_at_send):
                del self.in_flight[attempt]
                self.jobs.cancel_attempt(attempt)
                self.stats.resent_lost += 1
                log.warning("resending region %d's %s: the agent of store %d was lost",
                            self.book.work(flight.work_id).region.id, flight.kind, flight.store_id)
                self._apply(self.book.task_failed(flight.work_id, f"agent of store {flight.store_id} lost"))

    def _failed(self, flight: Flight, error: str, kind: str = "retryable") -> None:
        if kind == "refused":  # the agent's configuration, not the region: retrying cannot help
            raise CommandError(error)
        del self.in_flight[flight.attempt]
        self.jobs.cancel_attempt(flight.attempt)
        self._apply(self.book.task_failed(flight.work_id, f"{flight.kind} on store {flight.store_id}: {error}"))

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
        return self.watch.lost(state, flight.result.info, flight.agents_at_send)
