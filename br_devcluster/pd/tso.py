"""The timestamp oracle: strictly increasing (physical ms, logical) pairs, also across restarts.

Like real PD, a time window ahead of what is handed out is persisted (the "saved limit"); a
restarted PD starts after it, so it never needs to know the exact last timestamp it gave out.
`reset` is PD's admin reset-ts (POST /pd/api/v1/admin/reset-ts, served by pd.http_api): the
oracle jumps forward to a given ts, never back, and at most max-reset-ts-gap ahead unless forced.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from br_common.tso import LOGICAL_BITS, logical, physical_ms
from br_devcluster.pd import persist

MAX_LOGICAL = (1 << LOGICAL_BITS) - 1
SAVE_WINDOW_MS = 3000
MAX_RESET_TS_GAP_MS = 24 * 3600 * 1000  # PD's max-reset-ts-gap default (24h)


class TsoResetError(ValueError):
    """PD refuses the reset (its HTTP API answers 403 with this message)."""


class TsoState(BaseModel):
    saved_limit_ms: int = 0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def offset_clock_ms(offset_ms: int) -> Callable[[], int]:
    """The wall clock shifted (negative: a PD whose clock lags, as a misconfigured host's)."""
    return lambda: wall_clock_ms() + offset_ms


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
            self._follow_clock()
            if self._logical + count > MAX_LOGICAL:  # logical space of this ms is used up
                self._physical, self._logical = self._physical + 1, 0
            self._logical += count
            if self._physical > self._limit_ms:
                self._save(self._physical + self._window_ms)
            return self._physical, self._logical

    def reset(self, ts: int, ignore_smaller: bool = False, skip_upper_bound: bool = False,
              max_gap_ms: int = MAX_RESET_TS_GAP_MS) -> None:
        """PD's resetUserTimestamp: the next timestamp handed out is above ts. TsoResetError (with
        PD's messages) for a ts at or below the current one (unless ignore_smaller: then nothing
        changes) or max_gap_ms or more ahead of it (unless skip_upper_bound)."""
        physical, counter = physical_ms(ts), logical(ts)
        with self._lock:
            self._follow_clock()  # PD's in-memory physical follows its clock (every 50 ms)
            difference = physical - self._physical
            if difference < 0 or (difference == 0 and counter <= self._logical):
                if ignore_smaller:
                    return
                raise TsoResetError("the specified ts is smaller than now" if difference < 0
                                    else "the specified counter is smaller than now")
            if not skip_upper_bound and difference >= max_gap_ms:
                raise TsoResetError("the specified ts is too larger than now")
            if physical > self._limit_ms:
                self._save(physical + self._window_ms)
            self._physical, self._logical = physical, counter

    def _follow_clock(self) -> None:
        now = self._clock_ms()
        if now > self._physical:
            self._physical, self._logical = now, 0

    def _save(self, limit_ms: int) -> None:
        persist.write_atomic(self._path, TsoState(saved_limit_ms=limit_ms))
        self._limit_ms = limit_ms
