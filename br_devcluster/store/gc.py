"""The GC loop: every interval (or when triggered, e.g. by SIGUSR1) read PD's GC safe point
and drop the versions no read at or after it can see; then remove the staged SSTs that will never be
ingested (their region changed, as TiKV's import cleanup does, or older than the staged TTL: see staging)."""
from __future__ import annotations

import logging
import threading

from br_common.pd_client import PDClient, PDError
from br_devcluster.store.engine import Engine
from br_devcluster.store.staging import Staging

log = logging.getLogger(__name__)


class GCLoop:
    def __init__(self, engine: Engine, pd: PDClient, interval: float, staging: Staging | None = None,
                 staged_ttl: float = 3600.0, store_id: int = 0) -> None:
        self._engine = engine
        self._pd = pd
        self._interval = interval
        self._staging = staging
        self._staged_ttl = staged_ttl
        self._store_id = store_id
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gc", daemon=True)
        self.passes = 0

    def start(self) -> None:
        self._thread.start()

    def trigger(self) -> None:
        """Run a pass now (safe to call from a signal handler: it only sets an event)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.run_once()
            self.sweep_staging()

    def sweep_staging(self) -> int:
        """Remove stale and expired staged SSTs; returns how many (a failure is logged, the loop goes on)."""
        if self._staging is None:
            return 0
        try:
            stale = self._staging.remove_stale(self._pd, self._store_id) if self._store_id else 0
            return stale + self._staging.remove_expired(self._staged_ttl)
        except (PDError, OSError) as exc:
            log.warning("staged SST cleanup skipped: %s", exc)
            return 0

    def run_once(self) -> int:
        """One pass; returns the versions removed (0 when PD is unreachable)."""
        try:
            safe_point = self._pd.gc_safe_point()
        except PDError as exc:
            log.warning("GC skipped: %s", exc)
            return 0
        if safe_point == 0:
            return 0
        removed = self._engine.gc(safe_point, self._stop)
        self.passes += 1
        log.info("GC pass %d at safe point %d removed %d versions", self.passes, safe_point, removed)
        return removed
