"""A task whose attempt the coordinator withdrew (job interrupted by Ctrl-C, failed, or the attempt
resent elsewhere) ends as REVOKED, which is what it is, not as FAILURE: in the result backend
(the coordinator treats it as not done) and in Flower (a `task-revoked` event, as Celery's own
revoke sends). Raising Ignore afterwards keeps Celery from recording another state on top.
"""
from __future__ import annotations

import logging
from typing import NoReturn

from celery import Task, states
from celery.exceptions import Ignore, TaskRevokedError

log = logging.getLogger(__name__)


class AttemptCancelled(Exception):
    """Raised inside a running task when its attempt was cancelled (the message says why)."""


def end_as_revoked(task: Task, reason: str) -> NoReturn:
    log.info("task %s withdrawn by the coordinator: %s", task.request.id, reason)
    task.update_state(state=states.REVOKED, meta=TaskRevokedError(reason))
    task.send_event("task-revoked", terminated=False, signum=None, expired=False)
    raise Ignore()
