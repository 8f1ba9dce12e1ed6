"""The GC loop: every interval (or when triggered, e.g. by SIGUSR1) read PD's GC safe point
and drop the transactional versions no read at or after it can see (percolator.gc over the whole
engine: every store collects its own copy, the result depends only on the data and the safe
point; raw API V1 data is unversioned and needs none); then remove the staged SSTs that will never be
ingested (their region changed, as TiKV's import cleanup does, or older than the staged TTL: see staging)."""
from __future__ import annotations

import logging
import threading

from br_common.pd_client import PDClient, PDError
from br_devcluster.store import percolator
from br_devcluster.store.cf_engine import CFEngine
from br_devcluster.store.staging import Staging
from br_devcluster.store.txn_reader import TxnReader

log = logging.getLogger(__name__)

_DELETE_BATCH = 10_000


def collect_garbage(engine: CFEngine, safe_point: int, stop: threading.Event | None = None) -> int:
    """Apply percolator.gc at safe_point in batches; returns how many keys it deleted. GC only
    touches versions below the safe point, which no command writes, so no lock is needed."""
    modifies = percolator.gc(TxnReader(engine.snapshot_cfs()), safe_point)
    for start in range(0, len(modifies), _DELETE_BATCH):
        if stop is not None and stop.is_set():
            return start
        engine.apply(modifies[start:start + _DELETE_BATCH])
    return len(modifies)


class GCLoop:
    def __init__(self, engine: CFEngine, pd: PDClient, interval: float, staging: Staging | None = None,
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
        removed = collect_garbage(self._engine, safe_point, self._stop)
        self.passes += 1
        log.info("GC pass %d at safe point %d removed %d versions", self.passes, safe_point, removed)
        return removed
