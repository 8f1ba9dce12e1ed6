"""The lowest commit ts written to the write CF since the GC loop last looked.

GC at safe point sp can only find something new when a write record at or below sp appeared
since its last pass (a commit, a rollback, a restore's SST ingest with old commit ts) or when sp
passed a version the last pass saw above it. The engine records the first here, so the GC loop
can skip the passes that would read every key and drop nothing.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

from br_common.txn_codec import ts_of
from br_devcluster.store.txn_reader import CF_WRITE, Modify



class WriteVersions:
    """Thread-safe; None: nothing written since the last take, 0: unknown (any version)."""

    def __init__(self, empty: bool = False) -> None:
        self._lock = threading.Lock()
        # a store starts with data of any age; one without write records has nothing to collect
        self._lowest: int | None = None if empty else 0

    def record(self, modifies: Iterable[Modify]) -> None:
        lowest = min((ts_of(key)
                      for cf, key, value in modifies if cf == CF_WRITE and value is not None), default=None)
        if lowest is not None:
            self.record_ts(lowest)

    def record_ts(self, ts: int) -> None:
        with self._lock:
            self._lowest = ts if self._lowest is None else min(self._lowest, ts)

    def record_unknown(self) -> None:
        """Records arrived that were not listed (an SST ingest): any version may be there."""
        self.record_ts(0)

    def take(self) -> int | None:
        with self._lock:
            lowest, self._lowest = self._lowest, None
            return lowest
