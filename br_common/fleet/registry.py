"""Agents' heartbeats in Redis: who serves which store, from which process, with which key.

Agent side:

    info = AgentInfo.for_this_process(cluster_id=cid, store_id=2, store_address="10.0.0.2:20160",
                                      public_key=pub_hex, allowed_destinations=["s3://bucket/"])
    beat = Heartbeat(Registry(redis_client), info, interval=3.0, ttl=15.0)
    beat.start()   # daemon thread: SET br:agent:<instance> <json> PX ttl, every interval
    ...
    beat.stop()    # deletes the key (a clean shutdown is visible at once)

Coordinator side:

    reg = Registry(redis_client)
    reg.for_store(cid, 2)       # live agents of store 2 of cluster cid (newest first; a restarted
                                # agent supersedes its predecessor on the same host at once)
    reg.alive(cid)              # all live agents of cluster cid (store ids repeat across
                                # clusters: a coordinator looks only at its own cluster's)
    reg.alive()                 # every live agent on this broker, of any cluster
    reg.instance_alive("host/1234/bootid")

An agent's `instance` is hostname/pid/boot id: a restarted agent (systemd after SIGKILL) is a
new instance, so work the old one had started is known to be lost at once.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from pydantic import BaseModel, Field

from br_common.fleet import destinations
from br_common.version import fleet_version

log = logging.getLogger(__name__)

KEY_PREFIX = "br:agent:"
INDEX_KEY = "br:agents"  # sorted set: instance -> expiry time (no SCAN over Celery's keys)


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


class AgentInfo(BaseModel):
    cluster_id: int = 0  # from PD at startup; 0 = an agent older than cluster-scoped queues
    store_id: int
    store_address: str
    hostname: str
    pid: int
    boot_id: str
    version: str
    public_key: str = ""  # X25519 public key, hex (br_common.sealing)
    allowed_destinations: list[str] = Field(default_factory=list)  # URL prefixes; empty = any
    metrics_url: str = ""  # the agent's Prometheus endpoint; "" = none
    # fingerprints of the coordinator keys whose signed tasks it runs (br_common.fleet.signing);
    # empty = it runs unsigned tasks too. `br` checks its own key is among them before sending.
    trusted_signers: list[str] = Field(default_factory=list)
    worker_name: str = ""  # the Celery worker's nodename
    # the task ids it is running now, as of its last heartbeat (None: an agent that does not say):
    # a task left in a running state that its live agent no longer runs lost its result
    running: list[str] | None = None
    started: float = Field(default_factory=time.time)
    last_seen: float = 0.0

    @property
    def instance(self) -> str:
        return f"{self.hostname}/{self.pid}/{self.boot_id[:8]}"

    @classmethod
    def for_this_process(cls, **fields: object) -> "AgentInfo":
        fields.setdefault("version", fleet_version())
        return cls(hostname=socket.gethostname(), pid=os.getpid(), boot_id=boot_id(), **fields)

    def allows(self, url: str) -> bool:
        """Whether this agent accepts a task for `url` (credential-free URL); see destinations."""
        return destinations.allows(self.allowed_destinations, url)


class Registry:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def publish(self, info: AgentInfo, ttl: float) -> None:
        now = time.time()
        info = info.model_copy(update={"last_seen": now})
        with self._redis.pipeline() as pipe:
            pipe.set(KEY_PREFIX + info.instance, info.model_dump_json(), px=int(ttl * 1000))
            pipe.zadd(INDEX_KEY, {info.instance: now + ttl})
            pipe.execute()

    def withdraw(self, info: AgentInfo) -> None:
        with self._redis.pipeline() as pipe:
            pipe.delete(KEY_PREFIX + info.instance)
            pipe.zrem(INDEX_KEY, info.instance)
            pipe.execute()

    def alive(self, cluster_id: int | None = None) -> list[AgentInfo]:
        """Live agents of cluster `cluster_id` (None: of every cluster on this broker)."""
        self._redis.zremrangebyscore(INDEX_KEY, "-inf", time.time() - 60)  # long gone: forget
        instances = [i.decode() for i in self._redis.zrange(INDEX_KEY, 0, -1)]
        values = self._redis.mget([KEY_PREFIX + i for i in instances]) if instances else []
        agents = [AgentInfo.model_validate(json.loads(v)) for v in values if v is not None]
        if cluster_id is not None:
            agents = [a for a in agents if a.cluster_id == cluster_id]
        return _without_superseded(sorted(agents, key=lambda a: (a.cluster_id, a.store_id, -a.started)))

    def for_store(self, cluster_id: int, store_id: int) -> list[AgentInfo]:
        return [a for a in self.alive(cluster_id) if a.store_id == store_id]

    def instance_alive(self, instance: str) -> bool:
        return bool(self._redis.exists(KEY_PREFIX + instance))


def _without_superseded(agents: list[AgentInfo]) -> list[AgentInfo]:
    """An agent restarted on the same host for the same store of the same cluster (systemd after
    a SIGKILL) supersedes the old instance at once, without waiting for the old entry's TTL."""
    newest: dict[tuple[int, int, str], AgentInfo] = {}
    for agent in agents:  # newest first within a store
        newest.setdefault((agent.cluster_id, agent.store_id, agent.hostname), agent)
    return [a for a in agents if newest[(a.cluster_id, a.store_id, a.hostname)] is a]


class Heartbeat:
    """Refreshes the agent's registry entry every `interval` seconds on a daemon thread."""

    def __init__(self, registry: Registry, info: AgentInfo, interval: float = 3.0, ttl: float = 15.0,
                 running: Callable[[], list[str]] | None = None) -> None:
        self.registry = registry
        self.info = info
        self.running = running
        self.interval = interval
        self.ttl = ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="br-heartbeat", daemon=True)

    def start(self) -> None:
        self.registry.publish(self._current(), self.ttl)  # visible before the worker takes work
        self._thread.start()

    def _current(self) -> AgentInfo:
        if self.running is None:
            return self.info
        return self.info.model_copy(update={"running": self.running()})

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 1)
        try:
            self.registry.withdraw(self.info)
        except redis.RedisError as exc:
            log.warning("could not withdraw agent %s from the registry: %s", self.info.instance, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.registry.publish(self._current(), self.ttl)
            except redis.RedisError as exc:  # Redis blips must not kill the agent; the TTL tells
                log.warning("heartbeat failed: %s", exc)
