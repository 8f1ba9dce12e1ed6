"""`br fleet status`: is the fleet ready to back up? Each store PD knows, the agent serving it
(from the heartbeats in Redis, only those of PD's cluster: store ids repeat across clusters),
the work waiting in its queue, the agents of other clusters sharing the broker, and the jobs
running.

Exit 0 when every store that is not a tombstone has an online agent, 3 when one has none (a
backup would stop at it), 1 when Redis or PD cannot be reached. Reads only: it changes nothing
in Redis, PD or storage, so it is safe to run at any time, also during a backup.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Protocol

import redis
from pydantic import BaseModel, Field

from br_common.fleet import redis_client
from br_common.fleet.broker import broker_problem, redact
from br_common.fleet.jobs import KEY_PREFIX, RESUMABLE, JobStore, Lease
from br_common.fleet.queues import storage_queue, store_queue
from br_common.fleet.registry import AgentInfo, Registry
from br_common.kvproto import metapb_pb2
from br_common.pd_client import PDClient, PDError
from br_coordinator import flags
from br_coordinator.errors import CommandError

log = logging.getLogger("br.fleet")

EXIT_MISSING_AGENT = 3
PRIORITY_SEP, PRIORITY_STEPS = "\x06\x16", (0, 3, 6, 9)  # kombu's Redis transport: one list per step
PD_TIMEOUT = 5.0


def run_status(args: argparse.Namespace) -> int:
    broker = flags.resolve_broker(args)
    client = redis_client(broker)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CommandError(broker_problem(broker, exc)) from None
    try:
        pd = PDClient(args.pd, timeout=PD_TIMEOUT, tls=flags.tls_config(args))
    except PDError as exc:
        raise CommandError(str(exc)) from None
    try:
        status = gather(pd, client)
    except PDError as exc:
        raise CommandError(str(exc)) from None
    except redis.RedisError as exc:
        raise CommandError(broker_problem(broker, exc)) from None
    finally:
        pd.close()
    print("\n".join(render(status, redact(broker), time.time())))
    sys.stdout.flush()
    return EXIT_MISSING_AGENT if status.missing() else 0


# --- what there is --------------------------------------------------------------------------------
class StoreStatus(BaseModel):
    id: int
    address: str
    state: str  # PD's: Up, Offline, Tombstone
    queue_depth: int
    agents: list[AgentInfo] = Field(default_factory=list)

    @property
    def needs_agent(self) -> bool:
        return self.state != "Tombstone"


class JobStatus(BaseModel):
    job_id: str
    kind: str
    storage_url: str
    coordinator: str  # the lease holder; "" = nobody: interrupted, rerun the command to resume
    ranges_done: int
    created: float
    status: str = "running"
    message: str = ""
    resumable_until: float = 0.0


class FleetStatus(BaseModel):
    pd_address: str
    cluster_id: int
    stores: list[StoreStatus]
    storage_queue_depth: int
    strangers: list[AgentInfo] = Field(default_factory=list)  # agents of this cluster's stores PD does not know
    others: list[AgentInfo] = Field(default_factory=list)  # agents of other clusters on this broker
    jobs: list[JobStatus] = Field(default_factory=list)

    def missing(self) -> list[StoreStatus]:
        return [s for s in self.stores if s.needs_agent and not s.agents]


class PDLike(Protocol):
    address: str
    cluster_id: int

    def stores(self) -> list[metapb_pb2.Store]: ...


def gather(pd: PDLike, client: redis.Redis) -> FleetStatus:
    everyone = Registry(client).alive()
    agents = [a for a in everyone if a.cluster_id == pd.cluster_id]
    stores = [StoreStatus(id=s.id, address=s.address, state=metapb_pb2.StoreState.Name(s.state),
                          queue_depth=queue_depth(client, store_queue(pd.cluster_id, s.id)),
                          agents=[a for a in agents if a.store_id == s.id])
              for s in sorted(pd.stores(), key=lambda s: s.id)]
    known = {s.id for s in stores}
    return FleetStatus(pd_address=pd.address, cluster_id=pd.cluster_id, stores=stores,
                       storage_queue_depth=queue_depth(client, storage_queue(pd.cluster_id)),
                       strangers=[a for a in agents if a.store_id not in known],
                       others=[a for a in everyone if a.cluster_id != pd.cluster_id], jobs=running_jobs(client))


def queue_depth(client: redis.Redis, queue: str) -> int:
    """Messages waiting in a kombu queue (not those an agent has taken: they are unacked)."""
    keys = [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.llen(key)
        return sum(pipe.execute())


def running_jobs(client: redis.Redis, now: float | None = None) -> list[JobStatus]:
    """Jobs running (held by a coordinator now), and those interrupted or failed that a rerun can
    still resume (their GC safe point is held until resumable_until)."""
    now = time.time() if now is None else now
    out = []
    for raw in client.scan_iter(match=f"{KEY_PREFIX}*", count=1000):
        job_id = raw.decode().removeprefix(KEY_PREFIX)
        if ":" in job_id:
            continue  # a job's ranges/cancelled/lease keys
        jobs = JobStore(client, job_id)
        state = jobs.load()
        if state is None or state.status not in RESUMABLE:
            continue
        if state.status != "running" and state.resumable_until <= now:
            continue  # its resume window has passed: no longer worth a line
        out.append(JobStatus(job_id=job_id, kind=state.spec.kind, storage_url=state.spec.storage_url,
                             coordinator=Lease(client, jobs.lease_key).holder() or "",
                             ranges_done=client.hlen(jobs.ranges_key), created=state.created, status=state.status,
                             message=state.message, resumable_until=state.resumable_until))
    return sorted(out, key=lambda j: j.created)


# --- how it reads ---------------------------------------------------------------------------------
COLUMNS = ("STORE", "ADDRESS", "STATE", "AGENT", "VERSION", "HOST/PID", "HEARTBEAT", "QUEUE", "METRICS", "ALLOWS")


def render(status: FleetStatus, broker: str, now: float) -> list[str]:
    lines = [f"PD {status.pd_address} (cluster {status.cluster_id}), broker {broker}", ""]
    rows = [COLUMNS] + [row for store in status.stores for row in _store_rows(store, now)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    lines.append("")
    lines.append(f"shared queue {storage_queue(status.cluster_id)}: {status.storage_queue_depth} waiting")
    lines += [f"agent of store {a.store_id} unknown to this PD: {a.instance} (a store removed from the cluster?)"
              for a in status.strangers]
    lines += _other_clusters(status.others)
    lines += _job_lines(status.jobs, now)
    lines += [f"store {s.id} ({s.address}) has NO ONLINE br-agent"
              + (f"; {s.queue_depth} tasks wait in {store_queue(status.cluster_id, s.id)}" if s.queue_depth else "")
              + f": start br-agent on the host of {s.address}" for s in status.missing()]
    return lines


def _store_rows(store: StoreStatus, now: float) -> list[tuple[str, ...]]:
    head = (str(store.id), store.address, store.state)
    if not store.agents:
        agent = "NO AGENT" if store.needs_agent else "-"
        return [(*head, agent, "-", "-", "-", str(store.queue_depth), "-", "-")]
    rows = []
    for i, agent in enumerate(store.agents):
        cells = head if i == 0 else ("", "", "")
        rows.append((*cells, "online", agent.version, f"{agent.hostname}/{agent.pid}",
                     f"{age(now - agent.last_seen)} ago", str(store.queue_depth) if i == 0 else "",
                     agent.metrics_url or "-", ", ".join(agent.allowed_destinations) or "any destination"))
    return rows


def _other_clusters(agents: list[AgentInfo]) -> list[str]:
    """One line: who else shares the broker (their queues are theirs; cluster 0 = an agent too old
    to name its cluster, consuming the unscoped queues of earlier versions)."""
    if not agents:
        return []
    by_cluster: dict[int, list[int]] = {}
    for agent in agents:
        by_cluster.setdefault(agent.cluster_id, []).append(agent.store_id)
    clusters = "; ".join(f"cluster {cid}: stores {', '.join(map(str, sorted(set(ids))))}"
                         for cid, ids in sorted(by_cluster.items()))
    return [f"{len(agents)} br-agent{'s' if len(agents) != 1 else ''} of other clusters share this broker ({clusters})"]


def _job_lines(jobs: list[JobStatus], now: float) -> list[str]:
    if not jobs:
        return ["jobs running or resumable: none"]
    return [f"job {j.job_id} {j.kind} {j.storage_url}: {_job_state(j, now)}, {j.ranges_done} ranges done, "
            f"started {age(now - j.created)} ago" for j in jobs]


def _job_state(job: JobStatus, now: float) -> str:
    if job.coordinator:
        return f"running (coordinator {job.coordinator})"
    held = "GC safe point held" if job.kind == "backup" else "record kept"
    left = f"; {held} {age(job.resumable_until - now)} more" if job.resumable_until > now else ""
    why = f" ({job.message})" if job.status == "failed" and job.message else ""
    return (f"{job.status if job.status != 'running' else 'interrupted'}{why}: rerun the same command to resume"
            f"{left}, or `br fleet abandon --job {job.job_id}`")


def age(seconds: float) -> str:
    """12.3 -> '12s', 125 -> '2m05s', 3725 -> '1h02m'."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600):02d}h"
