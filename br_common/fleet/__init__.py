"""Fleet plumbing shared by `br` (coordinator) and `br-agent`: Celery app, queues, task
messages, agent registry, job state. See each module's docstring for usage:

* config   - FleetSettings (BR_BROKER, ...)
* broker   - BrokerURL: Redis password and TLS options of the broker URL; redact() for messages
* signing  - signed task messages (Signer on the coordinator, Verifier + SignedTask on agents)
* app      - make_app(broker_url) -> Celery; send(app, name, model, queue, shadow)
* queues   - store_queue(cluster, store) = "br.<cluster>.store.<store>", storage_queue(cluster) = "br.<cluster>.storage"
* messages - one pydantic model per task input/result; task names
* registry - agents' heartbeats (AgentInfo, Registry, Heartbeat)
* jobs     - job checkpoint/state (JobSpec, JobStore, RangeRecord) and Lease
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis


def redis_client(url: str) -> redis.Redis:
    """A client for job state and the registry on the broker's Redis (short timeouts: fail fast),
    with the URL's TLS options (br_common.fleet.broker)."""
    import redis  # noqa: PLC0415 - keep `import br_common.fleet` light (br --help)

    from br_common.fleet.broker import BrokerURL  # noqa: PLC0415

    broker = BrokerURL.parse(url)
    return redis.Redis.from_url(broker.url(), socket_connect_timeout=5, socket_timeout=10, health_check_interval=30,
                                **broker.ssl_options())
