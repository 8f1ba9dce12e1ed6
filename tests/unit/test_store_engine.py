"""The store engine on a real RocksDB in tmp_path: visibility at ts, tombstones, GC, ranges."""
from __future__ import annotations

from pathlib import Path

import pytest

from br_devcluster.store import mvcc
from br_devcluster.store.engine import Engine


@pytest.fixture
def engine(tmp_path: Path):
    db = Engine(tmp_path / "db")
    yield db
    db.close()


def put(engine: Engine, key: bytes, ts: int, value: bytes | None) -> None:
    encoded = mvcc.TOMBSTONE if value is None else mvcc.encode_put(value)
    engine.write([(mvcc.encode_key(key, ts), encoded)])


def history(engine: Engine) -> None:
    """a: v10@10, deleted@20, v30@30; a\\x00: x@15; b: deleted@5 only; c: c@25; ab: y@12, z@18."""
    for key, ts, value in [(b"a", 10, b"v10"), (b"a", 20, None), (b"a", 30, b"v30"), (b"a\x00", 15, b"x"),
                           (b"b", 5, None), (b"c", 25, b"c"), (b"ab", 12, b"y"), (b"ab", 18, b"z")]:
        put(engine, key, ts, value)


@pytest.mark.parametrize("ts, expected", [
    (9, {}),
    (10, {b"a": b"v10"}),
    (12, {b"a": b"v10", b"ab": b"y"}),
    (15, {b"a": b"v10", b"a\x00": b"x", b"ab": b"y"}),
    (19, {b"a": b"v10", b"a\x00": b"x", b"ab": b"z"}),
    (20, {b"a\x00": b"x", b"ab": b"z"}),
    (29, {b"a\x00": b"x", b"ab": b"z", b"c": b"c"}),
    (mvcc.TS_MAX, {b"a": b"v30", b"a\x00": b"x", b"ab": b"z", b"c": b"c"}),
])
def test_visibility_at_ts(engine: Engine, ts: int, expected: dict[bytes, bytes]) -> None:
    history(engine)
    snap = engine.snapshot()
    assert dict(snap.scan(b"", b"", ts)) == expected
    assert list(snap.scan(b"", b"", ts)) == sorted(expected.items())
    assert list(snap.scan_reverse(b"", b"", ts)) == sorted(expected.items(), reverse=True)
    for key in [b"a", b"a\x00", b"ab", b"b", b"c", b"zz"]:
        assert snap.get(key, ts) == expected.get(key)


def test_scan_bounds(engine: Engine) -> None:
    history(engine)
    snap = engine.snapshot()
    assert [k for k, _ in snap.scan(b"a\x00", b"c", mvcc.TS_MAX)] == [b"a\x00", b"ab"]
    assert [k for k, _ in snap.scan(b"a", b"a\x00", mvcc.TS_MAX)] == [b"a"]
    assert [k for k, _ in snap.scan_reverse(b"c", b"a\x00", mvcc.TS_MAX)] == [b"ab", b"a\x00"]
    assert [k for k, _ in snap.scan_reverse(b"c\x00", b"c", mvcc.TS_MAX)] == [b"c"]


def test_snapshot_ignores_later_writes(engine: Engine) -> None:
    history(engine)
    snap = engine.snapshot()
    put(engine, b"d", 40, b"new")
    engine.drop_range(b"a", b"b")
    assert snap.get(b"d", mvcc.TS_MAX) is None
    assert snap.get(b"a", mvcc.TS_MAX) == b"v30"
    assert engine.snapshot().get(b"a", mvcc.TS_MAX) is None


def test_gc_keeps_what_reads_at_or_after_safe_point_see(engine: Engine) -> None:
    history(engine)
    visible_before = {ts: dict(engine.snapshot().scan(b"", b"", ts)) for ts in range(18, 41)}
    removed = engine.gc(18)
    raw = [mvcc.decode_key(k) for k, _ in engine.snapshot().raw(b"", b"")]
    # a: v10@10 is newest <= 18 and kept; b's only version is a tombstone <= 18: gone;
    # ab: z@18 kept, y@12 gone
    assert raw == [(b"a", 30), (b"a", 20), (b"a", 10), (b"a\x00", 15), (b"ab", 18), (b"c", 25)]
    assert removed == 2
    for ts, expected in visible_before.items():
        assert dict(engine.snapshot().scan(b"", b"", ts)) == expected


def test_gc_drops_tombstone_and_everything_older(engine: Engine) -> None:
    history(engine)
    engine.gc(29)
    raw = [mvcc.decode_key(k) for k, _ in engine.snapshot().raw(b"", b"")]
    assert raw == [(b"a", 30), (b"a\x00", 15), (b"ab", 18), (b"c", 25)]
    assert engine.gc(29) == 0


def test_drop_range(engine: Engine) -> None:
    history(engine)
    engine.drop_range(b"a\x00", b"c")
    assert [k for k, _ in engine.snapshot().scan(b"", b"", mvcc.TS_MAX)] == [b"a", b"c"]
    engine.drop_range(b"b", b"")
    assert [k for k, _ in engine.snapshot().scan(b"", b"", mvcc.TS_MAX)] == [b"a"]
    engine.drop_range(b"", b"")
    assert list(engine.snapshot().raw(b"", b"")) == []
