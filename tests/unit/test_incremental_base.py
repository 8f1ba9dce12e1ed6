"""br_coordinator.incremental_base: an incremental backup builds only on a complete txn backup
(--lastbackup's backupmeta; --lastbackupts against the fleet's job records)."""
from __future__ import annotations

import logging

import fakeredis
import pytest

from br_common.backupmeta import meta as backupmeta
from br_common.backupmeta import seal as backupmeta_seal
from br_common.backupmeta.kind import BackupKind
from br_common.fleet.jobs import JobSpec, JobStore
from br_common.fleet.messages import FileInfo, KeyRange
from br_coordinator import incremental_base as base
from br_coordinator.errors import CommandError

WHERE = "s3://b/full/backupmeta"
WHOLE = KeyRange()


def _meta(kind: BackupKind = BackupKind.TXN, ranges: list[KeyRange] | None = None, end: int = 100) -> bytes:
    files = [FileInfo(name="1/a.sst", cf="write" if kind is BackupKind.TXN else "default", sha256=b"\0" * 32,
                      start_key=b"a", end_key=b"b", size=10)]
    return backupmeta.build(kind, cluster_id=7, cluster_version="", br_version=f"{backupmeta.BR_VERSION_PREFIX} 1",
                            files=files, ranges=ranges or [KeyRange()], end_version=end).SerializeToString()


def _from(data: bytes, seal: bytes | None = b"", whole: KeyRange = WHOLE, ts: int = 0) -> int:
    if seal == b"":
        seal = backupmeta_seal.seal(data, None).to_bytes()
    return base.from_backupmeta(data, seal, None, WHERE, whole, 7, ts)


def test_a_sealed_txn_backup_of_the_whole_range_gives_its_end_version() -> None:
    assert _from(_meta()) == 100
    assert _from(_meta(), ts=100) == 100  # --lastbackupts naming the same backup
    assert _from(_meta(ranges=[KeyRange(start=b"a", end=b"m")]), whole=KeyRange(start=b"b", end=b"c")) == 100


@pytest.mark.parametrize(("data", "seal", "whole", "ts", "words"), [
    (_meta(), None, WHOLE, 0, "has no seal .* refusing to build an incremental backup on it"),
    (_meta(), backupmeta_seal.seal(b"other", None).to_bytes(), WHOLE, 0, "does not match its seal"),
    (_meta(BackupKind.RAW), b"", WHOLE, 0, "is a raw KV backup"),
    (_meta(ranges=[KeyRange(start=b"a", end=b"m")]), b"", WHOLE, 0, "does not cover"),
    (_meta(), b"", WHOLE, 99, "--lastbackupts 99 is not the end version 100"),
    (b"\xff\xff", None, WHOLE, 0, "is not a backup.BackupMeta"),
])
def test_what_cannot_be_a_base_is_refused_in_one_line(data: bytes, seal: bytes | None, whole: KeyRange, ts: int,
                                                        words: str) -> None:
    with pytest.raises(CommandError, match=words) as err:
        _from(data, seal, whole, ts)
    assert "\n" not in str(err.value)


def _record(client: fakeredis.FakeRedis, url: str, ts: int, status: str = "done", kind: str = "txn",
            cluster: int = 7, ranges: list[KeyRange] | None = None) -> str:
    spec = JobSpec(kind="backup", cluster_id=cluster, storage_url=url, ranges=ranges or [KeyRange()],
                   options={"backup_kind": kind})
    jobs = JobStore(client, spec.job_id())
    jobs.create(spec)
    jobs.fix_job_ts(ts)
    if status != "running":
        jobs.finish(status, "boom" if status == "failed" else "")  # type: ignore[arg-type]
    return jobs.job_id


def test_job_records_a_complete_base_passes_an_unfinished_one_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    client = fakeredis.FakeRedis()
    _record(client, "s3://b/other-cluster", 100, cluster=8)
    _record(client, "s3://b/raw", 100, kind="raw")
    with caplog.at_level(logging.WARNING):
        with pytest.raises(CommandError, match="s3://b/raw, a raw KV backup"):
            base.check_job_records(client, 7, 100, WHOLE)
        base.check_job_records(client, 7, 200, WHOLE)  # unknown: a warning only
    assert "give --lastbackup URL to have it checked" in caplog.text
    failed = _record(client, "s3://b/failed", 300, status="failed")
    with pytest.raises(CommandError, match=f"job {failed} at s3://b/failed, which is failed \\(boom\\).*rerun its"):
        base.check_job_records(client, 7, 300, WHOLE)
    _record(client, "s3://b/half", 400, ranges=[KeyRange(start=b"a", end=b"m")])
    with pytest.raises(CommandError, match="does not cover the range backed up now"):
        base.check_job_records(client, 7, 400, WHOLE)
    base.check_job_records(client, 7, 400, KeyRange(start=b"b", end=b"c"))
    _record(client, "s3://b/full", 300)  # a complete backup at the same ts wins over the failed one
    base.check_job_records(client, 7, 300, WHOLE)
