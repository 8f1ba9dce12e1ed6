"""The Celery app of the fleet: one factory for coordinator and agents, plus a typed send.

    from br_common.fleet.app import make_app, send
    app = make_app(settings.broker)               # Redis is broker AND result backend
    result = send(app, messages.ACQUIRE_LOCK, task_model, queue=storage_queue(cluster_id),
                  shadow="lock job=ab12 s3://bucket/prefix")
    payload = result.get(timeout=60)

Settings: acks_late + reject_on_worker_lost (a SIGKILLed agent's task is not lost, only late:
the coordinator resends it, see br_coordinator.follower), prefetch 1 (a busy agent does not
hoard work), task_track_started (the coordinator sees who runs what), JSON only, task events
on (Flower). Agent task modules are registered with `shared_task` and listed in `include`;
br_agent.restore_tasks is included only when it exists.

The locked-down channel: the URL's password and TLS options (br_common.fleet.broker) reach
Celery as a plain URL plus broker_use_ssl/redis_backend_use_ssl. Every task's base class is
SignedTask: on an agent made with `verifier=`, a task runs only with a trusted signature; on
the coordinator, FleetSettings.signing_key (BR_SIGNING_KEY) makes `send` sign every task
(br_common.fleet.signing).
"""
from __future__ import annotations

import importlib.util
import uuid

from celery import Celery
from celery.app.amqp import AMQP
from celery.result import AsyncResult
from pydantic import BaseModel

from br_common.fleet import redis_transport
from br_common.fleet.broker import BrokerURL
from br_common.fleet.config import FleetSettings
from br_common.fleet.messages import summarize
from br_common.fleet.queues import UNROUTED_QUEUE
from br_common.fleet.signing import HEADER, Signer, SignedTask, Verifier

REDIS_TIMEOUTS = {"socket_timeout": 30.0, "socket_connect_timeout": 5.0}  # seconds; no Redis call takes longer
TASK_MODULES = ("br_agent.backup_tasks", "br_agent.storage_tasks", "br_agent.restore_tasks")


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def task_modules() -> list[str]:
    return [m for m in TASK_MODULES if _present(m)]


class FleetAMQP(AMQP):
    """Celery's task-sent event names the task type, the worker's events its shadow name; Flower
    merges a task-sent that arrives after task-received over it, so about one task in seven showed
    the bare type. The sent event carries the shadow name too."""

    def as_task_v2(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - Celery's signature
        message = super().as_task_v2(*args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and message.sent_event is not None:
            message.sent_event["name"] = shadow
        return message


class FleetApp(Celery):
    """The Celery app plus the task channel's keys: `signer` signs what `send` sends (the
    coordinator), `verifier` checks what the tasks receive (an agent with trusted keys)."""

    amqp_cls = f"{__name__}:FleetAMQP"

    signer: Signer | None = None
    verifier: Verifier | None = None


def make_app(broker_url: str, settings: FleetSettings | None = None, *, verifier: Verifier | None = None) -> FleetApp:
    """Raises BrokerError/SigningError (ValueError, one line) for an unusable URL or key."""
    settings = settings or FleetSettings(broker=broker_url)
    redis_transport.register()  # a transport that survives a broker restart
    broker = BrokerURL.parse(broker_url)
    ssl = broker.ssl_options()
    app = FleetApp("br-fleet", broker=broker.url(), backend=broker.url(), include=task_modules(),
                   task_cls=SignedTask)
    app.signer = Signer.load(settings.signing_key, settings.signing_cert or None) if settings.signing_key else None
    app.verifier = verifier
    if ssl:
        app.conf.update(broker_use_ssl=ssl, redis_backend_use_ssl=ssl)
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
        task_default_queue=UNROUTED_QUEUE,  # every task names its cluster's queue (queues)
        task_send_sent_event=True,
        worker_send_task_events=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout,
                                  "socket_connect_timeout": REDIS_TIMEOUTS["socket_connect_timeout"]},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        # a reply lost with a killed Redis must not block a read forever (a restarted broker is
        # reconnected to; br_coordinator.follow.engine waits the outage out)
        redis_socket_timeout=REDIS_TIMEOUTS["socket_timeout"],
        redis_socket_connect_timeout=REDIS_TIMEOUTS["socket_connect_timeout"],
        redis_socket_keepalive=True,
    )
    return app


def send(app: Celery, name: str, payload: BaseModel, queue: str, shadow: str = "",
         task_id: str | None = None) -> AsyncResult:
    """Send task `name` with its one model argument (JSON mode); shadow names it for Flower;
    signed when the app has a signer."""
    args = [payload.model_dump(mode="json")]
    task_id = task_id or uuid.uuid4().hex
    signer = getattr(app, "signer", None)
    signed = {"headers": {HEADER: signer.header(name, task_id, args)}} if signer is not None else {}
    return app.send_task(name, args=args, queue=queue, task_id=task_id, shadow=shadow or None,
                         argsrepr=summarize(payload), **signed)


def __getattr__(name: str) -> FleetApp:
    """`celery -A br_common.fleet.app status` (or `inspect active`, `events`): the fleet's app, built
    on first use from BR_BROKER and its password variables exactly as `br` builds it."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import os  # noqa: PLC0415

    fallback = os.environ.get("CELERY_BROKER_URL")  # what `celery flower` reads, for Flower's env files
    settings = FleetSettings(broker=fallback) if fallback and "BR_BROKER" not in os.environ else FleetSettings()
    return make_app(settings.resolved_broker(), settings)
