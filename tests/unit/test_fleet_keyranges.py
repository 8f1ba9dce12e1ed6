"""Key-range arithmetic: unbounded ends, gaps, exact tiling."""
from __future__ import annotations

from br_common.fleet.keyranges import end_before, intersect, subtract, tiling_problem
from br_common.fleet.messages import KeyRange


def R(start: bytes, end: bytes) -> KeyRange:  # noqa: N802 - reads like the math
    return KeyRange(start=start, end=end)


def test_unbounded_end_sorts_last() -> None:
    assert end_before(b"z", b"") and not end_before(b"", b"z") and not end_before(b"", b"")


def test_intersect() -> None:
    assert intersect(R(b"a", b""), R(b"", b"c")) == R(b"a", b"c")
    assert intersect(R(b"a", b"b"), R(b"b", b"c")) is None


def test_subtract_finds_gaps_including_unbounded_tail() -> None:
    assert subtract(R(b"", b""), []) == [R(b"", b"")]
    assert subtract(R(b"", b""), [R(b"b", b"c"), R(b"", b"a")]) == [R(b"a", b"b"), R(b"c", b"")]
    assert subtract(R(b"a", b"z"), [R(b"", b"")]) == []
    assert subtract(R(b"a", b"z"), [R(b"c", b""), R(b"a", b"d")]) == []
    assert subtract(R(b"a", b"m"), [R(b"b", b"c"), R(b"b", b"d")]) == [R(b"a", b"b"), R(b"d", b"m")]


def test_tiling_problem() -> None:
    whole = R(b"", b"")
    assert tiling_problem(whole, [R(b"b", b""), R(b"", b"b")]) == ""
    assert "gap" in tiling_problem(whole, [R(b"", b"b"), R(b"c", b"")])
    assert "overlaps" in tiling_problem(whole, [R(b"", b"c"), R(b"b", b"")])
    assert "gap" in tiling_problem(whole, [R(b"", b"b")])
    assert tiling_problem(R(b"a", b"c"), [R(b"a", b"c")]) == ""
    assert "past the end" in tiling_problem(R(b"a", b"c"), [R(b"a", b"d")])
