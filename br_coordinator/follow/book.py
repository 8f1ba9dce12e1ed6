"""What a job's book and the follow engine say to each other.

A book is the pure state of one job kind (backup ranges, restore regions, one storage call): it
is fed task outcomes and answers with actions; the engine (follow.engine) carries them out over
Celery, PD and Redis. A new job kind is a new book (and, if its work must be re-placed through
PD, a resolver); the engine does not change.

    Send(work_id, store_id, lane, body)  send a task for the work to a store's queue (store_id None:
                                         the cluster's storage queue); at most `concurrency` per
                                         store and lane are in flight
    Resolve(work_id, reason, backoff)    withdraw the work's tasks, wait `backoff` steps, then ask
                                         the job's resolver where its keys live now
    Checkpoint(record)                   a piece is complete: record it in the job (resume point)
    Fail(reason)                         the job cannot complete: stop it with this one line
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

from br_common.fleet.jobs import RangeRecord
from br_common.fleet.messages import TaskResult
from br_common.fleet.task_errors import STOPS_THE_JOB


@dataclass(frozen=True)
class Send:
    work_id: int
    store_id: int | None  # None: any agent of the cluster (the storage queue)
    lane: str  # what concurrency is counted by, and what the TaskMaker builds: "backup", "download", ...
    body: object = None  # what the TaskMaker needs for the message (a planned range, a region's work, ...)


@dataclass(frozen=True)
class Resolve:
    work_id: int
    reason: str = ""  # empty: first placement, not a retry
    backoff: int = 0  # 0: now; n: the n-th backoff step (follow.agents.backoff)


@dataclass(frozen=True)
class Checkpoint:
    record: RangeRecord


@dataclass(frozen=True)
class Fail:
    reason: str


Action = Send | Resolve | Checkpoint | Fail


class Progress(NamedTuple):
    """One progress interface for every job: units done of total (the book's unit), bytes moved."""

    done: int
    total: int
    nbytes: int


class Book(ABC):
    """The pure state of one job kind's work. Every method returns the actions to carry out."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """All work is complete (the engine also waits for nothing in flight)."""

    @abstractmethod
    def start(self) -> list[Action]:
        """The first actions of a run."""

    @abstractmethod
    def succeeded(self, send: Send, payload: object) -> list[Action]:
        """The task of `send` returned `payload` (unparsed: the book checks it)."""

    @abstractmethod
    def failed(self, send: Send, error: str) -> list[Action]:
        """The task of `send` raised `error` (a retryable failure: refusals stop the engine first)."""

    def lost(self, send: Send, reason: str) -> list[Action]:
        """The agent running (or holding) the task of `send` is gone; by default a failure."""
        return self.failed(send, reason)

    def running(self, send: Send, info: dict) -> None:  # noqa: B027 - optional hook
        """A running task's progress meta (Celery's PROGRESS state), e.g. bytes uploaded so far."""

    @abstractmethod
    def progress(self) -> Progress:
        ...


def stopping(result: TaskResult) -> list[Action]:
    """A result whose envelope says no retry can help (refused, integrity, fatal) stops the job."""
    if result.error and result.error_kind in STOPS_THE_JOB:
        return [Fail(result.error)]
    return []
