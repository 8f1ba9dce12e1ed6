"""Fleet plumbing shared by `br` (coordinator) and `br-agent`: Celery app, queues, task
messages, agent registry, job state. See each module's docstring for usage:

* config   - FleetSettings (BR_BROKER, ...)
* app      - make_app(broker_url) -> Celery; send(app, name, model, queue, shadow)
* queues   - store_queue(id) = "br.store.<id>", STORAGE_QUEUE = "br.storage"
* messages - one pydantic model per task input/result; task names
* registry - agents' heartbeats (AgentInfo, Registry, Heartbeat)
* jobs     - job checkpoint/state (JobSpec, JobStore, RangeRecord) and Lease
"""
from __future__ import annotations

import redis


def redis_client(url: str) -> redis.Redis:
    """A client for job state and the registry on the broker's Redis (short timeouts: fail fast)."""
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30)
