"""Run one storage-side task (lock, backupmeta) on the cluster's shared storage queue
(`br.<cluster>.storage`) and wait for it.

Any live agent of the cluster may take it, with its own credentials; if the agent running it vanishes from
the registry (or every agent alive at send time does, while it is still queued), it is resent
under a new id (following.work_lost). Storage tasks are idempotent or report what they found (lock: "locked").
"""
from __future__ import annotations

import time
import uuid

from celery import Celery
from pydantic import BaseModel

from br_common.fleet import messages as m
from br_common.fleet.app import send
from br_common.fleet.queues import storage_queue
from br_common.fleet.registry import Registry
from br_common.fleet.task_errors import failure_kind
from br_coordinator.errors import CommandError
from br_coordinator.following import work_lost

POLL = 0.1


def call_storage(app: Celery, registry: Registry, cluster_id: int, name: str, payload: BaseModel,
                 result_model: type[m.M], shadow: str, timeout: float = 300.0, resends: int = 3) -> m.M:
    deadline = time.monotonic() + timeout
    queue = storage_queue(cluster_id)
    for _ in range(resends + 1):
        agents = {a.instance for a in registry.alive(cluster_id)}
        if not agents:
            raise CommandError(f"no br-agent is alive to run storage tasks (queue {queue}): start br-agent")
        task_id = uuid.uuid4().hex[:16]
        result = send(app, name, payload, queue=queue, shadow=shadow, task_id=task_id)
        while time.monotonic() < deadline:
            state = result.state
            if state == "SUCCESS":
                value = result.result
                result.forget()
                return m.parse(result_model, value)
            if state in ("FAILURE", "REVOKED"):
                error = str(result.result)
                raise CommandError(error if failure_kind(result.result) == "refused" else f"{shadow}: {error}")
            if work_lost(state, result.info, agents, {a.instance: a for a in registry.alive(cluster_id)}):
                break
            time.sleep(POLL)
        else:
            raise CommandError(f"{shadow}: no answer from any br-agent within {timeout:.0f}s")
    raise CommandError(f"{shadow}: the agents running it kept disappearing")

