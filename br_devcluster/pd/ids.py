"""The one id allocator for stores, regions and peers (and AllocID).

Persists a limit ahead of the ids handed out (like real PD's id allocator), so most
allocations do not touch the disk; a restarted PD continues after the saved limit.
"""
from __future__ import annotations

import threading
from pathlib import Path

from pydantic import BaseModel

from br_devcluster.pd import persist

SAVE_STEP = 1000
MAX_COUNT = 100_000


class IdState(BaseModel):
    saved_limit: int = 0


class IdAllocator:
    def __init__(self, path: Path, step: int = SAVE_STEP) -> None:
        self._path = path
        self._step = step
        self._lock = threading.Lock()
        saved = persist.read(path, IdState)
        self._limit = saved.saved_limit if saved else 0
        self._next = self._limit + 1

    def alloc(self, count: int = 1) -> int:
        """Reserve count consecutive ids; returns the first."""
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"id count must be between 1 and {MAX_COUNT}, got {count}")
        with self._lock:
            first = self._next
            last = first + count - 1
            if last > self._limit:
                persist.write_atomic(self._path, IdState(saved_limit=last + self._step))
                self._limit = last + self._step
            self._next = last + 1
            return first
