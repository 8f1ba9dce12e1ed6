"""Which keys this store wrote since the split checker last looked, and how many bytes.

TiKV's split checker only looks at regions whose approximate size changed (raftstore counts the
bytes each write adds to a region); the devcluster records the written keys here, in the engine,
so that one pass can tell which regions grew without scanning every region's data. An ingested
SST counts at its first key with its size (it lies in one region). Past `limit` keys the record gives up
the detail and marks everything too, so a bulk load costs bounded memory.
"""
from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Sequence

from br_devcluster.store.txn_reader import Modify

DEFAULT_LIMIT = 200_000
BATCH_DETAIL = 32


class Written:
    """One taken record: bytes written per key range (inf when unknown: everything grew)."""

    def __init__(self, sizes: list[tuple[bytes, int]], everything: bool) -> None:
        ordered = sorted(sizes)
        self._keys = [key for key, _ in ordered]
        self._sums = [0, *itertools.accumulate(size for _, size in ordered)]
        self._everything = everything

    def bytes_in(self, start: bytes, end: bytes) -> float:
        """Bytes written to keys in [start, end) (end b"": unbounded)."""
        if self._everything:
            return math.inf
        low = bisect.bisect_left(self._keys, start)
        high = bisect.bisect_left(self._keys, end) if end else len(self._keys)
        return self._sums[max(high, low)] - self._sums[low]


class WrittenKeys:
    """Thread-safe: every write batch records, the split checker takes."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._sizes: list[tuple[bytes, int]] = []
        self._everything = True  # nothing is known about the data a store starts with

    def record(self, modifies: Sequence[Modify]) -> None:
        """Bytes per key; a batch of more than BATCH_DETAIL changes counts as one entry at its
        smallest key: the commands and replicated chunks that write such batches stay inside one
        region (the services check it), so the region of that key is the one that grew, and a
        transactional load (four changes per key) keeps its detail instead of passing the limit."""
        if len(modifies) > BATCH_DETAIL:
            sizes = [(min(m.key for m in modifies), sum(len(m.key) + len(m.value or b"") for m in modifies))]
        else:
            sizes = [(key, len(key) + len(value or b"")) for _, key, value in modifies]
        self.record_sizes(sizes)

    def record_sizes(self, sizes: Sequence[tuple[bytes, int]]) -> None:
        """(key, bytes) of writes the caller counted itself: an ingested SST lies in one region
        (the import service checks it), so its first key and size say which region grew by how much."""
        with self._lock:
            if self._everything:
                return
            self._sizes.extend(sizes)
            if len(self._sizes) > self._limit:
                self._mark_everything()

    def record_everything(self) -> None:
        """Keys arrived that were not listed (an SST ingest)."""
        with self._lock:
            self._mark_everything()

    def take(self) -> Written:
        """What was written since the last take; the record starts empty again."""
        with self._lock:
            taken = Written(self._sizes, self._everything)
            self._sizes, self._everything = [], False
            return taken

    def _mark_everything(self) -> None:
        self._sizes, self._everything = [], True
