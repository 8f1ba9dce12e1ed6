"""How an agent task fails, typed, so the coordinator decides by the kind of failure rather than
by matching its words. Celery carries the exception's class (module and name) with its one-line
message, and rebuilds it on the coordinator, where this module is imported.

    raise TaskRefusedError(destinations.refusal(store_id, url, entries))   # agent
    if failure_kind(result.result) == "refused": stop the job at once        # coordinator
"""
from __future__ import annotations

from typing import ClassVar, Literal

FailureKind = Literal["refused", "retryable"]


class TaskError(Exception):
    """A task failed for a reason the coordinator shows as is (one line, no secrets)."""

    kind: ClassVar[FailureKind] = "retryable"


class TaskRefusedError(TaskError):
    """The agent's own configuration refuses the task (e.g. its allowed destinations): no retry can
    help; the operator must change the agent or the command."""

    kind: ClassVar[FailureKind] = "refused"


def failure_kind(error: object) -> FailureKind:
    """The kind of a task's failure (anything that is not a TaskError is worth a retry)."""
    return error.kind if isinstance(error, TaskError) else "retryable"
