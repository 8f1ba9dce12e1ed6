"""Queue names, scoped by cluster: one queue per store (`br.<cluster_id>.store.<store_id>`) and one
shared storage queue per cluster (`br.<cluster_id>.storage`).

Why the cluster id: store ids repeat across clusters (every cluster has a store 1), so two
clusters whose agents share one Redis database would otherwise take each other's tasks. An
agent learns its cluster id from PD at startup and consumes only its store's queue and its
cluster's storage queue; more hosts = more agents on more queues. The coordinator routes per-store
work with `apply_async(queue=store_queue(cluster_id, store_id))` and storage-side work (lock,
backupmeta) with `queue=storage_queue(cluster_id)`, which any agent of that cluster may run with
its own credentials.

A task sent without a queue goes to UNROUTED_QUEUE, which no agent consumes: it waits there,
visible, instead of running in whichever cluster happens to pick it up.
"""
from __future__ import annotations

import re

UNROUTED_QUEUE = "br.unrouted"
_STORE_QUEUE_RE = re.compile(r"^br\.(\d+)\.store\.(\d+)$")


def store_queue(cluster_id: int, store_id: int) -> str:
    _check(cluster_id, store_id)
    return f"br.{cluster_id}.store.{store_id}"


def storage_queue(cluster_id: int) -> str:
    _check(cluster_id)
    return f"br.{cluster_id}.storage"


def store_of(queue: str) -> tuple[int, int] | None:
    """(cluster id, store id) of a per-store queue name, None for any other queue."""
    match = _STORE_QUEUE_RE.match(queue)
    return (int(match.group(1)), int(match.group(2))) if match else None


def agent_queues(cluster_id: int, store_id: int) -> list[str]:
    """What the agent beside store `store_id` of cluster `cluster_id` consumes (and nothing else)."""
    return [store_queue(cluster_id, store_id), storage_queue(cluster_id)]


def _check(cluster_id: int, store_id: int = 1) -> None:
    if cluster_id <= 0:
        raise ValueError(f"invalid cluster id {cluster_id}")
    if store_id <= 0:
        raise ValueError(f"invalid store id {store_id}")
