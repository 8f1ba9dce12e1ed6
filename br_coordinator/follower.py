"""Follows a job's Celery tasks until the key space is covered exactly once.

The loop (every `poll_interval`):
* dispatch: pending pieces are resolved through PD (planner) into per-store tasks; each store
  gets at most `concurrency` tasks in flight, sent to `br.<cluster>.store.<id>` under a fresh
  attempt id;
* poll: a SUCCESS records its covered pieces in the job state (the checkpoint) and puts its
  uncovered pieces (region errors) back as pending; a FAILURE puts the whole range back with
  backoff; after `max_attempts` the job fails naming the range and the last error;
* lost work (following.AgentWatch): a task STARTED by an agent instance that left the
  registry, or still PENDING after every agent alive at send time has gone, is resent at once
  under a new attempt; the old attempt is cancelled in Redis so a late redelivery does
  nothing, and its result is ignored.
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
from pydantic import Field

from br_common.fleet import messages as m
from br_common.fleet.app import send
from br_common.fleet.jobs import JobStore, Lease, RangeRecord
from br_common.fleet.queues import store_queue
from br_common.fleet.registry import Registry
from br_common.fleet.task_errors import failure_kind
from br_common.pd_client import PDClient, PDError
from br_coordinator.errors import CommandError
from br_coordinator.following import RUNNING_STATES, AgentWatch, FollowConfig, backoff, cancel_attempts, \
    cancel_earlier_runs, check_lease, error_text
from br_coordinator.planner import PlannedTask, plan_range

log = logging.getLogger(__name__)


class FollowerConfig(FollowConfig):
    max_attempts: int = Field(10, ge=1)  # per piece of the key space


@dataclass
class Work:
    range: m.KeyRange
    attempts: int = 0
    last_error: str = ""
    not_before: float = 0.0


@dataclass
class InFlight:
    work: Work
    planned: PlannedTask
    attempt: str
    result: AsyncResult
    agents_at_send: set[str]
    bytes_seen: int = 0


@dataclass
class Totals:
    done_regions: int = 0
    bytes_done: int = 0
    files_done: int = 0
    retries: int = 0
    resent_lost: int = 0


TaskFactory = Callable[[str, PlannedTask], m.BackupRangeTask]
ProgressHook = Callable[[int, int, int], None]  # (done regions, total regions, bytes)


@dataclass
class BackupFollower:
    app: Celery
    pd: PDClient
    registry: Registry
    jobs: JobStore
    lease: Lease
    make_task: TaskFactory
    config: FollowerConfig
    on_progress: ProgressHook = lambda done, total, nbytes: None
    totals: Totals = field(default_factory=Totals)
    pending: deque[Work] = field(default_factory=deque)
    ready: dict[int, deque[tuple[Work, PlannedTask]]] = field(default_factory=dict)
    in_flight: dict[str, InFlight] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.watch = AgentWatch(self.registry, self.pd, self.config)

    # --- main loop ----------------------------------------------------------------------------
    def run(self, todo: list[m.KeyRange]) -> Totals:
        cancel_earlier_runs(self.jobs)
        self.pending.extend(Work(r) for r in todo)
        while self.pending or self.in_flight or any(self.ready.values()):
            check_lease(self.lease, self.jobs.job_id)
            self.watch.refresh()
            self._plan_pending()
            self._dispatch()
            self._poll()
            self._report()
            time.sleep(self.config.poll_interval)
        return self.totals

    def cancel_all(self) -> None:
        cancel_attempts(self.jobs, list(self.in_flight), self.app)
        self.in_flight.clear()

    # --- planning and sending -------------------------------------------------------------------
    def _plan_pending(self) -> None:
        now = time.monotonic()
        for _ in range(len(self.pending)):
            work = self.pending.popleft()
            if work.not_before > now:
                self.pending.append(work)
                continue
            try:
                planned = plan_range(self.pd, work.range)
            except PDError as exc:
                self._retry(work, f"PD: {exc}")
                continue
            for task in planned:
                piece = Work(task.range, work.attempts, work.last_error)
                if task.store_id == 0:
                    self._retry(piece, f"no leader for the region at {task.range.label()}")
                else:
                    self.ready.setdefault(task.store_id, deque()).append((piece, task))

    def _dispatch(self) -> None:
        for store_id, queue in self.ready.items():
            if not queue:
                continue
            live = self.watch.of_store(store_id)
            if not live:
                continue
            busy = sum(1 for f in self.in_flight.values() if f.planned.store_id == store_id)
            while queue and busy < self.config.concurrency:
                work, task = queue.popleft()
                self._send(work, task, {a.instance for a in live})
                busy += 1

    def _send(self, work: Work, task: PlannedTask, agents: set[str]) -> None:
        attempt = uuid.uuid4().hex[:16]
        payload = self.make_task(attempt, task)
        shadow = f"backup job={self.jobs.job_id} store={task.store_id} {task.range.label()} " \
                 f"{task.regions} region{'s' if task.regions != 1 else ''}"
        queue = store_queue(self.pd.cluster_id, task.store_id)
        self.jobs.note_sent(attempt)
        result = send(self.app, m.BACKUP_RANGE, payload, queue=queue, shadow=shadow, task_id=attempt)
        self.in_flight[attempt] = InFlight(work, task, attempt, result, agents)
        log.debug("sent %s (attempt %s, %d regions)", shadow, attempt, task.regions)

    # --- following --------------------------------------------------------------------------------
    def _poll(self) -> None:
        for attempt, flight in list(self.in_flight.items()):
            state = flight.result.state
            if state == "SUCCESS":
                self._succeeded(flight, flight.result.result)
            elif state in ("FAILURE", "REVOKED"):
                self._failed(flight, error_text(flight.result), failure_kind(flight.result.result))
            elif self._lost(flight, state) and self.watch.still_lost(flight.result, flight.agents_at_send):
                self.totals.resent_lost += 1
                self._abandon(flight, f"agent lost while the task was {state.lower()}", count=False)

    def _succeeded(self, flight: InFlight, payload: object) -> None:
        del self.in_flight[flight.attempt]
        flight.result.forget()
        self.jobs.cancel_attempt(flight.attempt)  # done: a redelivery of it must not run again
        try:
            result = m.parse(m.BackupRangeResult, payload)
        except m.MessageError as exc:
            self._retry(flight.work, str(exc))
            return
        if result.skipped:
            self._retry(flight.work, f"agent skipped the task: {result.skipped}")
            return
        for piece in result.covered:
            self.jobs.add_range(RangeRecord(range=piece.range, files=piece.files))
            self.totals.done_regions += 1
            self.totals.files_done += len(piece.files)
            self.totals.bytes_done += sum(f.size for f in piece.files)
        for gap in result.uncovered:
            log.info("range %s uncovered on store %d: %s; re-resolving", gap.range.label(), result.store_id,
                     gap.reason)
            self._retry(Work(gap.range, flight.work.attempts, flight.work.last_error), gap.reason)

    def _failed(self, flight: InFlight, error: str, kind: str = "retryable") -> None:
        if kind == "refused":  # the agent's configuration, not the range: retrying cannot help
            raise CommandError(error)
        log.warning("backup of %s on store %d failed: %s", flight.planned.range.label(), flight.planned.store_id,
                    error)
        self._abandon(flight, error, count=True)

    def _abandon(self, flight: InFlight, reason: str, count: bool) -> None:
        self.in_flight.pop(flight.attempt, None)
        self.jobs.cancel_attempt(flight.attempt)
        if count:
            self._retry(Work(flight.planned.range, flight.work.attempts, flight.work.last_error), reason)
        else:  # not the range's fault: resend now, without spending an attempt
            log.warning("resending %s: %s", flight.planned.label(), reason)
            self.pending.append(Work(flight.planned.range, flight.work.attempts, reason))

    def _retry(self, work: Work, reason: str) -> None:
        attempts = work.attempts + 1
        if attempts >= self.config.max_attempts:
            raise CommandError(f"backup of range {work.range.label()} failed after {attempts} attempts; "
                               f"last error: {reason}")
        self.totals.retries += 1
        self.pending.append(Work(work.range, attempts, reason, time.monotonic() + backoff(self.config, attempts - 1)))

    def _lost(self, flight: InFlight, state: str) -> bool:
        if state in RUNNING_STATES and isinstance(flight.result.info, dict):
            flight.bytes_seen = int(flight.result.info.get("bytes_uploaded", flight.bytes_seen) or 0)
        return self.watch.lost(state, flight.result.info, flight.agents_at_send)

    # --- progress ---------------------------------------------------------------------------------
    def _report(self) -> None:
        queued = sum(t.regions for q in self.ready.values() for _, t in q)
        flying = sum(f.planned.regions for f in self.in_flight.values())
        total = self.totals.done_regions + queued + flying + len(self.pending)
        nbytes = self.totals.bytes_done + sum(f.bytes_seen for f in self.in_flight.values())
        self.on_progress(self.totals.done_regions, total, nbytes)

