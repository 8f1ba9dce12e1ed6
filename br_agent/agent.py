"""br-agent startup: find our store (and its cluster) in PD, publish a heartbeat, run a Celery
worker in-process.

The worker uses the THREADS pool inside this process, so a SIGKILL of the agent ends all its
work at once (no orphaned children uploading half a backup), and a restarted agent is a new
registry instance the coordinator recognises. It consumes only `br.<cluster>.store.<id>` and
`br.<cluster>.storage`, the cluster id being PD's: agents of several clusters may share one
Redis database without taking each other's tasks (store ids repeat across clusters).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import redis
from celery.utils.nodenames import host_format

from br_agent import metrics, running_tasks, staging_dir
from br_agent.context import AgentContext, set_context
from br_agent.malloc_arenas import cap_malloc_arenas
from br_agent.settings import AgentSettings
from br_common.fleet import redis_client
from br_common.fleet.app import make_app, task_modules
from br_common.fleet.broker import broker_problem
from br_common.fleet.config import FleetSettings
from br_common.fleet.queues import agent_queues
from br_common.fleet.registry import AgentInfo, Heartbeat, Registry
from br_common.fleet import replays
from br_common.fleet.replays import SeenTasks
from br_common.fleet.signing import SigningError, Verifier
from br_common.kvproto import metapb_pb2
from br_common.grpc_tls import TLSConfig
from br_common.pd_client import PDClient, PDError
from br_common.sealing import load_or_create_private_key, public_key_bytes

log = logging.getLogger(__name__)


class AgentError(RuntimeError):
    """Startup failed for a reason the operator can act on (one line)."""


def find_store(pd: PDClient, address: str, wait: float) -> metapb_pb2.Store:
    """The PD store whose address is `address`, waiting up to `wait` s for it to register."""
    deadline = time.monotonic() + wait
    while True:
        stores = pd.stores()
        for store in stores:
            if store.address == address:
                return store
        if time.monotonic() >= deadline:
            known = ", ".join(f"{s.id}={s.address}" for s in stores) or "none"
            raise AgentError(f"PD {pd.address} knows no store at {address} (stores: {known}); "
                             f"--store must be the address the store registered with")
        time.sleep(0.5)


def _connect_pd(addresses: str, tls: TLSConfig) -> PDClient:
    """PD, from a comma-separated list (the client finds the leader)."""
    try:
        return PDClient(addresses, tls=tls)
    except PDError as exc:
        raise AgentError(str(exc)) from None


def worker_name(config: AgentSettings, cluster_id: int, store_id: int) -> str:
    """The Celery node name: cluster and store in it, so two clusters' agents on one host stay apart."""
    return host_format(config.hostname or f"br-agent-{cluster_id}-store{store_id}@%h")


def run(config: AgentSettings) -> int:
    """Serve the store's queues until stopped; AgentError (one line) when startup cannot go on."""
    cap_malloc_arenas()  # before any thread starts: see br_agent.malloc_arenas
    broker = config.broker_url(FleetSettings().broker)  # BR_BROKER as the fallback, as br has it
    settings = FleetSettings(broker=broker, signing_key="", signing_cert="")  # agents never sign
    verifier = _verifier(config)
    pd = _connect_pd(config.pd, config.tls)
    if not config.allowed_destinations:
        log.warning("allowed_destinations is empty: this agent accepts tasks for any storage destination its "
                    "credentials reach (set allowed_destinations in the config file, or --allow-destination)")
    try:
        store = find_store(pd, config.store, config.store_wait)
        staging = config.resolved_staging_dir()
        context = _context(config, settings, pd, store, staging, verifier)
        if verifier is not None:
            verifier.seen = SeenTasks(staging / replays.FILE_NAME)
    except (PDError, OSError) as exc:
        pd.close()
        raise AgentError(str(exc)) from None
    return _serve(context, settings, config, pd, verifier)


def _verifier(config: AgentSettings) -> Verifier | None:
    """What every task's signature is checked with; None (no trusted keys): signing off, said loudly."""
    if not config.trusted_coordinator_keys:
        log.warning("trusted_coordinator_keys is empty: this agent runs unsigned tasks from anyone who can write "
                    "to the broker (list the coordinator's certificate in trusted_coordinator_keys)")
        return None
    try:
        verifier = Verifier.load(config.trusted_coordinator_keys)
    except SigningError as exc:
        raise AgentError(str(exc)) from None
    log.info("running only tasks signed by coordinator key(s) %s", ", ".join(verifier.fingerprints))
    return verifier


def _context(config: AgentSettings, settings: FleetSettings, pd: PDClient, store: metapb_pb2.Store,
             staging: Path, verifier: Verifier | None) -> AgentContext:
    _own_staging_dir(staging)
    key = load_or_create_private_key(staging)  # persists: a restarted agent opens boxes sealed before
    metrics.bind(store.id)
    metrics_url, _server = metrics.serve(config.metrics_address, config.metrics_port)
    info = AgentInfo.for_this_process(cluster_id=pd.cluster_id, store_id=store.id, store_address=store.address,
                                      public_key=public_key_bytes(key).hex(),
                                      allowed_destinations=config.allowed_destinations, metrics_url=metrics_url,
                                      trusted_signers=verifier.fingerprints if verifier is not None else [],
                                      worker_name=worker_name(config, pd.cluster_id, store.id))
    client = redis_client(settings.broker)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise AgentError(broker_problem(settings.broker, exc)) from None
    context = AgentContext(info=info, cluster_id=pd.cluster_id, pd_address=pd.address, staging_dir=staging,
                           redis=client, private_key=key, tls=config.tls,
                           store_import_dir=config.store_import_dir)
    context.clean_staging()
    return context


def _own_staging_dir(staging: Path) -> None:
    found = staging_dir.prepare(staging)  # the check --check-config runs (br_agent.staging_dir)
    if found:
        raise AgentError(found)


def _serve(context: AgentContext, settings: FleetSettings, config: AgentSettings, pd: PDClient,
           verifier: Verifier | None) -> int:
    set_context(context)
    metrics.time_tasks()
    app = make_app(settings.broker, settings, verifier=verifier)
    for module in task_modules():
        __import__(module)
    heartbeat = Heartbeat(Registry(context.redis), context.info, settings.heartbeat_interval,
                          settings.heartbeat_ttl, running=running_tasks.running)
    queues = agent_queues(context.cluster_id, context.store_id)
    worker = app.Worker(hostname=context.info.worker_name, pool="threads", concurrency=config.concurrency,
                        queues=queues, loglevel=config.log_level,
                        without_mingle=True, without_gossip=True, quiet=True, optimization="fair")
    log.info("br-agent %s serving store %d of cluster %d at %s (queues %s), staging in %s", context.instance,
             context.store_id, context.cluster_id, context.info.store_address, ", ".join(queues),
             context.staging_dir)
    heartbeat.start()
    try:
        worker.start()
        return worker.exitcode or 0
    finally:
        stopping = time.monotonic()
        heartbeat.stop()
        set_context(None)
        context.close()
        pd.close()
        log.info("br-agent %s stopped (%.1fs to close its heartbeat, storages and channels)", context.instance,
                 time.monotonic() - stopping)

