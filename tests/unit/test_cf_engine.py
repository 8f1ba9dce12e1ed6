"""cf_engine: TiKV's CFs and data keys on disk, atomic batches, consistent snapshots."""
from __future__ import annotations

from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from br_common.txn_codec import Lock, LockType, encode_bytes
from br_devcluster.store.cf_engine import CFEngine
from br_devcluster.store.txn_reader import DeleteRange, Modify


def _on_disk(path: Path) -> dict[str, dict[bytes, bytes]]:
    """Read the closed DB back with plain rocksdict: what TiKV would find in each CF."""
    options = Options(raw_mode=True)
    db = Rdict(str(path), options, column_families={"lock": Options(raw_mode=True),
                                                     "write": Options(raw_mode=True)})
    try:
        return {cf: dict((db if cf == "default" else db.get_column_family(cf)).items())
                for cf in ("default", "lock", "write")}
    finally:
        db.close()


def test_keys_are_data_keys_in_their_cfs(tmp_path: Path) -> None:
    engine = CFEngine(tmp_path / "db")
    lock = Lock(LockType.PUT, b"k", 10, 3000, b"v").to_bytes()
    engine.apply([Modify("lock", encode_bytes(b"k"), lock), Modify("default", b"raw", b"1"),
                  Modify("write", b"w", b"W")])
    engine.close()
    assert _on_disk(tmp_path / "db") == {"default": {b"zraw": b"1"}, "lock": {b"z" + encode_bytes(b"k"): lock},
                                         "write": {b"zw": b"W"}}


def test_reads_strip_the_prefix_and_honour_bounds(tmp_path: Path) -> None:
    engine = CFEngine(tmp_path / "db")
    engine.apply([Modify("default", key, key.upper()) for key in (b"a", b"b", b"c", b"d")])
    view = engine.snapshot_cfs()
    assert view.get("default", b"b") == b"B" and view.get("default", b"bb") is None
    assert [k for k, _ in view.iterate("default", b"b", b"d")] == [b"b", b"c"]
    assert [k for k, _ in view.iterate("default", b"b", None, reverse=True)] == [b"d", b"c", b"b"]
    assert [k for k, _ in view.iterate("default", b"a", b"c", reverse=True)] == [b"b", b"a"]
    assert list(view.iterate("lock", b"", None)) == []
    engine.close()


def test_snapshot_does_not_see_later_writes_nor_nested_reads_collide(tmp_path: Path) -> None:
    engine = CFEngine(tmp_path / "db")
    engine.apply([Modify("write", b"a", b"1"), Modify("write", b"b", b"2")])
    view = engine.snapshot_cfs()
    engine.apply([Modify("write", b"a", None), Modify("write", b"c", b"3")])
    seen = [(k, view.get("write", b"b")) for k, _ in view.iterate("write", b"", None)]
    assert seen == [(b"a", b"2"), (b"b", b"2")]
    assert engine.snapshot_cfs().get("write", b"a") is None
    engine.close()


def test_delete_ranges_and_drop_range(tmp_path: Path) -> None:
    engine = CFEngine(tmp_path / "db")
    engine.apply([Modify(cf, key, b"v") for cf in ("default", "lock", "write") for key in (b"a", b"b", b"c")])
    engine.apply((), [DeleteRange("lock", b"b", None)])
    engine.drop_range(b"", b"b")
    view = engine.snapshot_cfs()
    assert {cf: [k for k, _ in view.iterate(cf, b"", None)] for cf in ("default", "lock", "write")} == {
        "default": [b"b", b"c"], "lock": [], "write": [b"b", b"c"]}
    assert [m.key for m in view.entries(b"c", b"")] == [b"c", b"c"]
    engine.close()


def test_unknown_cf_is_refused(tmp_path: Path) -> None:
    engine = CFEngine(tmp_path / "db")
    with pytest.raises(ValueError):
        engine.snapshot_cfs().get("raft", b"k")
    with pytest.raises(ValueError):
        engine.apply([Modify("raft", b"k", b"v")])
    engine.close()
