"""backupmeta: built and checked by one rule set (agents before they hand it over, br before it plans)."""
from __future__ import annotations

import pytest

from br_common.backupmeta import meta as backupmeta
from br_common.backupmeta.kind import BackupKind
from br_common.backupmeta.layout import attempt_object_name
from br_common.fleet.messages import FileInfo, KeyRange
from br_common.kvproto import brpb_pb2, kvrpcpb_pb2


def _file(name: str, start: bytes, end: bytes) -> FileInfo:
    return FileInfo(name=name, sha256=b"\x01" * 32, start_key=start, end_key=end, crc64xor=7, total_kvs=1,
                    total_bytes=10, cf="default", size=100)


def _meta(*files: FileInfo, ranges: tuple[KeyRange, ...] = (KeyRange(),)) -> brpb_pb2.BackupMeta:
    return backupmeta.build(BackupKind.RAW, cluster_id=1, cluster_version="8.5.0", br_version="br-fleet 0.1",
                            files=list(files), ranges=list(ranges), end_version=42)


def test_a_built_raw_backup_reads_back_as_built() -> None:
    built = _meta(_file("1/a/a.sst", b"a", b"m"), _file("2/b/b.sst", b"m", b""))
    backup = backupmeta.parse(built.SerializeToString())
    assert backup.is_raw_kv and backup.end_version == 42 and backup.start_version == 0
    assert backup.backup_size == 200 and [r.cf for r in backup.raw_ranges] == ["default"]
    assert backupmeta.kind_of(backup) is BackupKind.RAW
    assert backupmeta.ranges(backup) == [KeyRange()]
    assert [f.name for f in backupmeta.files(backup)] == ["1/a/a.sst", "2/b/b.sst"]


@pytest.mark.parametrize("mutate, words", [
    (lambda m: setattr(m, "is_raw_kv", False), "TiDB table backup"),
    (lambda m: setattr(m, "is_txn_kv", True), "both a raw and a transactional"),
    (lambda m: setattr(m, "version", brpb_pb2.V2), "meta version"),
    (lambda m: setattr(m, "api_version", kvrpcpb_pb2.V2), "API version V2"),
    (lambda m: setattr(m, "end_version", 0), "no backup ts"),
    (lambda m: setattr(m, "backup_size", 1), "truncated"),
    (lambda m: setattr(m.files[0], "sha256", b""), "no sha256"),
    (lambda m: setattr(m.files[0], "name", "../x.sst"), "invalid file name"),
    (lambda m: setattr(m.files[0], "cf", "write"), "column family"),
    (lambda m: setattr(m.files[0], "end_key", b"a"), "inverted"),
    (lambda m: m.files.append(_file("1/a.sst", b"x", b"y").to_proto()), "twice"),
    (lambda m: m.files.append(_file("1/c.sst", b"b", b"c").to_proto()), "overlap"),
])
def test_a_bad_backupmeta_is_refused_in_one_line(mutate, words: str) -> None:  # noqa: ANN001
    meta = _meta(_file("1/a.sst", b"a", b"m"))
    mutate(meta)
    if words != "truncated":
        meta.backup_size = sum(f.size for f in meta.files)
    with pytest.raises(backupmeta.MetaError, match=words) as err:
        backupmeta.check(meta, "s3://b/p/backupmeta")
    assert "\n" not in str(err.value) and "s3://b/p/backupmeta" in str(err.value)


def test_a_file_outside_the_backup_ranges_is_refused() -> None:
    with pytest.raises(backupmeta.MetaError, match="outside the backup's ranges"):
        backupmeta.check(_meta(_file("1/a.sst", b"a", b"z"), ranges=(KeyRange(start=b"a", end=b"m"),)))


def test_bytes_that_are_not_a_backupmeta_are_refused() -> None:
    data = _meta(_file("1/a.sst", b"a", b"m")).SerializeToString()
    with pytest.raises(backupmeta.MetaError, match="truncated"):
        backupmeta.parse(data[: len(data) - 7])
    with pytest.raises(backupmeta.MetaError, match="not a backup.BackupMeta"):
        backupmeta.parse(b"\xff\xff\xff")


def test_a_raw_backup_by_pingcap_br_is_accepted() -> None:
    """Written by BR (no br-fleet size rule): what it holds is checked the same way."""
    meta = _meta(_file("1/a.sst", b"a", b"m"))
    meta.br_version, meta.backup_size = "BR\nRelease Version: v8.5.0", 0
    assert backupmeta.kind_of(backupmeta.parse(meta.SerializeToString())) is BackupKind.RAW


def test_attempt_object_names_are_fenced() -> None:
    assert attempt_object_name("2/6_1_ab_default.sst", "0f3c") == "2/0f3c/6_1_ab_default.sst"
    with pytest.raises(ValueError):
        attempt_object_name("no-store.sst", "0f3c")


def test_orphans_are_the_attempt_files_backupmeta_does_not_list() -> None:
    from br_common.backupmeta.layout import orphans  # noqa: PLC0415

    stored = [("backupmeta", 10), ("backupmeta.seal", 1), ("backup.lock", 2), ("1/aaaa/5_1_x_default.sst", 100),
              ("1/bbbb/5_1_x_default.sst", 90), ("notes/readme", 3), ("2/aaaa/x.sst", 7)]
    assert orphans(stored, {"1/aaaa/5_1_x_default.sst", "2/aaaa/x.sst"}) == [("1/bbbb/5_1_x_default.sst", 90)]


def _txn_file(name: str, cf: str, start: bytes, end: bytes) -> FileInfo:
    return _file(name, start, end).model_copy(update={"cf": cf})


def test_a_built_txn_backup_carries_brs_flags() -> None:
    files = [_txn_file("1/a/r_default.sst", "default", b"", b"m"), _txn_file("1/a/r_write.sst", "write", b"", b"m")]
    built = backupmeta.build(BackupKind.TXN, cluster_id=1, cluster_version="8.5.0", br_version="br-fleet 0.1",
                             files=files, ranges=[KeyRange()], end_version=42)
    backup = backupmeta.parse(built.SerializeToString())
    assert backup.is_txn_kv and not backup.is_raw_kv and backup.api_version == kvrpcpb_pb2.V1
    assert backupmeta.kind_of(backup) is BackupKind.TXN


def test_a_br_written_txn_backup_is_recognised() -> None:
    """BR's `backup txn`: is_txn_kv, no raw_ranges, files in the v1 field, its own br_version."""
    files = [_txn_file("1/2_3_ab_9_default.sst", "default", b"", b""),
             _txn_file("1/2_3_ab_9_write.sst", "write", b"", b"")]
    meta = brpb_pb2.BackupMeta(cluster_id=7, cluster_version="8.5.0", br_version="BR\nRelease Version: v8.5.0",
                               files=[f.to_proto() for f in files], end_version=42, is_txn_kv=True,
                               api_version=kvrpcpb_pb2.V1)
    assert backupmeta.check(meta) is BackupKind.TXN


def test_a_txn_backup_holds_no_other_cf() -> None:
    meta = backupmeta.build(BackupKind.TXN, cluster_id=1, cluster_version="", br_version="br-fleet 0.1",
                            files=[_txn_file("1/a_lock.sst", "lock", b"", b"")], ranges=[KeyRange()], end_version=4)
    with pytest.raises(backupmeta.MetaError, match="column family 'lock'"):
        backupmeta.check(meta)
