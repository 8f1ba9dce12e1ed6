"""How an agent task fails, typed, so the coordinator decides by the kind of failure rather than
by matching its words. Every task's outcome has one of these kinds: raised (Celery carries the
exception's class, module and name, with its one-line message, and rebuilds it on the coordinator,
where this module is imported) or, where a partial answer is worth sending back, in the result's
envelope (messages.TaskResult.error_kind).

    refused    the agent's own configuration refuses the task (allowed destinations, signing):
               no retry can help; the operator must change the agent or the command -> stop
    integrity  what storage holds is missing or differs from backupmeta -> stop, name the object
    fatal      the task can never succeed as sent (wrong cluster, no backup there) -> stop
    region     the region changed (NotLeader, EpochNotMatch, ...) -> re-place through PD, redo
    retryable  anything else worth another attempt (store busy or unreachable, a network error)

    raise TaskRefusedError(destinations.refusal(store_id, url, entries))   # agent
    if failure_kind(result.result) in STOPS_THE_JOB: stop the job at once   # coordinator
"""
from __future__ import annotations

from typing import ClassVar, Literal

ErrorKind = Literal["refused", "integrity", "fatal", "region", "retryable"]
STOPS_THE_JOB: frozenset[ErrorKind] = frozenset({"refused", "integrity", "fatal"})


class TaskError(Exception):
    """A task failed for a reason the coordinator shows as is (one line, no secrets)."""

    kind: ClassVar[ErrorKind] = "retryable"


class TaskRefusedError(TaskError):
    kind: ClassVar[ErrorKind] = "refused"


class TaskIntegrityError(TaskError):
    kind: ClassVar[ErrorKind] = "integrity"


class TaskFatalError(TaskError):
    kind: ClassVar[ErrorKind] = "fatal"


def failure_kind(error: object) -> ErrorKind:
    """The kind of a task's failure (anything that is not a TaskError is worth a retry)."""
    return error.kind if isinstance(error, TaskError) else "retryable"
