"""Staged SSTs that are never ingested (failed or superseded downloads) go: when their region
changed (TiKV's rule) and, whatever else happened, after a TTL, at store start and on every GC
pass (`--staged-ttl`, default one hour). Files are named as TiKV names them."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from br_common.import_files import staged_ssts
from br_common.kvproto import metapb_pb2
from br_common.pd_client import RegionInfo
from br_devcluster.store.config import parse_args
from tests.doubles import FakePD
from br_devcluster.store.gc import GCLoop
from br_devcluster.store.staging import StagedSst, Staging

HOUR = 3600.0


def _stage(staging: Staging, uuid: bytes, age: float, empty: bool = False, region_id: int = 0,
           version: int = 1) -> StagedSst:
    """A staged download as ImportService leaves it (SST, then its sidecar), `age` seconds old."""
    staged = StagedSst(uuid=uuid, total_kvs=0 if empty else 1, region_id=region_id, conf_ver=1, version=version)
    if not empty:
        staging.sst_path(staged).write_bytes(b"sst")
    staging.record(staged)
    stamp = time.time() - age
    for path in (staging.sst_path(staged), staging.directory / f"{uuid.hex()}.json"):
        if path.exists():
            os.utime(path, (stamp, stamp))
    return staged


def _names(staging: Staging) -> list[str]:
    return sorted(p.name for p in staging.directory.iterdir())


def test_staged_files_older_than_the_ttl_go_fresh_ones_stay(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "import")
    old, empty_old, fresh = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16
    _stage(staging, old, age=2 * HOUR)
    _stage(staging, empty_old, age=2 * HOUR, empty=True)  # an empty download: a sidecar alone
    _stage(staging, fresh, age=60)
    (staging.scratch / "sst-read-x").mkdir(parents=True)  # not a staged SST: left to clean_leftovers
    assert staging.remove_expired(HOUR) == 2
    assert _names(staging) == ["03030303-0303-0303-0303-030303030303_0_1_1_default.sst", f"{fresh.hex()}.json",
                               "scratch"]
    assert staging.load(fresh).total_kvs == 1


def test_a_download_still_being_written_is_not_expired(tmp_path: Path) -> None:
    """Its SST's mtime moves with every write; the pair counts as new as its newest part."""
    staging = Staging(tmp_path / "import")
    uuid = b"\x04" * 16
    staging.sst_path(_stage(staging, uuid, age=2 * HOUR)).write_bytes(b"rewritten just now")
    assert staging.remove_expired(HOUR) == 0 and len(_names(staging)) == 2


def test_the_gc_loop_sweeps_staging_even_without_a_safe_point(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "import")
    _stage(staging, b"\x05" * 16, age=120)
    loop = GCLoop(engine=None, pd=None, interval=HOUR, staging=staging, staged_ttl=60)
    assert loop.sweep_staging() == 1 and _names(staging) == []
    assert GCLoop(engine=None, pd=None, interval=HOUR).sweep_staging() == 0  # no staging: nothing to do


def _pd() -> FakePD:
    """Region 7 at version 2 with a peer on store 1; no other region."""
    region = metapb_pb2.Region(id=7, region_epoch=metapb_pb2.RegionEpoch(conf_ver=1, version=2),
                               peers=[metapb_pb2.Peer(id=70, store_id=1)])
    return FakePD([RegionInfo(region, region.peers[0])])


def test_staged_ssts_of_a_changed_region_go_as_tiKV_drops_them(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "import")
    current = _stage(staging, b"\x06" * 16, age=1, region_id=7, version=2)
    _stage(staging, b"\x07" * 16, age=1, region_id=7, version=1)  # split since: epoch stale
    _stage(staging, b"\x08" * 16, age=1, region_id=9)  # region gone (merged)
    assert staging.remove_stale(_pd(), store_id=2) == 3  # store 2 holds no peer of region 7: all stale
    current = _stage(staging, b"\x06" * 16, age=1, region_id=7, version=2)
    _stage(staging, b"\x07" * 16, age=1, region_id=7, version=1)
    assert staging.remove_stale(_pd(), store_id=1) == 1
    assert staging.load(current.uuid) == current


def test_a_sidecar_whose_sst_was_discarded_goes_at_the_next_sweep(tmp_path: Path) -> None:
    """The agent beside the store removes a restore's unused SSTs by TiKV's file name."""
    staging = Staging(tmp_path / "import")
    staged = _stage(staging, b"\x09" * 16, age=1, region_id=7, version=2)
    assert staged_ssts(staging.directory, [staged.uuid]) == [staging.sst_path(staged)]
    staging.sst_path(staged).unlink()
    assert staging.remove_expired(HOUR) == 1 and _names(staging) == []


BASE = ["--pd", "127.0.0.1:2379", "--data-dir", "d", "--host", "127.0.0.1", "--port", "20160"]


def test_the_ttl_is_a_store_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(BASE).staged_ttl == HOUR
    assert parse_args([*BASE, "--staged-ttl", "90"]).staged_ttl == 90.0
    with pytest.raises(SystemExit) as info:
        parse_args([*BASE, "--staged-ttl", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("br_devcluster.store: error: --staged-ttl") and err.count("\n") == 1
