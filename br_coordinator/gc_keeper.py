"""A PD service GC safe point held for a whole job: registered just below the job's ts (as BR does,
backup_ts - 1, so versions at backup_ts itself stay readable), refreshed every ttl/3 on a daemon
thread, and at the end:

* removed when the job completed;
* kept for `keep_for` seconds (the checkpoint TTL, `--checkpoint-gcttl`) when it was interrupted
  or failed, so that a rerun of the same command resumes even after PD's gc_life_time has passed
  (BR keeps its checkpoint safe point 72 min). `br fleet abandon` removes it earlier.

If the coordinator dies the safe point expires after ttl seconds on its own, so a crashed
backup never blocks GC for longer than --gcttl.
"""
from __future__ import annotations

import logging
import threading
from types import TracebackType

from br_common.pd_client import PDClient, PDError
from br_coordinator.errors import CommandError

log = logging.getLogger(__name__)


def service_id(job_id: str) -> str:
    """The service safe point of a job (what `br fleet abandon` removes)."""
    return f"br-{job_id}"


def remove_safe_point(pd: PDClient, job_id: str) -> None:
    pd.update_service_gc_safe_point(service_id(job_id), 0, 0)


class GCKeeper:
    def __init__(self, pd: PDClient, job_id: str, job_ts: int, ttl_seconds: int, keep_for: int = 0) -> None:
        self.pd = pd
        self.service_id = service_id(job_id)
        self.job_ts = job_ts
        self.safe_point = job_ts - 1
        self.ttl = ttl_seconds
        self.keep_for = keep_for
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="br-gc-keeper", daemon=True)

    def __enter__(self) -> "GCKeeper":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(keep_for=self.keep_for if exc_type is not None else 0)

    def start(self) -> None:
        try:
            minimum = self.pd.update_service_gc_safe_point(self.service_id, self.ttl, self.safe_point)
        except PDError as exc:
            raise CommandError(f"cannot register the GC safe point {self.service_id}: {exc}") from None
        if minimum > self.safe_point:
            self._remove()
            raise CommandError(f"ts {self.job_ts} is below the cluster's GC safe point {minimum}: "
                               f"its versions may already be collected; use a later --backupts/--timeago")
        log.info("registered service GC safe point %s at %d (ttl %ds)", self.service_id, self.safe_point, self.ttl)
        self._thread.start()

    def stop(self, keep_for: int = 0) -> None:
        """Stop refreshing; remove the safe point, or with `keep_for` > 0 leave it for that long."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if keep_for > 0:
            self._keep(keep_for)
        else:
            self._remove()

    def _run(self) -> None:
        while not self._stop.wait(max(1.0, self.ttl / 3)):
            try:
                self.pd.update_service_gc_safe_point(self.service_id, self.ttl, self.safe_point)
                self.failures = 0
            except PDError as exc:  # keep trying: the TTL leaves two more chances
                self.failures += 1
                log.warning("refreshing GC safe point %s failed (%d in a row): %s", self.service_id,
                            self.failures, exc)

    def _keep(self, seconds: int) -> None:
        try:
            self.pd.update_service_gc_safe_point(self.service_id, seconds, self.safe_point)
            log.info("kept service GC safe point %s at %d for %ds: rerun the same command to resume", self.service_id,
                     self.safe_point, seconds)
        except PDError as exc:
            log.warning("could not extend GC safe point %s (it expires in %ds): %s", self.service_id, self.ttl, exc)

    def _remove(self) -> None:
        try:
            self.pd.update_service_gc_safe_point(self.service_id, 0, self.safe_point)
            log.info("removed service GC safe point %s", self.service_id)
        except PDError as exc:
            log.warning("could not remove GC safe point %s (it expires in %ds): %s", self.service_id, self.ttl, exc)
