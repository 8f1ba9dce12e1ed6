"""Queue names: one queue per store (`br.store.<id>`), one shared storage queue (`br.storage`).

An agent consumes only its store's queue and the storage queue; more hosts = more agents on
more queues. The coordinator routes per-store work with `apply_async(queue=store_queue(id))`
and storage-side work (lock, backupmeta) with `queue=STORAGE_QUEUE`, which any agent may run
with its own credentials.
"""
from __future__ import annotations

from kombu import Queue

STORE_QUEUE_PREFIX = "br.store."
STORAGE_QUEUE = "br.storage"


def store_queue(store_id: int) -> str:
    if store_id <= 0:
        raise ValueError(f"invalid store id {store_id}")
    return f"{STORE_QUEUE_PREFIX}{store_id}"


def store_id_of(queue: str) -> int | None:
    """The store id of a per-store queue name, None for any other queue."""
    if not queue.startswith(STORE_QUEUE_PREFIX):
        return None
    tail = queue.removeprefix(STORE_QUEUE_PREFIX)
    return int(tail) if tail.isdigit() else None


def agent_queues(store_id: int) -> list[Queue]:
    """What the agent beside store `store_id` consumes."""
    return [Queue(store_queue(store_id)), Queue(STORAGE_QUEUE)]
