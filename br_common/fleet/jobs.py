"""Job checkpoint and state in Redis: resume by rerunning the same command; one runner at a time.

Why Redis and not storage: backup's minimum IAM policy (ListBucket, PutObject,
AbortMultipartUpload) cannot read objects back, so a checkpoint in the bucket is unreadable.

    spec = JobSpec(kind="backup", cluster_id=cid, storage_url=clean_url, ranges=[KeyRange()],
                   options={"compression": "zstd"})
    jobs = JobStore(redis_client, spec.job_id())
    lease = Lease(redis_client, jobs.lease_key, ttl_ms=30_000)
    if not lease.acquire():                          # exactly one identical command proceeds
        raise SystemExit(f"job {jobs.job_id} is running: {lease.holder()}")
    lease.start_keepalive()                          # renews every ttl/3; lease.lost is set if stolen
    state = jobs.create(spec)                        # or the existing record: resume
    backup_ts = jobs.fix_job_ts(pd.tso())            # the first run's ts wins
    for rec in jobs.ranges(): ...                    # completed ranges and their files: skip them
    jobs.add_range(RangeRecord(range=r, files=files))
    jobs.finish("done"); lease.release()

Agents call `JobStore(client, job_id).skip_reason(attempt)` before working: a message
redelivered after its job finished, or of an attempt the coordinator superseded, is dropped
(late redeliveries must never overwrite a finished backup's objects).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Literal

import redis
from pydantic import BaseModel, Field

from br_common.fleet.messages import FileInfo, KeyRange

log = logging.getLogger(__name__)

# interrupted: Ctrl-C or SIGTERM; failed: an error. Both resume when the same command is rerun
# (until `resumable_until`); abandoned: the operator gave up on it (`br fleet abandon`).
JobStatus = Literal["running", "interrupted", "failed", "done", "abandoned"]
RESUMABLE = ("running", "interrupted", "failed")
KEY_PREFIX = "br:job:"
JOB_TS_FIELD = "job_ts"
LEGACY_TS_FIELD = "backup_ts"  # what records written before job_ts call it (read, and migrated on resume)


class JobSpec(BaseModel):
    """What identifies a job: the same command against the same cluster and path = same job."""

    kind: str
    cluster_id: int
    storage_url: str  # credential-free: the job id must not depend on (or leak) keys
    ranges: list[KeyRange]
    options: dict[str, str | int | bool | None] = Field(default_factory=dict)

    def job_id(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class RangeRecord(BaseModel):
    range: KeyRange
    files: list[FileInfo] = Field(default_factory=list)


class JobState(BaseModel):
    job_id: str
    spec: JobSpec
    # The job's one timestamp, fixed by its first run and reused by every rerun (0 = not yet):
    # a backup's backup ts (the snapshot it reads), a restore's restore ts (the commit ts of
    # everything it ingests). Nonzero also tells a rerun that an earlier run got that far.
    job_ts: int = 0
    lock_acquired: bool = False
    status: JobStatus = "running"
    message: str = ""
    created: float = 0.0
    updated: float = 0.0
    resumable_until: float = 0.0  # an interrupted/failed job's GC safe point is held until then


class JobStore:
    def __init__(self, client: redis.Redis, job_id: str, ttl_days: int = 30) -> None:
        self._redis = client
        self.job_id = job_id
        self.ttl_seconds = ttl_days * 86400
        self.key = f"{KEY_PREFIX}{job_id}"
        self.ranges_key = f"{self.key}:ranges"
        self.cancelled_key = f"{self.key}:cancelled"
        self.sent_key = f"{self.key}:sent"  # every attempt ever sent: a rerun cancels those of earlier runs
        self.lease_key = f"{self.key}:lease"

    # --- record ---------------------------------------------------------------------------
    def create(self, spec: JobSpec) -> JobState:
        """Create the record, or return the existing one (resume); status becomes running."""
        if spec.job_id() != self.job_id:
            raise ValueError("spec does not match this job id")
        now = time.time()
        self._redis.hsetnx(self.key, "spec", spec.model_dump_json())
        self._redis.hsetnx(self.key, "created", now)
        self._redis.hset(self.key, mapping={"status": "running", "message": "", "updated": now})
        self._redis.persist(self.key)
        for key in (self.ranges_key, self.cancelled_key, self.sent_key):
            self._redis.persist(key)
        state = self.load()
        assert state is not None
        return state

    def load(self) -> JobState | None:
        raw = {k.decode(): v.decode() for k, v in self._redis.hgetall(self.key).items()}
        if "spec" not in raw:
            return None
        return JobState(job_id=self.job_id, spec=JobSpec.model_validate_json(raw["spec"]),
                        job_ts=int(raw.get(JOB_TS_FIELD) or raw.get(LEGACY_TS_FIELD) or 0),
                        lock_acquired=raw.get("lock_acquired") == "1",
                        status=raw.get("status", "running"), message=raw.get("message", ""),
                        created=float(raw.get("created", 0)), updated=float(raw.get("updated", 0)),
                        resumable_until=float(raw.get("resumable_until", 0)))

    def fix_job_ts(self, ts: int) -> int:
        """Record the job's ts unless a previous run did; returns the recorded one (a rerun reuses
        it). A record of an older version keeps the ts it stored under its old field name."""
        legacy = self._redis.hget(self.key, LEGACY_TS_FIELD)
        self._redis.hsetnx(self.key, JOB_TS_FIELD, int(legacy) if legacy is not None else ts)
        return int(self._redis.hget(self.key, JOB_TS_FIELD))

    def mark_lock_acquired(self) -> None:
        self._redis.hset(self.key, mapping={"lock_acquired": "1", "updated": time.time()})

    def add_range(self, record: RangeRecord) -> None:
        field = f"{record.range.start.hex()}:{record.range.end.hex()}"
        self._redis.hset(self.ranges_key, field, record.model_dump_json())

    def ranges(self) -> list[RangeRecord]:
        records = [RangeRecord.model_validate_json(v) for v in self._redis.hvals(self.ranges_key)]
        return sorted(records, key=lambda r: r.range.start)

    def finish(self, status: JobStatus, message: str = "", resumable_for: float = 0.0) -> None:
        """Final status; the records then expire after ttl_days (kept for resume/inspection).
        `resumable_for`: seconds a rerun can still resume (the job's GC safe point is kept that long)."""
        now = time.time()
        self._redis.hset(self.key, mapping={"status": status, "message": message, "updated": now,
                                            "resumable_until": now + resumable_for if resumable_for else 0})
        for key in (self.key, self.ranges_key, self.cancelled_key, self.sent_key):
            self._redis.expire(key, self.ttl_seconds)

    def abandon(self) -> None:
        """The operator gave up: status abandoned, and the ts and completed ranges are forgotten, so a
        rerun of the same command starts over at a new ts instead of resuming below the GC safe point."""
        self._redis.hdel(self.key, JOB_TS_FIELD, LEGACY_TS_FIELD)
        self._redis.delete(self.ranges_key)
        self.finish("abandoned", "abandoned by the operator")

    # --- attempts (agents read these) -----------------------------------------------------------
    def cancel_attempt(self, attempt: str) -> None:
        self._redis.sadd(self.cancelled_key, attempt)

    def note_sent(self, attempt: str) -> None:
        self._redis.sadd(self.sent_key, attempt)

    def cancel_earlier_attempts(self) -> int:
        """At the start of a run: every attempt an earlier run sent is cancelled (its coordinator is
        gone; its straggling uploads land under its own names, which this run never records).
        Returns how many were cancelled."""
        earlier = self._redis.smembers(self.sent_key)
        if earlier:
            self._redis.sadd(self.cancelled_key, *earlier)
        return len(earlier)

    def skip_reason(self, attempt: str) -> str:
        """Why an agent must not run this attempt ("" = run it)."""
        status = self._redis.hget(self.key, "status")
        if status is None:
            return f"job {self.job_id} is unknown"
        if status.decode() != "running":
            return f"job {self.job_id} is {status.decode()}"
        if not self._redis.exists(self.lease_key):
            return f"no coordinator holds job {self.job_id}"
        if self._redis.sismember(self.cancelled_key, attempt):
            return f"attempt {attempt} was superseded"
        return ""


def owner_token() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Lease:
    """A Redis lease (SET NX PX + token-checked renew/release) with an optional keepalive thread."""

    def __init__(self, client: redis.Redis, key: str, ttl_ms: int = 30_000, token: str | None = None) -> None:
        self._redis = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = token or owner_token()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        return bool(self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def seize(self) -> None:
        """Take the lease whoever holds it (the caller knows the holder is dead)."""
        self._redis.set(self.key, self.token, px=self.ttl_ms)

    def holder(self) -> str | None:
        value = self._redis.get(self.key)
        return value.decode() if value is not None else None

    def remaining_ms(self) -> int:
        return max(0, int(self._redis.pttl(self.key)))

    def renew(self) -> bool:
        return self._if_mine(lambda pipe: pipe.pexpire(self.key, self.ttl_ms))

    def release(self) -> None:
        self.stop_keepalive()
        self._if_mine(lambda pipe: pipe.delete(self.key))

    def _if_mine(self, action) -> bool:  # noqa: ANN001 - a pipeline callback
        """Optimistic transaction: act only while the key still holds our token."""
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(self.key)
                if pipe.get(self.key) != self.token.encode():
                    pipe.unwatch()
                    return False
                pipe.multi()
                action(pipe)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def start_keepalive(self) -> None:
        self._thread = threading.Thread(target=self._keepalive, name="br-lease", daemon=True)
        self._thread.start()

    def stop_keepalive(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _keepalive(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not self.renew():
                    log.error("lost the lease %s", self.key)
                    self.lost.set()
                    return
            except redis.RedisError as exc:  # transient: the next round may succeed before the TTL
                log.warning("lease renewal failed: %s", exc)
