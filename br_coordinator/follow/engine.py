"""The one follow loop: carries out a book's actions over Celery until the book is done.

Every `poll_interval`:
* due resolves are handed to the job's resolver (PD lookups), which answers with the book's actions;
* queued sends go to their store's queue (`br.<cluster>.store.<id>`, or the cluster's storage
  queue), at most `concurrency` in flight per store and lane, each under a fresh attempt id that
  the job records (`note_sent`) so a later run can withdraw it;
* task states are read: SUCCESS and FAILURE go to the book; a failure of a kind no retry can help
  (task_errors.STOPS_THE_JOB: refused, integrity, fatal) stops the job at once with the agent's line;
* lost work (follow.agents.AgentWatch): a task STARTED by an agent instance that left the
  registry, or still queued after every agent alive at send time has gone, is withdrawn (a late
  redelivery does nothing) and handed to the book as lost.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import kombu.exceptions
import redis
from celery import Celery
from celery.result import AsyncResult
from pydantic import BaseModel

from br_common.fleet.app import send
from br_common.fleet.jobs import JobStore, Lease, RangeRecord
from br_common.fleet.queues import storage_queue, store_queue
from br_common.fleet.registry import Registry
from br_common.fleet.task_errors import STOPS_THE_JOB, failure_kind
from br_common.pd_client import PDClient
from br_coordinator.errors import CommandError
from br_coordinator.follow.agents import RUNNING_STATES, AgentWatch, FollowConfig, backoff, cancel_attempts, \
    cancel_earlier_runs, check_lease, error_text
from br_coordinator.follow.book import Action, Book, Checkpoint, Fail, Progress, Resolve, Send

log = logging.getLogger(__name__)

# the broker (Redis) went away: Redis' own errors, and kombu's when a publish gives up
BROKER_ERRORS = (redis.RedisError, kombu.exceptions.OperationalError)


@dataclass(frozen=True)
class Outgoing:
    """A task message as sent: Celery task name, its one model argument, and its Flower name."""

    name: str
    message: BaseModel
    shadow: str


_UNREAD = object()  # a flight's meta not read in the round's batch: ask its AsyncResult


class TaskMaker(Protocol):
    def __call__(self, attempt: str, send: Send) -> Outgoing: ...


Resolver = Callable[[Resolve], list[Action]]


@dataclass
class Flight:
    send: Send
    attempt: str
    result: AsyncResult
    agents_at_send: set[str]
    unlisted_since: float | None = None  # running by its state, not in its live agent's heartbeat
    tail: bool = False  # past its store stage (its progress says store_done): holds no store slot


@dataclass
class FollowStats:
    sent: int = 0
    retries: int = 0
    resent_lost: int = 0


def no_resolver(resolve: Resolve) -> list[Action]:
    raise AssertionError(f"this book never re-places its work (got {resolve})")


class FollowEngine:
    def __init__(self, app: Celery, pd: PDClient, registry: Registry, book: Book, tasks: TaskMaker,
                 config: FollowConfig, resolver: Resolver = no_resolver, jobs: JobStore | None = None,
                 leases: Sequence[Lease] = (), on_progress: Callable[[Progress], None] = lambda p: None,
                 title: str = "") -> None:
        self.app, self.pd, self.book, self.tasks, self.config = app, pd, book, tasks, config
        self.title = title or (f"job {jobs.job_id}" if jobs is not None else "the fleet's work")
        self.resolver, self.jobs, self.leases, self.on_progress = resolver, jobs, leases, on_progress
        self.watch = AgentWatch(registry, pd, config)
        self.stats = FollowStats()
        self.queued: dict[int | None, deque[Send]] = {}
        self.in_flight: dict[str, Flight] = {}
        self.resolves: list[tuple[float, Resolve]] = []
        self.withdrawn: list[AsyncResult] = []  # cancelled while maybe running: may still act
        # what the job record still has to hear (written at each round's start, so that carrying
        # out actions never fails halfway when the broker is down)
        self._unsaved: list[RangeRecord] = []  # checkpoints
        self._uncancelled: list[str] = []  # attempts withdrawn or done: a redelivery must not run
        self._broker_lost_at: float | None = None

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> FollowStats:
        deadline = time.monotonic() + self.config.timeout if self.config.timeout else None
        if self.jobs is not None:
            cancel_earlier_runs(self.jobs)  # a killed run's task still running stops (or removes what it staged)
        self._apply(self.book.start())
        while not self.book.done or self.in_flight or self._unflushed():
            for lease in self.leases:  # a coordinator that lost a lease of its job must stop sending
                check_lease(lease, self.jobs.job_id if self.jobs else "?")
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(f"{self.title}: no answer from any br-agent within {self.config.timeout:.0f}s")
            try:
                self._round()
                self._broker_lost_at = None
            except BROKER_ERRORS as exc:
                self._broker_lost(exc)
            if not self.book.done or self.in_flight or self._unflushed():
                time.sleep(self.config.poll_interval)
        return self.stats

    def _round(self) -> None:
        self._flush()
        self.watch.refresh()
        self._due_resolves()
        self._dispatch()
        self._poll()
        self._dispatch()  # what the results just queued (an ingest, a freed slot's next range) goes now
        self.on_progress(self.book.progress())

    def _broker_lost(self, exc: Exception) -> None:
        """A broker restart or blip: every step of a round can be redone, so wait it out (up to
        `broker_wait`) rather than fail a job whose work goes on on the agents."""
        now = time.monotonic()
        if self._broker_lost_at is None:
            self._broker_lost_at = now
            log.warning("the broker is unreachable (%s); waiting up to %.0fs for it", exc, self.config.broker_wait)
        elif now - self._broker_lost_at > self.config.broker_wait:
            raise CommandError(f"the broker has been unreachable for {self.config.broker_wait:.0f}s ({exc}): "
                               "rerun the same command once it is back to resume") from None

    def cancel_all(self) -> None:
        """On failure or interrupt: withdraw every task in flight (running ones stop, queued ones
        are skipped and shown REVOKED)."""
        if self.jobs is not None:
            cancel_attempts(self.jobs, list(self.in_flight), self.app)
            self._flush()
        self.withdrawn += [f.result for f in self.in_flight.values()]
        self.in_flight.clear()

    def wait_withdrawn(self, deadline: float) -> None:
        """Until the withdrawn tasks that were running have ended (or `deadline`)."""
        try:
            while any(not r.ready() for r in self.withdrawn) and time.monotonic() < deadline:
                time.sleep(self.config.poll_interval)
        except Exception as exc:  # noqa: BLE001 - the broker is gone: nothing more to wait for
            log.warning("could not follow the withdrawn tasks: %s", exc)

    # --- actions -----------------------------------------------------------------------------------
    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Fail):
                raise CommandError(action.reason)
            if isinstance(action, Checkpoint):
                if self.jobs is not None:
                    self._unsaved.append(action.record)
            elif isinstance(action, Resolve):
                self._schedule(action)
            else:
                self.queued.setdefault(action.store_id, deque()).append(action)

    def _unflushed(self) -> bool:
        return bool(self._unsaved or self._uncancelled)

    def _flush(self) -> None:
        """Each write once, in order; what the broker refused stays for the next round."""
        while self._unsaved:
            self.jobs.add_range(self._unsaved[0])  # type: ignore[union-attr] - only queued with jobs
            self._unsaved.pop(0)
        while self._uncancelled:
            self.jobs.cancel_attempt(self._uncancelled[0])  # type: ignore[union-attr]
            self._uncancelled.pop(0)

    def _schedule(self, resolve: Resolve) -> None:
        """The work's tasks are superseded: agents skip them, their results are ignored."""
        self._withdraw(resolve.work_id)
        delay = 0.0
        if resolve.backoff:
            self.stats.retries += 1
            delay = backoff(self.config, resolve.backoff - 1)
        if resolve.reason:
            log.info("work %d: %s; re-resolving", resolve.work_id, resolve.reason)
        self.resolves.append((time.monotonic() + delay, resolve))

    def _withdraw(self, work_id: int) -> None:
        for queue in self.queued.values():
            kept = [s for s in queue if s.work_id != work_id]
            queue.clear()
            queue.extend(kept)
        for attempt, flight in list(self.in_flight.items()):
            if flight.send.work_id == work_id:
                self._forget(attempt)

    def _forget(self, attempt: str) -> None:
        del self.in_flight[attempt]
        if self.jobs is not None:
            self._uncancelled.append(attempt)

    def _due_resolves(self) -> None:
        now = time.monotonic()
        due = [r for t, r in self.resolves if t <= now]
        self.resolves = [(t, r) for t, r in self.resolves if t > now]
        for resolve in due:
            self._apply(self.resolver(resolve))

    # --- sending -------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        for store_id, queue in self.queued.items():
            if not queue:
                continue
            live = self.watch.of_store(store_id)
            if not live:
                continue
            agents = {a.instance for a in live}
            busy: dict[str, int] = {}  # holding a store slot
            total: dict[str, int] = {}  # with the tails
            for flight in self.in_flight.values():
                if flight.send.store_id == store_id:
                    total[flight.send.lane] = total.get(flight.send.lane, 0) + 1
                    busy[flight.send.lane] = busy.get(flight.send.lane, 0) + (not flight.tail)
            cap = self.config.concurrency + self.config.tail_in_flight
            for _ in range(len(queue)):
                item = queue[0]
                if busy.get(item.lane, 0) < self.config.concurrency and total.get(item.lane, 0) < cap:
                    self._send(item, agents)  # raises with the item still queued
                    busy[item.lane] = busy.get(item.lane, 0) + 1
                    total[item.lane] = total.get(item.lane, 0) + 1
                    queue.popleft()
                else:
                    queue.rotate(-1)

    def _send(self, item: Send, agents: set[str]) -> None:
        attempt = uuid.uuid4().hex[:16]
        out = self.tasks(attempt, item)
        cluster = self.pd.cluster_id
        queue = storage_queue(cluster) if item.store_id is None else store_queue(cluster, item.store_id)
        if self.jobs is not None:
            self.jobs.note_sent(attempt)
        result = send(self.app, out.name, out.message, queue=queue, shadow=out.shadow, task_id=attempt)
        self.in_flight[attempt] = Flight(item, attempt, result, agents)
        self.stats.sent += 1
        log.debug("sent %s (attempt %s)", out.shadow, attempt)

    # --- following -------------------------------------------------------------------------------------
    def _poll(self) -> None:
        peeked = self._peek()
        for attempt, flight in list(self.in_flight.items()):
            if attempt not in self.in_flight:
                continue  # withdrawn by a resolve earlier in this round
            state, meta = peeked[attempt] if attempt in peeked else (flight.result.state, _UNREAD)
            if state == "SUCCESS":
                payload = flight.result.result if meta is _UNREAD else meta
                self._forget(attempt)  # done: a redelivery of it must not run again
                flight.result.forget()
                self._apply(self.book.succeeded(flight.send, payload))
            elif state in ("FAILURE", "REVOKED"):
                self._failed(flight)
            elif reason := self._gone(flight, state, meta):
                self._forget(attempt)
                self.stats.resent_lost += 1
                log.warning("resending work %d (%s on store %s): %s", flight.send.work_id, flight.send.lane,
                            flight.send.store_id, reason)
                self._apply(self.book.lost(flight.send, reason))

    def _failed(self, flight: Flight) -> None:
        error = error_text(flight.result)
        if failure_kind(flight.result.result) in STOPS_THE_JOB:  # refused, integrity, fatal: no retry can help
            raise CommandError(error)
        self._forget(flight.attempt)
        self._apply(self.book.failed(flight.send, error))

    def _peek(self) -> dict[str, tuple[str, object]]:
        """Every flight's state and meta (a running task's progress, a success's payload) in one
        round trip to a key-value result backend (Redis MGET), not two reads per task: under load a
        round then takes milliseconds, and a finished task is seen at once. {} without such a backend."""
        backend = getattr(self.app, "backend", None)
        if not self.in_flight or not callable(getattr(backend, "mget", None)):
            return {}
        attempts = list(self.in_flight)
        values = backend.mget([backend.get_key_for_task(a) for a in attempts])
        out: dict[str, tuple[str, object]] = {}
        for attempt, value in zip(attempts, values):
            if not value:
                out[attempt] = ("PENDING", None)
                continue
            meta = backend.decode_result(value)
            if meta["status"] in ("FAILURE", "REVOKED"):
                continue  # read through the result: its exception rebuilt as Celery does
            out[attempt] = (meta["status"], meta.get("result"))
        return out

    def _gone(self, flight: Flight, state: str, info: object = _UNREAD) -> str:
        """Why the task can no longer finish ("" while it can): its agent is gone, or its live
        agent no longer runs it although its state says so (the outcome was never stored)."""
        if info is _UNREAD:
            info = flight.result.info
        if state in RUNNING_STATES and isinstance(info, dict):
            self.book.running(flight.send, info)
            flight.tail = bool(info.get("store_done"))
        if self.watch.lost(state, info, flight.agents_at_send) and \
                self.watch.still_lost(flight.result, flight.agents_at_send):
            return f"agent lost while the task was {state.lower()}"
        if state not in RUNNING_STATES or not self.watch.not_running_there(info, flight.attempt):
            flight.unlisted_since = None
            return ""
        now = time.monotonic()
        flight.unlisted_since = flight.unlisted_since or now
        if now - flight.unlisted_since < self.config.result_grace:
            return ""
        return f"its agent no longer runs it and its outcome was never stored (state {state.lower()})"
