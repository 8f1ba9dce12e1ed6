"""However a restore ends, the stores keep nothing it staged and will never ingest.

kvproto has no RPC that drops an SST staged by Download, so each store's agent removes the files
(br.restore.discard, TiKV's import-file naming): after a failure or interrupt, what no finished work
ingested (a rerun stages its pieces afresh); once the job completed, whatever any run of the job
staged (a killed run's pieces under an epoch that changed since). Best effort within a timeout,
never raising: the restore's own outcome is what the operator must see.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from celery import Celery
from celery.result import AsyncResult

from br_common.fleet import messages as m
from br_common.fleet import restore_messages as rm
from br_common.fleet.app import send
from br_common.fleet.queues import store_queue
from br_common.fleet.registry import Registry
from br_common.pd_client import PDClient
from br_coordinator.follow.engine import FollowEngine
from br_coordinator.follow.restore_book import RestoreBook
from br_coordinator.restore_plan import job_tag

log = logging.getLogger("br.restore")


@dataclass
class StagedDiscard:
    app: Celery
    pd: PDClient
    registry: Registry
    job_id: str

    def send(self, store_id: int, uuids: set[bytes], tag: bytes) -> AsyncResult:
        task = rm.DiscardTask(job_id=self.job_id, cluster_id=self.pd.cluster_id, store_id=store_id,
                              uuids=sorted(uuids), job_tag=tag)
        shadow = f"restore discard job={self.job_id} store={store_id} {len(uuids)} staged"
        return send(self.app, rm.DISCARD, task, queue=store_queue(self.pd.cluster_id, store_id), shadow=shadow)

    def stores(self, unconsumed: dict[int, set[bytes]], completed: bool) -> list[int]:
        """Completed: every store with a live agent (one without cannot have staged anything)."""
        if completed:
            return sorted({a.store_id for a in self.registry.alive(self.pd.cluster_id)})
        return sorted(unconsumed)


def discard_unconsumed(discard: StagedDiscard, engine: FollowEngine, book: RestoreBook, timeout: float,
                       completed: bool) -> int:
    """Returns how many staged SSTs the agents removed."""
    deadline = time.monotonic() + timeout
    engine.wait_withdrawn(deadline)  # a withdrawn download already running still stages its pieces
    unconsumed = book.unconsumed()
    tag = job_tag(discard.job_id) if completed else b""
    try:
        sent = [(s, discard.send(s, unconsumed.get(s, set()), tag)) for s in discard.stores(unconsumed, completed)]
    except Exception as exc:  # noqa: BLE001 - the broker is gone: nothing to send through
        log.warning("staged imports not discarded: %s", exc)
        return 0
    removed = 0
    for store_id, result in sent:
        try:
            answer = result.get(timeout=max(0.1, deadline - time.monotonic()))
            removed += m.parse(rm.DiscardResult, answer).removed
        except Exception as exc:  # noqa: BLE001
            log.warning("staged imports not discarded on store %d: %s", store_id, exc)
        finally:
            result.forget()
    return removed
