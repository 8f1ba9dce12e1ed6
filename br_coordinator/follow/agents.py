"""The fleet as the follow engine sees it: the live agents (a cached registry read), the checks a
job makes before it changes anything, the lost-work check, backoff, withdrawing attempts, and the
one-line messages for a store without agent and a failed task.

Lost work: a task STARTED by an agent instance that is no longer alive (killed; a restarted
agent is a new instance) will never finish, and one still queued after every agent alive at
send time has gone may sit prefetched in a dead worker; both are resent at once. The check is
made twice (`still_lost`), the second time against a fresh registry read, so an agent that
just started and is not cached yet does not count as gone.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from celery import Celery
from celery.result import AsyncResult
from pydantic import BaseModel, Field

from br_common.fleet.jobs import JobStore, Lease
from br_common.fleet.queues import storage_queue, store_queue
from br_common.fleet.registry import AgentInfo, Registry
from br_common.fleet.signing import Signer, signing_problem
from br_common.pd_client import PDClient, PDError
from br_coordinator.errors import CommandError
from br_coordinator.storage_spec import StorageSpecs

log = logging.getLogger(__name__)

RUNNING_STATES = ("STARTED", "PROGRESS", "RETRY")


class FollowConfig(BaseModel):
    """The follow engine's knobs (one per job, built from the verb's options)."""

    concurrency: int = Field(4, ge=1)  # tasks in flight per store and lane (restore: downloads, ingests)
    # more tasks per store and lane that may be in flight once past their store stage (a backup task
    # whose Backup stream ended and that only uploads now, TaskProgress.store_done): the store works
    # on the next ranges while the last ones upload, and never on more than `concurrency` at once
    tail_in_flight: int = Field(0, ge=0)
    backoff_base: float = 0.2  # seconds before the first retry of a piece; doubles per attempt
    backoff_cap: float = 5.0
    poll_interval: float = 0.05  # how often task states are read (one MGET for all: engine._peek)
    agent_wait: float = Field(60.0, ge=0)  # how long a store may have no live agent
    registry_refresh: float = 1.0
    timeout: float | None = None  # the whole follow (storage calls); None: as long as work goes on
    broker_wait: float = Field(120.0, ge=0)  # how long the broker may be unreachable (a Redis restart)
    # how long a task may show a running state that its live agent no longer lists (its outcome
    # was never stored) before it is resent: a few heartbeats
    result_grace: float = Field(10.0, ge=0)


def check_lease(lease: Lease, job_id: str) -> None:
    """Every round of a follower: a coordinator that lost a lease of its job must stop sending."""
    if lease.lost.is_set():
        raise CommandError(f"lost the lease {lease.key} of job {job_id} (another coordinator took it?)")


def cancel_earlier_runs(jobs: JobStore) -> None:
    """At the start of a run: the attempts earlier runs of the job sent are withdrawn (their
    coordinator is gone; a task of theirs still running stops, or removes what it staged)."""
    cancelled = jobs.cancel_earlier_attempts()
    if cancelled:
        log.info("cancelled %d attempts of earlier runs of job %s", cancelled, jobs.job_id)


def cancel_attempts(jobs: JobStore, attempts: list[str], app: Celery | None = None) -> None:
    """On failure/interrupt: agents skip the attempts they have not started (and stop a backup
    between files), and a late redelivery of one does nothing. With `app`, Celery's revoke is
    broadcast too (attempt = task id): workers drop the queued ones at once, and Flower shows
    every withdrawn task as REVOKED rather than FAILURE (running ones end so: br_agent.interruption)."""
    for attempt in attempts:
        jobs.cancel_attempt(attempt)
    if app is not None and attempts:
        try:
            app.control.revoke(attempts)
        except Exception as exc:  # noqa: BLE001 - best effort: the cancelled set above is what agents obey
            log.warning("could not broadcast the revoke of %d tasks: %s", len(attempts), exc)


def backoff(config: FollowConfig, exponent: int) -> float:
    """Seconds to wait before a retry: exponential, capped, jittered (no thundering herd)."""
    return min(config.backoff_cap, config.backoff_base * 2 ** exponent) * random.uniform(0.5, 1.0)


def error_text(result: AsyncResult) -> str:
    """A failed task's error as the agent raised it (its one line, e.g. an allowlist refusal)."""
    error = result.result
    if isinstance(error, BaseException):
        return str(error) or type(error).__name__
    return str(error)


def no_agent_message(pd: PDClient, store_id: int | None) -> str:
    if store_id is None:
        return (f"no br-agent is alive to run storage tasks (queue {storage_queue(pd.cluster_id)}): "
                f"start br-agent")
    try:
        address = pd.store(store_id).address or "?"
    except PDError:
        address = "?"
    return (f"no br-agent for store {store_id} (queue {store_queue(pd.cluster_id, store_id)}): "
            f"start br-agent on the host of {address}")


def check_agents(agents: list[AgentInfo], specs: StorageSpecs, signer: Signer | None, needed: set[int],
                 pd: PDClient) -> None:
    """Before a job changes anything: every live agent admits the storage URL and trusts our
    signing key (an agent that refuses would fail the job halfway), and every store in
    `needed` has a live agent. The first problem is a one-line CommandError naming it."""
    specs.check_allowed(agents)
    refused = signing_problem(agents, signer)
    if refused:
        raise CommandError(refused)
    served = {a.store_id for a in agents}
    for store_id in sorted(needed - served - {0}):
        raise CommandError(no_agent_message(pd, store_id))


def work_lost(state: str, info: object, agents_at_send: set[str], alive: dict[str, AgentInfo]) -> bool:
    """Whether a task in `state` (Celery meta `info`) can no longer finish; `alive` by instance."""
    if state in RUNNING_STATES:
        meta = info if isinstance(info, dict) else {}
        instance = meta.get("agent") or _instance_of(alive, meta.get("hostname"), meta.get("pid"))
        return instance is not None and instance not in alive
    # PENDING/RECEIVED: queued, or prefetched by a worker; lost if all agents it could reach died
    return not (agents_at_send & alive.keys())


def _instance_of(alive: dict[str, AgentInfo], worker_name: object, pid: object) -> str | None:
    """Celery's own STARTED meta has the worker name and pid; find that agent instance."""
    for agent in alive.values():
        if agent.worker_name == worker_name and agent.pid == pid:
            return agent.instance
    return f"{worker_name}/{pid}" if worker_name else None


@dataclass
class AgentWatch:
    """The live agents of PD's cluster, read from the registry at most every
    `config.registry_refresh` seconds."""

    registry: Registry
    pd: PDClient
    config: FollowConfig
    agents: dict[str, AgentInfo] = field(default_factory=dict)  # by instance
    _read_at: float = 0.0
    _no_agent_since: dict[int | None, float] = field(default_factory=dict)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._read_at >= self.config.registry_refresh:
            self.agents = {a.instance: a for a in self.registry.alive(self.pd.cluster_id)}
            self._read_at = now

    def of_store(self, store_id: int | None) -> list[AgentInfo]:
        """The store's live agents (None: every agent of the cluster, for its storage queue); none
        for longer than `agent_wait` fails the job, naming the store."""
        live = [a for a in self.agents.values() if store_id is None or a.store_id == store_id]
        if live:
            self._no_agent_since.pop(store_id, None)
            return live
        since = self._no_agent_since.setdefault(store_id, time.monotonic())
        if time.monotonic() - since > self.config.agent_wait:
            raise CommandError(no_agent_message(self.pd, store_id))
        return []

    def lost(self, state: str, info: object, agents_at_send: set[str]) -> bool:
        return work_lost(state, info, agents_at_send, self.agents)

    def not_running_there(self, info: object, attempt: str) -> bool:
        """The live agent a running task's meta names says (in its heartbeat) it no longer runs it."""
        meta = info if isinstance(info, dict) else {}
        instance = meta.get("agent") or _instance_of(self.agents, meta.get("hostname"), meta.get("pid"))
        agent = self.agents.get(instance) if instance else None
        return agent is not None and agent.running is not None and attempt not in agent.running

    def still_lost(self, result: AsyncResult, agents_at_send: set[str]) -> bool:
        """The same check against a fresh registry read (a just-started agent may not be cached yet)."""
        self.refresh(force=True)
        return self.lost(result.state, result.info, agents_at_send)
