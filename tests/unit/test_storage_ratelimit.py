"""Token bucket math with a fake clock (no sleeping, no timing assertions)."""
from __future__ import annotations

import io

import pytest

from br_common.storage.ratelimit import ThrottledReader, TokenBucket, TransferBucket, copy_stream


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bucket(rate: float, burst: float | None = None) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep), clock


def test_burst_passes_without_waiting():
    tb, clock = bucket(1000)
    assert tb.reserve(1000) == 0
    assert clock.slept == []


def test_debt_is_waited_off_at_the_rate():
    tb, _ = bucket(1000)
    assert tb.reserve(1000) == 0
    assert tb.reserve(500) == pytest.approx(0.5)
    assert tb.reserve(500) == pytest.approx(1.0)  # debt accumulates


def test_refill_over_time_capped_at_burst():
    tb, clock = bucket(1000, burst=2000)
    tb.reserve(2000)
    clock.now += 1.0
    assert tb.reserve(1000) == 0
    clock.now += 100.0  # long idle: only burst tokens saved
    assert tb.reserve(2000) == 0
    assert tb.reserve(1000) == pytest.approx(1.0)


def test_request_larger_than_burst_passes_slowly():
    tb, clock = bucket(100)
    tb.acquire(1100)
    assert clock.slept == [pytest.approx(10.0)]


def test_long_run_average_is_the_rate():
    tb, clock = bucket(1_000_000)
    start = clock.now
    for _ in range(100):
        tb.acquire(256 * 1024)
    elapsed = clock.now - start
    total = 100 * 256 * 1024
    # bytes sent = burst + rate * elapsed
    assert total == pytest.approx(1_000_000 + 1_000_000 * elapsed, rel=1e-9)


def test_throttled_copy_charges_every_byte():
    tb, clock = bucket(1024, burst=1024)
    src = io.BytesIO(b"x" * 10 * 1024)
    dst = io.BytesIO()
    assert copy_stream(src, dst, tb, chunk=1024) == 10 * 1024
    assert dst.getvalue() == b"x" * 10 * 1024
    assert sum(clock.slept) == pytest.approx(9.0)


def test_unlimited_reader_passes_through():
    reader = ThrottledReader(io.BytesIO(b"abc"), None)
    assert reader.read(2) == b"ab" and reader.read() == b"c" and reader.read() == b""


@pytest.mark.parametrize("rate, burst", [(0, None), (-1, None), (10, 0)])
def test_bad_rates(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_transfer_bucket_holds_s3transfer_streams_to_the_rate():
    """s3transfer calls consume(amt, token) about every 256 KiB: every byte is charged, the debt slept off."""
    tb, clock = bucket(1000)
    leaky = TransferBucket(tb)
    assert sum(leaky.consume(256, object()) for _ in range(40)) == 10_240
    assert clock.now - 100.0 == pytest.approx((10_240 - 1000) / 1000)  # the first second's burst, then the rate
