"""The store engine on a real RocksDB in tmp_path: raw KV as API V1 stores it (unversioned,
b"z" + key in its CF), the layout marker, and the txn GC of the GC loop."""
from __future__ import annotations

from pathlib import Path

import pytest

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_devcluster.store import mvcc, percolator
from br_devcluster.store.engine import LAYOUT, Engine, EngineError, open_engine
from br_devcluster.store.gc import collect_garbage
from br_devcluster.store.txn_reader import TxnReader


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
