"""The store's rate limiter with a fake clock: sleeps for exactly the debt, 0 = unlimited."""
from __future__ import annotations

import pytest

from br_devcluster.store.ratelimit import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_unlimited_never_sleeps() -> None:
    fake = FakeTime()
    limiter = RateLimiter(0, clock=fake.clock, sleep=fake.sleep)
    limiter.consume(10**12)
    assert fake.slept == []


def test_average_rate_is_bounded() -> None:
    fake = FakeTime()
    limiter = RateLimiter(1000, clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    for _ in range(50):
        limiter.consume(100)  # 5000 bytes at 1000 B/s with a 1000-byte burst: 4 s
    assert fake.now - start == pytest.approx(4.0)


def test_large_chunk_passes_after_its_debt() -> None:
    fake = FakeTime()
    limiter = RateLimiter(1000, clock=fake.clock, sleep=fake.sleep)
    limiter.consume(5000)
    assert fake.slept == [pytest.approx(4.0)]


def test_set_rate() -> None:
    fake = FakeTime()
    limiter = RateLimiter(0, clock=fake.clock, sleep=fake.sleep)
    limiter.set_rate(10)
    assert limiter.rate == 10
    limiter.consume(20)
    assert fake.slept == [pytest.approx(1.0)]
    limiter.set_rate(0)
    limiter.consume(10**9)
    assert len(fake.slept) == 1
    with pytest.raises(ValueError):
        limiter.set_rate(-1)
