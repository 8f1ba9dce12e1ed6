"""The timestamp oracle: strictly increasing (physical ms, logical) pairs, also across restarts.

Like real PD, a time window ahead of what is handed out is persisted (the "saved limit"); a
restarted PD starts after it, so it never needs to know the exact last timestamp it gave out.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from br_common.tso import LOGICAL_BITS
from br_devcluster.pd import persist

MAX_LOGICAL = (1 << LOGICAL_BITS) - 1
SAVE_WINDOW_MS = 3000


class TsoState(BaseModel):
    saved_limit_ms: int = 0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class TsoAllocator:
    """Thread-safe; allocate(n) reserves n timestamps and returns the last one."""

    def __init__(self, path: Path, clock_ms: Callable[[], int] = wall_clock_ms,
                 window_ms: int = SAVE_WINDOW_MS) -> None:
        self._path = path
        self._clock_ms = clock_ms
        self._window_ms = window_ms
        self._lock = threading.Lock()
        saved = persist.read(path, TsoState)
        self._limit_ms = saved.saved_limit_ms if saved else 0
        # everything handed out before a restart had physical <= the saved limit
        self._physical = self._limit_ms + 1 if saved else 0
        self._logical = 0

    @property
    def saved_limit_ms(self) -> int:
        return self._limit_ms

    def allocate(self, count: int) -> tuple[int, int]:
        if not 1 <= count <= MAX_LOGICAL:
            raise ValueError(f"tso count must be between 1 and {MAX_LOGICAL}, got {count}")
        with self._lock:
            now = self._clock_ms()
            if now > self._physical:
                self._physical, self._logical = now, 0
            if self._logical + count > MAX_LOGICAL:  # logical space of this ms is used up
                self._physical, self._logical = self._physical + 1, 0
            self._logical += count
            if self._physical > self._limit_ms:
                self._save(self._physical + self._window_ms)
            return self._physical, self._logical

    def _save(self, limit_ms: int) -> None:
        persist.write_atomic(self._path, TsoState(saved_limit_ms=limit_ms))
        self._limit_ms = limit_ms
