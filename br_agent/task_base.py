"""One shape for every agent task: parse the message, run the attempt only while the coordinator
still wants it, run a plain function, and turn every failure into one scrubbed line.

    def run_download(context: AgentContext, task: rm.DownloadTask, report: Report) -> rm.DownloadResult:
        ...
    download = agent_task(rm.DOWNLOAD, rm.DownloadTask)(run_download)

A task message with a job_id and an attempt is an attempt of a job: if the job ended or the
attempt was resent elsewhere (JobStore.skip_reason), or the run function raises AttemptCancelled
midway, the task ends as REVOKED (br_agent.interruption), never as FAILURE. Run functions get
the context and the parsed message and return their result model; unit tests call them directly.
"""
from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from celery import Task, shared_task
from pydantic import BaseModel

from br_agent.context import AgentContext, AgentTaskError, get_context
from br_agent.environment import StagingEnv, TaskEnv
from br_agent.interruption import AttemptCancelled, end_as_revoked
from br_common.backupmeta.meta import MetaError
from br_common.fleet.messages import MessageError, parse
from br_common.fleet.task_errors import TaskError
from br_common.storage import StorageError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Report = Callable[[BaseModel], None]  # publishes a PROGRESS state (Flower, the coordinator's bars)
Run = Callable[[AgentContext, Any, Report], BaseModel]
# failures whose message is already one line for the operator; anything else is logged with its traceback
EXPECTED_ERRORS = (TaskError, StorageError, MessageError, MetaError)


def agent_task(name: str, model: type[M]) -> Callable[[Run], Task]:
    def register(run: Run) -> Task:
        @shared_task(name=name, bind=True)
        def task(self: Task, payload: dict) -> dict:
            context = get_context()
            try:
                message = parse(model, payload)
                stop_if_withdrawn(context, message)
                result = run(context, message, _reporter(self))
            except AttemptCancelled as exc:
                end_as_revoked(self, str(exc))
            except EXPECTED_ERRORS as exc:  # its class travels too: a refusal stays a refusal
                kind = type(exc) if isinstance(exc, TaskError) else AgentTaskError
                raise kind(context.scrub(no_space_left(context, exc) or str(exc))) from None
            except Exception as exc:  # noqa: BLE001 - one safe line, not a traceback with locals
                full = no_space_left(context, exc)
                if not full:
                    log.exception("task %s failed", name)
                raise AgentTaskError(context.scrub(full or f"{type(exc).__name__}: {exc}")) from None
            finally:
                context.storages.release_held()  # idle ones close after a while (StorageCache)
            return result.model_dump(mode="json")
        return task
    return register


def no_space_left(context: StagingEnv, exc: BaseException) -> str:
    """"" unless exc, or an error it came from (a StorageError wraps the OSError), is a full disk
    (ENOSPC); else the one line the operator must read last: where, and what to do."""
    cause: BaseException | None = exc
    seen: set[int] = set()  # a chain may loop back on itself
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            where = cause.filename if isinstance(cause.filename, str) else context.staging_dir  # a write: no name
            return (f"no space left on {where}: the staging dir {context.staging_dir} of store {context.store_id}'s "
                    "agent is on a full disk; free space there or set the agent's staging_dir (--staging-dir) to a "
                    "larger disk, then rerun the same command")
        cause = cause.__cause__ or cause.__context__
    return ""


def stop_if_withdrawn(context: TaskEnv, message: BaseModel, prefix: str = "") -> None:
    """An attempt of a job runs only while its job wants it (a late redelivery does nothing).
    Asked midway (prefix), a broker that cannot answer lets the work go on: the coordinator
    withdraws it again once the broker is back."""
    job_id, attempt = getattr(message, "job_id", None), getattr(message, "attempt", None)
    if job_id is None or attempt is None:
        return
    try:
        skip = context.jobs(job_id).skip_reason(attempt)
    except redis.RedisError as exc:
        if not prefix:
            raise
        log.warning("could not ask whether attempt %s is still wanted (%s): going on", attempt, exc)
        return
    if skip:
        raise AttemptCancelled(prefix + skip)


def _reporter(celery_task: Task) -> Report:
    task_id = celery_task.request.id  # the request is thread-local: upload threads need the id itself

    def report(progress: BaseModel) -> None:
        try:
            celery_task.update_state(task_id=task_id, state="PROGRESS", meta=progress.model_dump(mode="json"))
        except redis.RedisError as exc:  # progress is a courtesy: a broker blip must not fail the work
            log.warning("progress of task %s not reported: %s", task_id, exc)
    return report
