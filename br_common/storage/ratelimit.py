"""A thread-safe token bucket bounding bytes/s of a storage stream (uploads and downloads).

One bucket per storage object is shared by every transfer running through it, so the limit
holds for the whole agent rather than per request (BR's per-request limit is the inaccurate one).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 1024 * 1024


class _WaitTotal:
    """Seconds every bucket of this process made its callers sleep (the agent's throttling metric)."""

    def __init__(self) -> None:
        self._seconds = 0.0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds += seconds

    def seconds(self) -> float:
        with self._lock:
            return self._seconds


WAITED = _WaitTotal()


class TokenBucket:
    """`rate` tokens (bytes) per second, at most `burst` saved up (default: one second's worth).

    acquire(n) takes n tokens, going into debt when there are too few and sleeping the debt off,
    so a request larger than the burst still passes (slowly) instead of blocking forever.
    """

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate limit must be positive (bytes per second)")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else self.rate
        if self.burst <= 0:
            raise ValueError("burst must be positive")
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self, n: int) -> float:
        """Take n tokens now; return how many seconds the caller must wait before using them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            return max(0.0, -self._tokens / self.rate)

    def acquire(self, n: int) -> None:
        wait = self.reserve(n)
        if wait > 0:
            WAITED.add(wait)
            self._sleep(wait)


class TransferBucket:
    """s3transfer's LeakyBucket interface (consume(amt, request_token)) over a TokenBucket.

    s3transfer's own LeakyBucket projects the rate from a moving average and lets a request
    through only while the projection stays under the limit: measured, it held 0.95x of the
    asked rate. This one charges every byte to the token bucket and sleeps off the debt at once,
    so the long-run rate is the asked one (s3transfer calls consume about every 256 KiB)."""

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket

    def consume(self, amt: int, request_token: object) -> int:
        self.bucket.acquire(amt)
        return amt


class ThrottledReader:
    """A read-only file wrapper charging every read to a bucket (None: no limit)."""

    def __init__(self, raw: BinaryIO, bucket: TokenBucket | None) -> None:
        self._raw = raw
        self._bucket = bucket

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if self._bucket is not None and data:
            self._bucket.acquire(len(data))
        return data


def copy_stream(src: BinaryIO, dst: BinaryIO, bucket: TokenBucket | None, chunk: int = CHUNK) -> int:
    """Copy src to dst in chunks through the bucket; returns the bytes copied."""
    reader = ThrottledReader(src, bucket)
    total = 0
    while data := reader.read(chunk):
        dst.write(data)
        total += len(data)
    return total
