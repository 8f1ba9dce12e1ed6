"""The task ids this agent is running now, for its heartbeat (AgentInfo.running).

An id is added when Celery starts the task and removed only after Celery has stored its outcome
(task_postrun comes after the result is written): a task whose outcome could not be stored (the
broker was down at that moment) is no longer listed while its recorded state still says it runs,
which tells the coordinator its result is lost and the work must be resent.
"""
from __future__ import annotations

import threading
from typing import Any

from celery.signals import task_postrun, task_prerun

_lock = threading.Lock()
_running: set[str] = set()


def running() -> list[str]:
    with _lock:
        return sorted(_running)


@task_prerun.connect
def _started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        with _lock:
            _running.add(task_id)


@task_postrun.connect
def _ended(task_id: str | None = None, **_: Any) -> None:
    with _lock:
        _running.discard(task_id or "")
