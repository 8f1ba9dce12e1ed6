"""A byte-rate limit whose rate can change and may be 0 (unlimited), over br_common's TokenBucket.

Backup requests get one per request (BackupRequest.rate_limit); Download shares one per store,
set by SetDownloadSpeedLimit, so concurrent downloads are bounded together.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from br_common.storage.ratelimit import TokenBucket


class RateLimiter:
    def __init__(self, rate: int = 0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._bucket: TokenBucket | None = None
        self.set_rate(rate)

    @property
    def rate(self) -> int:
        bucket = self._bucket
        return int(bucket.rate) if bucket is not None else 0

    def set_rate(self, rate: int) -> None:
        """Bytes per second; 0 removes the limit."""
        if rate < 0:
            raise ValueError(f"rate must not be negative, got {rate}")
        with self._lock:
            self._bucket = TokenBucket(rate, clock=self._clock, sleep=self._sleep) if rate else None

    def consume(self, nbytes: int) -> None:
        """Take nbytes, sleeping off any debt (so the average rate stays bounded)."""
        bucket = self._bucket
        if bucket is not None and nbytes > 0:
            bucket.acquire(nbytes)
