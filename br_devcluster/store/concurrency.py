"""The store's max ts, as TiKV's ConcurrencyManager keeps it (components/concurrency_manager).

Every read at a ts raises it (storage prepare_snap_ctx, scan_lock, check_txn_status, and the
backup endpoint before its scan); an async-commit prewrite takes min_commit_ts above it, so that
a transaction which commits without asking PD for a commit ts still commits after every read
that has already looked at its keys. TiKV starts it at a PD timestamp when the store starts,
and raises it to a PD timestamp again when the store becomes a region's leader (reads the old
leader served are below that): until then the region refuses async commit (MaxTimestampNotSynced).
Here the store syncs a region lazily, at its first async-commit prewrite since it led it.
"""
from __future__ import annotations

import threading

from br_common.txn_codec import TS_MAX


class ConcurrencyManager:
    """Thread-safe; only the max ts (the in-memory lock table is the store's write lock here:
    prewrites and the views reads take are serialised by it)."""

    def __init__(self, latest_ts: int = 0) -> None:
        self._lock = threading.Lock()
        self._max_ts = latest_ts
        self._synced: set[int] = set()  # regions led since a PD timestamp raised max_ts

    def max_ts(self) -> int:
        with self._lock:
            return self._max_ts

    def update_max_ts(self, ts: int) -> None:
        """No effect if max_ts >= ts or ts is TS_MAX (a read of the latest, as TiKV skips it)."""
        if ts == TS_MAX:
            return
        with self._lock:
            self._max_ts = max(self._max_ts, ts)

    def is_synced(self, region_id: int) -> bool:
        with self._lock:
            return region_id in self._synced

    def sync(self, region_id: int, pd_ts: int) -> None:
        """A PD timestamp taken while this store leads the region: above every read of it anywhere."""
        self.update_max_ts(pd_ts)
        with self._lock:
            self._synced.add(region_id)

    def forget(self, region_id: int) -> None:
        """The store handed the region's leadership on: when it leads it again, sync again."""
        with self._lock:
            self._synced.discard(region_id)
