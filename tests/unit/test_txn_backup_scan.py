"""TiKV's txn backup scan (br_devcluster.store.txn_backup_scan) and the files it becomes
(backup_files): which version of each key, deletes only in incrementals, locks, and TiKV's
per-file checksum rule (each key counted once, in default if its value is there)."""
from __future__ import annotations

from pathlib import Path

import pytest

from br_common.checksum import Checksum
from br_common.data_keys import data_key
from br_common.sst_files import read_sst
from br_common.tso import compose
from br_common.txn_files import txn_file_checksum
from br_common.txn_codec import Lock, LockType, Write, WriteType
from br_devcluster.store.backup_files import RegionBackup, write_region_files
from br_devcluster.store.ratelimit import RateLimiter
from br_devcluster.store.sstfiles import sst_options
from br_devcluster.store.txn_backup_scan import BackupLocked, backup_entries, lock_free_entries, scanned_entries
from br_devcluster.store.txn_reader import TxnReader, default_key, lock_key, write_key
from tests.doubles import MemoryCFs
from tests.mvcc_histories import random_history, txn

LONG = b"L" * 300


def read_all(path: Path, scratch: Path) -> list[tuple[bytes, bytes]]:
    with read_sst(path, scratch) as pairs:
        return list(pairs)


def put(cfs: MemoryCFs, key: bytes, value: bytes, start: int, commit: int) -> None:
    short = value if len(value) <= 255 else None
    cfs.apply([("write", write_key(key, commit), Write(WriteType.PUT, start, short).to_bytes())])
    if short is None:
        cfs.apply([("default", default_key(key, start), value)])


def record(cfs: MemoryCFs, key: bytes, kind: WriteType, start: int, commit: int) -> None:
    cfs.apply([("write", write_key(key, commit), Write(kind, start).to_bytes())])


@pytest.fixture
def cfs() -> MemoryCFs:
    cfs = MemoryCFs()
    put(cfs, b"a", b"a1", 10, 11)
    put(cfs, b"a", b"a2", 20, 21)  # newest at 25
    put(cfs, b"b", LONG, 10, 11)
    record(cfs, b"b", WriteType.ROLLBACK, 22, 22)  # skipped: b's Put still visible
    put(cfs, b"c", b"c1", 10, 11)
    record(cfs, b"c", WriteType.DELETE, 20, 21)  # deleted at 21
    put(cfs, b"d", b"", 10, 11)
    record(cfs, b"d", WriteType.LOCK, 20, 21)  # skipped
    put(cfs, b"e", b"e-late", 30, 31)  # after backup_ts 25
    return cfs


def test_full_backup_takes_the_newest_visible_put(cfs: MemoryCFs) -> None:
    entries = {e.raw_key: e for e in backup_entries(TxnReader(cfs), b"", None, 0, 25)}
    assert sorted(entries) == [b"a", b"b", b"d"]
    assert (entries[b"a"].value, entries[b"a"].commit_ts, entries[b"a"].long_value) == (b"a2", 21, False)
    assert entries[b"b"].value == LONG and entries[b"b"].long_value and entries[b"b"].counted_in == "default"
    assert entries[b"d"].value == b"" and entries[b"d"].commit_ts == 11
    assert Write.parse(entries[b"a"].write).start_ts == 20  # the stored bytes, as they are


def test_incremental_keeps_deletes_and_skips_older_changes(cfs: MemoryCFs) -> None:
    entries = {e.raw_key: e for e in backup_entries(TxnReader(cfs), b"", None, 15, 25)}
    assert sorted(entries) == [b"a", b"c"]  # b and d last changed at 11
    assert Write.parse(entries[b"c"].write).write_type == WriteType.DELETE and entries[b"c"].value == b""


def test_range_bounds_are_raw_keys(cfs: MemoryCFs) -> None:
    assert [e.raw_key for e in backup_entries(TxnReader(cfs), b"b", b"d", 0, 25)] == [b"b"]


def test_a_lock_that_may_commit_before_backup_ts_aborts(cfs: MemoryCFs) -> None:
    cfs.apply([("lock", lock_key(b"a"), Lock(LockType.PUT, b"a", 23, 3000, b"x").to_bytes())])
    with pytest.raises(BackupLocked) as raised:
        list(backup_entries(TxnReader(cfs), b"", None, 0, 25))
    assert raised.value.lock.lock_version == 23 and raised.value.lock.key == b"a"
    assert [e.raw_key for e in backup_entries(TxnReader(cfs), b"", None, 0, 25, bypass_locks=[23])] == [
        b"a", b"b", b"d"]
    assert len(list(backup_entries(TxnReader(cfs), b"", None, 0, 22))) == 3  # lock after the backup ts


def test_files_follow_tikvs_layout_and_checksums(cfs: MemoryCFs, tmp_path: Path) -> None:
    backup_ts = compose(1_700_000_000_000, 0)
    target = RegionBackup(root=tmp_path, store_id=1, region_id=2, epoch_version=3, start_key=b"", end_key=b"z",
                          start_version=0, end_version=backup_ts)
    entries = list(backup_entries(TxnReader(cfs), b"", None, 0, 25))
    files = write_region_files(target, entries, sst_options(), RateLimiter())
    assert [f.cf for f in files] == ["default", "write"]
    assert all(f.name.endswith(f"_1700000000000_{f.cf}.sst") and f.name.startswith("1/2_3_") for f in files)
    assert all((f.start_key, f.end_key, f.end_version) == (b"", b"z", backup_ts) for f in files)
    default, write = files
    assert (default.total_kvs, default.total_bytes) == (1, 1 + len(LONG))
    assert (default.crc64xor, write.crc64xor) == (Checksum().add_pairs([(b"b", LONG)]).crc64xor,
                                                  Checksum().add_pairs([(b"a", b"a2"), (b"d", b"")]).crc64xor)
    assert (write.total_kvs, write.total_bytes) == (2, 3 + 1)
    stored_write = read_all(tmp_path / write.name, tmp_path / "scratch")
    assert stored_write == [(data_key(write_key(e.raw_key, e.commit_ts)), e.write) for e in entries]
    assert read_all(tmp_path / default.name, tmp_path / "scratch") == [(data_key(default_key(b"b", 10)), LONG)]


def test_short_values_only_make_no_default_file(tmp_path: Path) -> None:
    cfs = MemoryCFs()
    put(cfs, b"k", b"v", 1, 2)
    target = RegionBackup(root=tmp_path, store_id=1, region_id=2, epoch_version=3, start_key=b"", end_key=b"",
                          start_version=0, end_version=5)
    files = write_region_files(target, backup_entries(TxnReader(cfs), b"", None, 0, 5), sst_options(), RateLimiter())
    assert [(f.cf, f.total_kvs) for f in files] == [("write", 1)]


def test_a_files_counters_can_be_recounted_from_its_records(cfs: MemoryCFs, tmp_path: Path) -> None:
    """br_common.txn_files: what the agent checks a txn backup file (or a restore piece of it) with."""
    target = RegionBackup(root=tmp_path, store_id=1, region_id=2, epoch_version=3, start_key=b"", end_key=b"",
                          start_version=0, end_version=25)
    files = write_region_files(target, backup_entries(TxnReader(cfs), b"", None, 15, 25), sst_options(),
                               RateLimiter())  # incremental: a Delete record too
    files += write_region_files(RegionBackup(**{**target.__dict__, "root": tmp_path / "full"}),
                                backup_entries(TxnReader(cfs), b"", None, 0, 25), sst_options(), RateLimiter())
    for f in files:
        root = tmp_path / "full" if f in files[-2:] else tmp_path
        recounted = txn_file_checksum(read_all(root / f.name, tmp_path / "scratch"), f.cf)
        assert recounted == Checksum(crc64xor=f.crc64xor, total_kvs=f.total_kvs, total_bytes=f.total_bytes)
    write = files[-1]
    part = txn_file_checksum(read_all(tmp_path / "full" / write.name, tmp_path / "scratch"), "write", b"b", b"e")
    assert part == Checksum().add_pairs([(b"d", b"")])  # b's value is long: counted in the default file


@pytest.mark.parametrize("seed", range(8))
def test_the_lock_free_backup_pass_equals_the_general_scan(seed: int) -> None:
    """Every (after_ts, backup_ts) pair over a random history, including gc_fence, Lock/Rollback
    and overlapped-rollback records: the same entries, field for field, in the same order."""
    cfs, last_ts = random_history(seed)
    reader = TxnReader(cfs)
    for backup_ts in range(0, max(last_ts, 40) + 5, 3):
        for after_ts in (0, backup_ts // 2, backup_ts):
            general = list(scanned_entries(reader, b"", None, after_ts, backup_ts))
            assert list(lock_free_entries(cfs, b"", None, after_ts, backup_ts)) == general, (after_ts, backup_ts)
    assert list(lock_free_entries(cfs, b"k03", b"k07", 0, 50)) == list(scanned_entries(reader, b"k03", b"k07", 0, 50))


def test_a_range_with_a_lock_takes_the_general_pass() -> None:
    cfs, _ = random_history(1)
    txn(cfs, 500, None, {b"k05": b"pending"})  # a lock that blocks a read at 600
    with pytest.raises(BackupLocked):
        list(backup_entries(TxnReader(cfs), b"", None, 0, 600))
    assert list(backup_entries(TxnReader(cfs), b"k06", None, 0, 600)) == list(
        lock_free_entries(cfs, b"k06", None, 0, 600))  # the lock lies outside this range
