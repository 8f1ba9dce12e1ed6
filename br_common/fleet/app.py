"""The Celery app of the fleet: one factory for coordinator and agents, plus a typed send.

    from br_common.fleet.app import make_app, send
    app = make_app(settings.broker)               # Redis is broker AND result backend
    result = send(app, messages.ACQUIRE_LOCK, task_model, queue=STORAGE_QUEUE,
                  shadow="lock job=ab12 s3://bucket/prefix")
    payload = result.get(timeout=60)

Settings: acks_late + reject_on_worker_lost (a SIGKILLed agent's task is not lost, only late:
the coordinator resends it, see br_coordinator.follower), prefetch 1 (a busy agent does not
hoard work), task_track_started (the coordinator sees who runs what), JSON only, task events
on (Flower). Agent task modules are registered with `shared_task` and listed in `include`;
br_agent.restore_tasks is included only when it exists.
"""
from __future__ import annotations

import importlib.util
import uuid

from celery import Celery
from celery.result import AsyncResult
from pydantic import BaseModel

from br_common.fleet.config import FleetSettings
from br_common.fleet.queues import STORAGE_QUEUE

TASK_MODULES = ("br_agent.backup_tasks", "br_agent.storage_tasks", "br_agent.restore_tasks")


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def task_modules() -> list[str]:
    return [m for m in TASK_MODULES if _present(m)]


def make_app(broker_url: str, settings: FleetSettings | None = None) -> Celery:
    settings = settings or FleetSettings(broker=broker_url)
    app = Celery("br-fleet", broker=broker_url, backend=broker_url, include=task_modules())
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_extended=True,  # name/args/worker in the result: the follower and Flower read them
        result_expires=7 * 24 * 3600,
        task_default_queue=STORAGE_QUEUE,
        task_send_sent_event=True,
        worker_send_task_events=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
    )
    return app


def send(app: Celery, name: str, payload: BaseModel, queue: str, shadow: str = "",
         task_id: str | None = None) -> AsyncResult:
    """Send task `name` with its one model argument (JSON mode); shadow names it for Flower."""
    return app.send_task(name, args=[payload.model_dump(mode="json")], queue=queue,
                         task_id=task_id or uuid.uuid4().hex, shadow=shadow or None)
