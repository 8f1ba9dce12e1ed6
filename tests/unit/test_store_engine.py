"""The store engine on a real RocksDB in tmp_path: raw KV as API V1 stores it (unversioned,
b"z" + key in its CF), the layout marker, and the txn GC of the GC loop."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_devcluster.store import mvcc, percolator
from br_devcluster.store.engine import LAYOUT, Engine, EngineError, open_engine
from br_devcluster.store.cf_engine import CFS, CFEngine
from br_devcluster.store.gc import GCLoop, collect_garbage
from br_devcluster.store.txn_reader import CF_LOCK, Modify, TxnReader
from tests.doubles import FakePD


@pytest.fixture
def engine(tmp_path: Path):
    db = Engine(tmp_path / "db")
    yield db
    db.close()


def put(engine: Engine, key: bytes, value: bytes | None) -> None:
    """As the raw service builds its entries."""
    encoded = mvcc.TOMBSTONE if value is None else mvcc.encode_put(value)
    engine.write([(mvcc.encode_key(key, 7), encoded)])


def test_raw_kv_is_unversioned_and_reads_ignore_ts(engine: Engine) -> None:
    for key, value in [(b"a", b"1"), (b"a", b"2"), (b"a\x00", b"x"), (b"b", b"y"), (b"b", None), (b"c", b"c")]:
        put(engine, key, value)
    snap = engine.snapshot()
    expected = [(b"a", b"2"), (b"a\x00", b"x"), (b"c", b"c")]
    for ts in (1, mvcc.TS_MAX):
        assert list(snap.scan(b"", b"", ts)) == expected
        assert list(snap.scan_reverse(b"", b"", ts)) == expected[::-1]
        assert snap.get(b"a", ts) == b"2" and snap.get(b"b", ts) is None
    assert [k for k, _ in snap.scan(b"a\x00", b"c")] == [b"a\x00"]
    assert [k for k, _ in snap.scan_reverse(b"c\x00", b"a\x00")] == [b"c", b"a\x00"]


def test_raw_keys_are_data_keys_of_the_default_cf(engine: Engine) -> None:
    put(engine, b"k", b"v")
    engine.write([(b"k", b"w")], cf="write")
    assert dict(engine.snapshot().scan(b"", b"")) == {b"k": b"v"}
    assert dict(engine.snapshot("write").scan(b"", b"")) == {b"k": b"w"}
    engine.drop_range(b"", b"")
    assert list(engine.snapshot().scan(b"", b"")) == [] and list(engine.snapshot("write").scan(b"", b"")) == []


def test_snapshot_ignores_later_writes(engine: Engine) -> None:
    put(engine, b"a", b"1")
    snap = engine.snapshot()
    put(engine, b"d", b"new")
    engine.drop_range(b"a", b"b")
    assert snap.get(b"d") is None and snap.get(b"a") == b"1"
    assert engine.snapshot().get(b"a") is None


def test_layout_marker(tmp_path: Path) -> None:
    db_dir, marker = tmp_path / "db", tmp_path / "layout"
    open_engine(db_dir, marker).close()
    assert marker.read_text().strip() == LAYOUT
    open_engine(db_dir, marker).close()  # reopened
    marker.unlink()  # a data dir of the old MVCC layout had no marker
    with pytest.raises(EngineError, match="layout") as refused:
        open_engine(db_dir, marker)
    assert "\n" not in str(refused.value)
    marker.write_text("something-else\n")
    with pytest.raises(EngineError, match="something-else"):
        open_engine(db_dir, marker)


def _txn(engine: Engine, start: int, commit: int, key: bytes, value: bytes | None) -> None:
    op = pb.Put if value is not None else pb.Del
    for command, req in [
        (percolator.prewrite, pb.PrewriteRequest(mutations=[pb.Mutation(op=op, key=key, value=value or b"")],
                                                 primary_lock=key, start_version=start, lock_ttl=100)),
        (percolator.commit, pb.CommitRequest(start_version=start, commit_version=commit, keys=[key]))]:
        engine.apply(command(TxnReader(engine.snapshot_cfs()), req).modifies)


def test_gc_of_transactional_data(engine: Engine) -> None:
    _txn(engine, 10, 11, b"a", b"v1" * 200)
    _txn(engine, 20, 21, b"a", b"v2")
    _txn(engine, 30, 31, b"b", b"x")
    _txn(engine, 40, 41, b"b", None)
    put(engine, b"raw", b"kept")
    assert collect_garbage(engine, 35) == 2  # a@11 and its long value
    assert collect_garbage(engine, 50) == 2  # b's Put and Delete
    reader = TxnReader(engine.snapshot_cfs())
    assert [ts for ts, _ in reader.writes(b"a")] == [21] and list(reader.writes(b"b")) == []
    assert dict(engine.snapshot().scan(b"", b"")) == {b"raw": b"kept"}
    assert collect_garbage(engine, 50) == 0


def test_gc_loop_skips_passes_that_cannot_find_garbage(engine: Engine) -> None:
    """A pass reads every key: it runs only when the safe point reached a version the last pass
    left above it, or a version at or below the safe point was written since (ingests too)."""
    pd = FakePD(safe_point=25)
    loop = GCLoop(engine, pd, interval=3600)
    _txn(engine, 10, 11, b"a", b"v1" * 200)
    _txn(engine, 20, 21, b"a", b"v2")
    _txn(engine, 30, 31, b"a", b"v3")
    assert loop.run_once() == 2 and loop.passes == 1  # a@11 and its long value
    pd.safe_point = 30
    assert loop.run_once() == 0 and loop.passes == 1  # a@31 is still above: skipped
    pd.safe_point = 31
    assert loop.run_once() == 1 and loop.passes == 2  # a@21 goes
    pd.safe_point = 1000
    assert loop.run_once() == 0 and loop.passes == 2  # a@31 alone: nothing can go
    _txn(engine, 40, 41, b"b", b"x")
    assert loop.run_once() == 0 and loop.passes == 3  # b@41 is at or below the safe point: looked
    _txn(engine, 50, 51, b"b", None)
    assert loop.run_once() == 2 and loop.passes == 4  # b's Put and Delete
    engine.write_versions.record_unknown()  # as an SST ingest does
    assert loop.run_once() == 0 and loop.passes == 5


@pytest.mark.parametrize("seed", range(4))
def test_gc_pass_equals_percolator_gc(tmp_path: Path, seed: int) -> None:
    """The loop's one-pass GC drops exactly what percolator.gc's per-key reads would."""
    rng = random.Random(seed)
    one, two = CFEngine(tmp_path / "one"), CFEngine(tmp_path / "two")
    try:
        for index in range(40):
            key, ts = b"k%02d" % (index % 13), 10 + 3 * index
            value = None if rng.random() < 0.2 else bytes([index]) * rng.choice([2, 300])
            for engine in (one, two):
                _txn(engine, ts, ts + 1, key, value)
        for safe_point in (40, 80, 200):
            expected = percolator.gc(TxnReader(one.snapshot_cfs()), safe_point)
            one.apply(expected)
            assert collect_garbage(two, safe_point) == len(expected)
            assert _everything(one) == _everything(two)
    finally:
        one.close()
        two.close()


def _everything(engine: CFEngine) -> dict:
    snapshot = engine.snapshot_cfs()
    return {cf: list(snapshot.iterate(cf, b"", None)) for cf in CFS}


def test_snapshot_point_reads_ignore_later_writes(tmp_path: Path) -> None:
    """A get is a live point read only while no write began since the snapshot: after one, the
    snapshot's own iterators answer."""
    engine = CFEngine(tmp_path / "db")
    try:
        engine.apply([Modify(CF_LOCK, b"k", b"1")])
        snapshot = engine.snapshot_cfs()
        assert snapshot.get(CF_LOCK, b"k") == b"1" and snapshot.get(CF_LOCK, b"j") is None
        engine.apply([Modify(CF_LOCK, b"k", None), Modify(CF_LOCK, b"j", b"2")])
        assert snapshot.get(CF_LOCK, b"k") == b"1" and snapshot.get(CF_LOCK, b"j") is None
        later = engine.snapshot_cfs()
        assert later.get(CF_LOCK, b"k") is None and later.get(CF_LOCK, b"j") == b"2"
    finally:
        engine.close()
