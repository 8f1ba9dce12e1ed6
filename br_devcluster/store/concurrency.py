"""The store's max ts, as TiKV's ConcurrencyManager keeps it (components/concurrency_manager).

Every read at a ts raises it (storage prepare_snap_ctx, scan_lock, check_txn_status, and the
backup endpoint before its scan); an async-commit prewrite takes min_commit_ts above it, so that
a transaction which commits without asking PD for a commit ts still commits after every read
that has already looked at its keys. TiKV starts it at a PD timestamp when the store starts.
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

    def max_ts(self) -> int:
        with self._lock:
            return self._max_ts

    def update_max_ts(self, ts: int) -> None:
        """No effect if max_ts >= ts or ts is TS_MAX (a read of the latest, as TiKV skips it)."""
        if ts == TS_MAX:
            return
        with self._lock:
            self._max_ts = max(self._max_ts, ts)
