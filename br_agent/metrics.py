"""The agent's Prometheus endpoint: what this agent moved and how its tasks went, per store.

    metrics.bind(store_id)                         # every sample carries store="<id>"
    url = metrics.serve("127.0.0.1", 9464)         # "" when off (port 0) or the port is taken
    metrics.time_tasks()                           # Celery signals -> task durations
    storage = MeteredStorage(storage)              # bytes up/down (br_agent.metered_storage)
    metrics.watch_s3_client(storage.client)        # botocore retries (throttling, 5xx, resets)

Metrics (all with label store):
* br_agent_bytes_uploaded_total, br_agent_bytes_downloaded_total
* br_agent_task_duration_seconds{task, outcome}: histogram; task is the task's real name
  (br.backup.range, ...), outcome success, failure or refused (an allowlist refusal)
* br_agent_s3_retries_total: S3 requests botocore repeated (SlowDown, 5xx, connection errors)
* br_agent_throttled_seconds_total: time tasks slept in this agent's rate limiter
  (restore downloads; a backup's --ratelimit is enforced inside TiKV and on uploads)

Why a failing endpoint is only a warning: two TiKV instances on one host means two agents with
the same default port; monitoring must not stop backups. `br fleet status` shows which agent
has no metrics URL. Flower has its own /metrics (Celery task events, all workers).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from celery import signals
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from br_common.fleet.task_errors import failure_kind
from br_common.storage import ratelimit

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

BYTES_UPLOADED = Counter("br_agent_bytes_uploaded", "Bytes this agent wrote to backup storage", ["store"])
BYTES_DOWNLOADED = Counter("br_agent_bytes_downloaded", "Bytes this agent read from backup storage", ["store"])
TASK_DURATION = Histogram("br_agent_task_duration_seconds", "Run time of the tasks this agent executed",
                          ["store", "task", "outcome"], buckets=DURATION_BUCKETS)
S3_RETRIES = Counter("br_agent_s3_retries", "S3 requests repeated by botocore (throttling, 5xx, resets)", ["store"])

_store = "0"
_started: dict[str, float] = {}
_lock = threading.Lock()


class _Throttled(Collector):
    """Reads the process-wide rate-limiter wait at scrape time (br_common.storage.ratelimit)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("br_agent_throttled_seconds", "Seconds tasks waited in this agent's rate "
                                     "limiter", labels=["store"])
        family.add_metric([_store], ratelimit.WAITED.seconds())
        yield family


REGISTRY.register(_Throttled())


def bind(store_id: int) -> None:
    """Label every sample with this store; the counters show 0 from the start, not nothing."""
    global _store
    _store = str(store_id)
    BYTES_UPLOADED.labels(_store)
    BYTES_DOWNLOADED.labels(_store)
    S3_RETRIES.labels(_store)


def uploaded(nbytes: int) -> None:
    BYTES_UPLOADED.labels(_store).inc(nbytes)


def downloaded(nbytes: int) -> None:
    BYTES_DOWNLOADED.labels(_store).inc(nbytes)


def serve(address: str, port: int) -> tuple[str, Any]:
    """Start the endpoint; (URL, server to shut down) or ("", None) when off or failed (warned)."""
    if not port:
        return "", None
    try:
        server, _thread = start_http_server(port, addr=address)
    except OSError as exc:
        log.warning("no Prometheus endpoint: cannot listen on %s:%d: %s", address, port, exc.strerror or exc)
        return "", None
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{port}/metrics"
    log.info("Prometheus metrics on %s", url)
    return url, server


def watch_s3_client(client: Any) -> None:
    """Count botocore's retries of every call of this boto3 client."""
    client.meta.events.register("after-call.s3", _after_s3_call)


def _after_s3_call(parsed: dict | None = None, **_: Any) -> None:
    retries = ((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts", 0)
    if retries:
        S3_RETRIES.labels(_store).inc(retries)


def time_tasks() -> None:
    """Connect once (weak=False: the handlers are module functions, kept anyway)."""
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="br-agent-metrics-prerun")
    signals.task_postrun.connect(_task_finished, weak=False, dispatch_uid="br-agent-metrics-postrun")


def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        with _lock:
            _started[task_id] = time.monotonic()


def _task_finished(task_id: str | None = None, task: Any = None, state: str | None = None, retval: Any = None,
                   **_: Any) -> None:
    with _lock:
        started = _started.pop(task_id or "", None)
    if started is None:
        return
    TASK_DURATION.labels(_store, getattr(task, "name", "?"), _outcome(state, retval)).observe(
        time.monotonic() - started)


def _outcome(state: str | None, retval: Any) -> str:
    if state == "SUCCESS":
        return "success"
    if failure_kind(retval) == "refused":
        return "refused"
    return (state or "unknown").lower()
