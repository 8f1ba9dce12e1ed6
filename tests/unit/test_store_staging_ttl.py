"""Staged SSTs that are never ingested (failed or superseded downloads) expire after a TTL:
at store start and on every GC pass (`--staged-ttl`, default one hour)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from br_devcluster.store.config import parse_args
from br_devcluster.store.gc import GCLoop
from br_devcluster.store.staging import StagedSst, Staging

HOUR = 3600.0


def _stage(staging: Staging, uuid: bytes, age: float, empty: bool = False) -> None:
    """A staged download as ImportService leaves it (SST, then its sidecar), `age` seconds old."""
    if not empty:
        staging.sst_path(uuid).write_bytes(b"sst")
    staging.record(StagedSst(uuid=uuid, total_kvs=0 if empty else 1))
    stamp = time.time() - age
    for path in staging.directory.glob(f"{uuid.hex()}.*"):
        os.utime(path, (stamp, stamp))


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
    assert _names(staging) == [f"{fresh.hex()}.json", f"{fresh.hex()}.sst", "scratch"]
    assert staging.load(fresh).total_kvs == 1


def test_a_download_still_being_written_is_not_expired(tmp_path: Path) -> None:
    """Its SST's mtime moves with every write; the pair counts as new as its newest part."""
    staging = Staging(tmp_path / "import")
    uuid = b"\x04" * 16
    _stage(staging, uuid, age=2 * HOUR)
    staging.sst_path(uuid).write_bytes(b"rewritten just now")
    assert staging.remove_expired(HOUR) == 0 and len(_names(staging)) == 2


def test_the_gc_loop_sweeps_staging_even_without_a_safe_point(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "import")
    _stage(staging, b"\x05" * 16, age=120)
    loop = GCLoop(engine=None, pd=None, interval=HOUR, staging=staging, staged_ttl=60)
    assert loop.sweep_staging() == 1 and _names(staging) == []
    assert GCLoop(engine=None, pd=None, interval=HOUR).sweep_staging() == 0  # no staging: nothing to do


BASE = ["--pd", "127.0.0.1:2379", "--data-dir", "d", "--host", "127.0.0.1", "--port", "20160"]


def test_the_ttl_is_a_store_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(BASE).staged_ttl == HOUR
    assert parse_args([*BASE, "--staged-ttl", "90"]).staged_ttl == 90.0
    with pytest.raises(SystemExit) as info:
        parse_args([*BASE, "--staged-ttl", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("br_devcluster.store: error: --staged-ttl") and err.count("\n") == 1
