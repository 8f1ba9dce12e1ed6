"""A byte-rate limiter (sleep-based token bucket) for backup writes and import downloads."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Token bucket of `rate` bytes/s with a one-second burst; 0 means unlimited.

    consume() takes the bytes at once and, when that leaves the bucket in debt, sleeps until the
    debt is paid: callers sharing one limiter are bounded together, whatever their chunk sizes.
    """

    def __init__(self, rate: int = 0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate = 0
        self._tokens = 0.0
        self._last = clock()
        self.set_rate(rate)

    @property
    def rate(self) -> int:
        return self._rate

    def set_rate(self, rate: int) -> None:
        if rate < 0:
            raise ValueError(f"rate must not be negative, got {rate}")
        with self._lock:
            self._rate = rate
            self._tokens = float(rate)  # start with a full bucket
            self._last = self._clock()

    def consume(self, nbytes: int) -> None:
        if self._rate == 0 or nbytes <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self._rate), self._tokens + (now - self._last) * self._rate)
            self._last = now
            self._tokens -= nbytes
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
