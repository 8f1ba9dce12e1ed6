"""A PD service GC safe point held for a whole job: registered at backup_ts, refreshed every
ttl/3 on a daemon thread, removed at the end (also on failure and Ctrl-C: context manager).

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


class GCKeeper:
    def __init__(self, pd: PDClient, service_id: str, safe_point: int, ttl_seconds: int) -> None:
        self.pd = pd
        self.service_id = service_id
        self.safe_point = safe_point
        self.ttl = ttl_seconds
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="br-gc-keeper", daemon=True)

    def __enter__(self) -> "GCKeeper":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        try:
            minimum = self.pd.update_service_gc_safe_point(self.service_id, self.ttl, self.safe_point)
        except PDError as exc:
            raise CommandError(f"cannot register the GC safe point {self.service_id}: {exc}") from None
        if minimum > self.safe_point:
            self._remove()
            raise CommandError(f"backup ts {self.safe_point} is below the cluster's GC safe point {minimum}: "
                               f"its versions may already be collected; use a later --backupts/--timeago")
        log.info("registered service GC safe point %s at %d (ttl %ds)", self.service_id, self.safe_point, self.ttl)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
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

    def _remove(self) -> None:
        try:
            self.pd.update_service_gc_safe_point(self.service_id, 0, self.safe_point)
            log.info("removed service GC safe point %s", self.service_id)
        except PDError as exc:
            log.warning("could not remove GC safe point %s (it expires in %ds): %s", self.service_id, self.ttl, exc)
