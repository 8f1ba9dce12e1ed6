"""TSO allocator: strictly increasing, logical overflow, count checks, persisted window."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from br_common.tso import compose
from br_devcluster.pd.tso import MAX_LOGICAL, TsoAllocator


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def ts(pair: tuple[int, int]) -> int:
    return compose(*pair)


def test_timestamps_strictly_increase_within_and_across_milliseconds(tmp_path):
    clock = FakeClock(1_000_000)
    tso = TsoAllocator(tmp_path / "tso.json", clock)
    seen = [ts(tso.allocate(1)) for _ in range(5)]
    clock.ms += 1
    seen += [ts(tso.allocate(3)) for _ in range(5)]
    assert seen == sorted(set(seen))


def test_answer_is_last_of_count(tmp_path):
    tso = TsoAllocator(tmp_path / "tso.json", FakeClock(5000))
    assert tso.allocate(1) == (5000, 1)
    assert tso.allocate(10) == (5000, 11)  # 2..11 reserved, 11 answered


def test_clock_going_back_keeps_physical(tmp_path):
    clock = FakeClock(10_000)
    tso = TsoAllocator(tmp_path / "tso.json", clock)
    first = tso.allocate(1)
    clock.ms = 9_000
    second = tso.allocate(1)
    assert second[0] == 10_000 and ts(second) > ts(first)


def test_logical_overflow_moves_physical_forward(tmp_path):
    tso = TsoAllocator(tmp_path / "tso.json", FakeClock(7000))
    tso.allocate(MAX_LOGICAL - 1)
    physical, logical = tso.allocate(5)
    assert (physical, logical) == (7001, 5)


@pytest.mark.parametrize("count", [0, MAX_LOGICAL + 1])
def test_bad_count_is_refused(tmp_path, count):
    with pytest.raises(ValueError, match="tso count"):
        TsoAllocator(tmp_path / "tso.json", FakeClock(1)).allocate(count)


def test_window_is_saved_before_handing_out_beyond_it(tmp_path):
    path = tmp_path / "tso.json"
    clock = FakeClock(20_000)
    tso = TsoAllocator(path, clock, window_ms=3000)
    tso.allocate(1)
    assert json.loads(path.read_text())["saved_limit_ms"] == 23_000
    clock.ms = 22_999  # inside the window: no new save
    tso.allocate(1)
    assert json.loads(path.read_text())["saved_limit_ms"] == 23_000
    clock.ms = 23_001
    tso.allocate(1)
    assert json.loads(path.read_text())["saved_limit_ms"] == 26_001


def test_restart_continues_after_saved_limit_even_with_a_stale_clock(tmp_path):
    path = tmp_path / "tso.json"
    clock = FakeClock(50_000)
    first = TsoAllocator(path, clock)
    last = max(ts(first.allocate(1)) for _ in range(100))
    clock.ms = 40_000  # the machine's clock went back while PD was down
    restarted = TsoAllocator(path, clock)
    after = restarted.allocate(1)
    assert after[0] == 53_001 and ts(after) > last


def test_concurrent_callers_never_share_a_timestamp(tmp_path):
    tso = TsoAllocator(tmp_path / "tso.json")
    with ThreadPoolExecutor(8) as pool:
        stamps = list(pool.map(lambda _: ts(tso.allocate(2)), range(4000)))
    assert len(set(stamps)) == len(stamps)
