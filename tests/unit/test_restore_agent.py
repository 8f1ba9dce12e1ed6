"""Agent restore tasks over a local storage and a fake ImportSST stub (no processes)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from rocksdict import Options, SstFileWriter

from br_agent import restore_tasks as rt
from br_agent.context import AgentContext
from br_agent.interruption import AttemptCancelled
from br_agent.task_base import stop_if_withdrawn
from br_common.checksum import Checksum
from br_common.data_keys import data_key
from br_common.fleet import restore_messages as rm
from br_common.fleet.messages import FileInfo, KeyRange, StorageSpec
from br_common.kvproto import errorpb_pb2, import_sstpb_pb2, metapb_pb2
from br_common.storage import open_storage

PAIRS = [(b"k%03d" % i, b"v%03d" % i) for i in range(50)]


class FakeImport:
    """Records requests; answers as a store would (or with a canned error)."""

    def __init__(self) -> None:
        self.downloads: list[import_sstpb_pb2.DownloadRequest] = []
        self.seen_files: list[bytes] = []
        self.ingests: list[import_sstpb_pb2.MultiIngestRequest] = []
        self.speed: list[int] = []
        self.ingest_error: errorpb_pb2.Error | None = None

    def SetDownloadSpeedLimit(self, request, timeout=None):  # noqa: N802
        self.speed.append(request.speed_limit)
        return import_sstpb_pb2.SetDownloadSpeedLimitResponse()

    def Download(self, request, timeout=None):  # noqa: N802
        self.downloads.append(request)
        self.seen_files.append((Path(request.storage_backend.local.path) / request.name).read_bytes())
        return import_sstpb_pb2.DownloadResponse(range=import_sstpb_pb2.Range(start=b"k000", end=b"k049"),
                                                 length=123)

    def MultiIngest(self, request, timeout=None):  # noqa: N802
        self.ingests.append(request)
        if self.ingest_error is not None:
            return import_sstpb_pb2.IngestResponse(error=self.ingest_error)
        return import_sstpb_pb2.IngestResponse()


class FakeContext:
    store_id = 2
    cluster_id = 1
    instance = "host/1/boot"

    def __init__(self, tmp: Path, skip: str = "") -> None:
        self.stub = FakeImport()
        self.staging_dir = tmp / "staging"
        self._skip = skip

    def jobs(self, job_id: str):
        return SimpleNamespace(skip_reason=lambda attempt: self._skip)

    def open_storage(self, spec: StorageSpec, rate_limit: int = 0):
        return open_storage(spec.url)

    def import_stub(self):
        return self.stub

    def staging(self, *parts: str) -> Path:
        path = self.staging_dir.joinpath("jobs", *parts)
        path.mkdir(parents=True)
        return path

    def scrub(self, text: str) -> str:
        return text

    drop_staging = AgentContext.drop_staging  # the real cleanup: it only touches the path


def _sst(path: Path, pairs=PAIRS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = SstFileWriter(Options(raw_mode=True))
    writer.open(str(path))
    for k, v in pairs:
        writer[data_key(k)] = v  # TiKV's backup files hold data keys
    writer.finish()


@pytest.fixture
def backup(tmp_path: Path) -> tuple[StorageSpec, FileInfo]:
    root = tmp_path / "backup"
    _sst(root / "1" / "a.sst")
    data = (root / "1" / "a.sst").read_bytes()
    checksum = Checksum().add_pairs(PAIRS)
    info = FileInfo(name="1/a.sst", sha256=hashlib.sha256(data).digest(), start_key=b"k", end_key=b"l",
                    crc64xor=checksum.crc64xor, total_kvs=checksum.total_kvs, total_bytes=checksum.total_bytes,
                    size=len(data))
    return StorageSpec(url=f"local://{root}"), info


def _region() -> rm.RegionRef:
    return rm.RegionRef(id=7, start_key=b"", end_key=b"", conf_ver=1, version=3,
                        peers=[rm.PeerRef(id=71, store_id=2)], leader=rm.PeerRef(id=71, store_id=2))


def _task(spec: StorageSpec, info: FileInfo, rng: KeyRange | None = None, rate: int = 0) -> rm.DownloadTask:
    piece = rm.Piece(uuid=b"\x05" * 16, file=info, range=rng or KeyRange(start=b"k", end=b"l"),
                     part=rng or KeyRange(start=b"k", end=b"l"))
    return rm.DownloadTask(job_id="j", attempt="a1", cluster_id=1, store_id=2, region=_region(), pieces=[piece],
                           restore_ts=4242, rate_limit=rate, storage=spec)


def test_whole_file_download_sends_the_verified_file(tmp_path: Path, backup) -> None:
    spec, info = backup
    ctx = FakeContext(tmp_path)
    result = rt.run_download(ctx, _task(spec, info, rate=1 << 30))
    assert not result.error and result.bytes_downloaded == info.size
    (request,) = ctx.stub.downloads
    assert request.rewrite_rule.new_timestamp == 0 and request.is_raw_kv  # TiKV would cut 8 bytes off V1 raw keys
    assert request.sst.uuid == b"\x05" * 16 and request.sst.region_id == 7 and request.sst.region_epoch.version == 3
    assert request.sst.range.start == b"k" and request.sst.range.end == b"l" and request.sst.end_key_exclusive
    assert hashlib.sha256(ctx.stub.seen_files[0]).digest() == info.sha256
    assert ctx.stub.speed == [1 << 30]
    assert result.staged[0].checksum is None and result.staged[0].last_key == b"k049"
    assert not any(p.is_file() for p in ctx.staging_dir.rglob("*")), "staging must be empty afterwards"


def test_a_cut_piece_is_counted_and_the_store_cuts_it(tmp_path: Path, backup) -> None:
    spec, info = backup
    ctx = FakeContext(tmp_path)
    rng = KeyRange(start=b"k010", end=b"k020")
    result = rt.run_download(ctx, _task(spec, info, rng))
    assert result.staged[0].checksum == Checksum().add_pairs(PAIRS[10:20])
    (request,) = ctx.stub.downloads
    assert (request.sst.range.start, request.sst.range.end, request.sst.end_key_exclusive) == (b"k010", b"k020", True)
    assert hashlib.sha256(ctx.stub.seen_files[0]).digest() == info.sha256  # the whole file: TiKV cuts it
    empty = rt.run_download(FakeContext(tmp_path / "x"), _task(spec, info, KeyRange(start=b"k1", end=b"k2")))
    assert empty.staged[0].is_empty and empty.staged[0].checksum == Checksum()


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.unlink(), "is missing from storage"),
    (lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])), "does not match the sha256"),
    (lambda p: p.write_bytes(p.read_bytes() + b"x"), "bytes, backupmeta says"),
])
def test_a_changed_or_missing_object_is_an_integrity_error(tmp_path: Path, backup, damage, words: str) -> None:
    spec, info = backup
    damage(tmp_path / "backup" / "1" / "a.sst")
    ctx = FakeContext(tmp_path)
    result = rt.run_download(ctx, _task(spec, info))
    assert result.error_kind == "integrity" and words in result.error and "1/a.sst" in result.error
    assert ctx.stub.downloads == []  # never handed to the store
    assert not any(p.is_file() for p in ctx.staging_dir.rglob("*"))


def test_a_withdrawn_attempt_does_not_run(tmp_path: Path, backup) -> None:
    """Every agent task checks this before its run function (br_agent.task_base): REVOKED, not run."""
    spec, info = backup
    ctx = FakeContext(tmp_path, skip="job j is done")
    with pytest.raises(AttemptCancelled, match="job j is done"):
        stop_if_withdrawn(ctx, _task(spec, info))
    stop_if_withdrawn(ctx, rm.DiscardTask(job_id="j", cluster_id=1, store_id=2, uuids=[]))  # no attempt: runs


def _ingest_task() -> rm.IngestTask:
    return rm.IngestTask(job_id="j", attempt="i1", cluster_id=1, store_id=2, region=_region(),
                         ssts=[rm.StagedPiece(uuid=b"\x05" * 16, first_key=b"k000", last_key=b"k049", length=9),
                               rm.StagedPiece(uuid=b"\x06" * 16, is_empty=True)])


def test_ingest_sends_one_multi_ingest_with_the_leader_context(tmp_path: Path) -> None:
    ctx = FakeContext(tmp_path)
    assert not rt.run_ingest(ctx, _ingest_task()).error
    (request,) = ctx.stub.ingests
    assert request.context.region_id == 7 and request.context.peer.store_id == 2
    assert [s.uuid for s in request.ssts] == [b"\x05" * 16]
    assert request.ssts[0].range.end == b"k049" and not request.ssts[0].end_key_exclusive


def test_ingest_region_errors_carry_the_leader_hint(tmp_path: Path) -> None:
    ctx = FakeContext(tmp_path)
    ctx.stub.ingest_error = errorpb_pb2.Error(message="nl", not_leader=errorpb_pb2.NotLeader(
        region_id=7, leader=metapb_pb2.Peer(id=73, store_id=3)))
    result = rt.run_ingest(ctx, _ingest_task())
    assert result.error_kind == "region" and result.leader == rm.PeerRef(id=73, store_id=3)
    ctx.stub.ingest_error = errorpb_pb2.Error(message="SST 05 is not downloaded on this store")
    result = rt.run_ingest(ctx, _ingest_task())
    assert result.error_kind == "retryable" and "not downloaded" in result.error


def test_check_objects_names_missing_and_resized(tmp_path: Path, backup) -> None:
    spec, info = backup
    objects = [rm.ObjectRef(name=info.name, size=info.size), rm.ObjectRef(name="1/b.sst", size=1),
               rm.ObjectRef(name="2/c.sst", size=5)]
    (tmp_path / "backup" / "2").mkdir()
    (tmp_path / "backup" / "2" / "c.sst").write_bytes(b"abc")
    result = rt.run_check_objects(FakeContext(tmp_path), rm.CheckObjectsTask(storage=spec, objects=objects))
    assert len(result.problems) == 2
    assert "1/b.sst is missing" in result.problems[0] and "has 3 bytes, backupmeta says 5" in result.problems[1]


def test_a_task_for_another_cluster_is_refused(tmp_path: Path, backup) -> None:
    spec, info = backup
    ctx = FakeContext(tmp_path)
    ctx.cluster_id = 99
    with pytest.raises(rt.TaskFatalError, match="cluster 1 reached the agent of store 2 of cluster 99"):
        rt.run_download(ctx, _task(spec, info))
    with pytest.raises(rt.TaskFatalError, match="cluster 1"):
        rt.run_ingest(ctx, _ingest_task())
    assert ctx.stub.downloads == [] and ctx.stub.ingests == []


def test_discard_removes_the_staged_ssts_of_those_uuids_by_tikv_name(tmp_path: Path) -> None:
    from br_common.import_files import staged_sst_name

    import_dir = tmp_path / "tikv" / "import"
    import_dir.mkdir(parents=True)
    gone, kept = b"\x05" * 16, b"\x06" * 16
    for uuid, region in ((gone, 7), (gone, 8), (kept, 7)):
        (import_dir / staged_sst_name(uuid, region, 1, 3, "default")).write_bytes(b"sst")
    (import_dir / ".temp").mkdir()
    context = FakeContext(tmp_path)
    context.store_import_dir = None
    task = rm.DiscardTask(job_id="j", cluster_id=1, store_id=2, uuids=[gone])
    assert rt.run_discard(context, task).skipped  # not configured: TiKV's own cleanup only
    context.store_import_dir = import_dir
    assert rt.run_discard(context, task).removed == 2
    assert sorted(p.name for p in import_dir.iterdir()) == [".temp", staged_sst_name(kept, 7, 1, 3, "default")]


def test_a_completed_job_drops_every_staged_sst_of_the_job_whatever_run_staged_it(tmp_path: Path) -> None:
    """A killed run staged pieces under an epoch that changed since: the completed job's discard
    finds them by the job tag its uuids start with (restore_plan.piece_uuid), and only them."""
    from br_common.import_files import staged_sst_name
    from br_coordinator.restore_plan import job_tag, piece_uuid

    import_dir = tmp_path / "import"
    import_dir.mkdir()
    region = _region()
    ours = piece_uuid("job-a", "1/a.sst", region, KeyRange(start=b"k"))
    other = piece_uuid("job-b", "1/a.sst", region, KeyRange(start=b"k"))
    assert ours[:4] == job_tag("job-a") and other[:4] != ours[:4]
    for uuid in (ours, other):
        (import_dir / staged_sst_name(uuid, 7, 1, 3, "default")).write_bytes(b"sst")
    context = FakeContext(tmp_path)
    context.store_import_dir = import_dir
    task = rm.DiscardTask(job_id="job-a", cluster_id=1, store_id=2, uuids=[], job_tag=job_tag("job-a"))
    assert rt.run_discard(context, task).removed == 1
    assert [p.name for p in import_dir.iterdir()] == [staged_sst_name(other, 7, 1, 3, "default")]


def test_a_full_staging_disk_says_so_and_what_to_do(tmp_path: Path, backup, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while the backup file is written to the staging dir: the piece's error (which the
    restore's last line repeats: RestoreBook's give-up line) names the path and the fix."""
    import errno  # noqa: PLC0415
    import os  # noqa: PLC0415

    from br_common.storage import local  # noqa: PLC0415

    def disk_full(src, dst, *_args) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write() into the temp file raises it

    monkeypatch.setattr(local, "copy_stream", disk_full)
    spec, info = backup
    ctx = FakeContext(tmp_path)
    result = rt.run_download(ctx, _task(spec, info))
    assert result.error.startswith(f"no space left on {ctx.staging_dir}: ")
    assert f"staging dir {ctx.staging_dir} of store 2's agent" in result.error and "--staging-dir" in result.error
    assert result.error_kind == "retryable" and ctx.stub.downloads == []
    assert not any(p.is_file() for p in ctx.staging_dir.rglob("*"))


def test_no_space_left_is_found_behind_any_wrapper(tmp_path: Path) -> None:
    """The line every agent task ends with on a full disk (br_agent.task_base), whatever raised it."""
    import errno  # noqa: PLC0415

    from br_agent.task_base import no_space_left  # noqa: PLC0415
    from br_common.storage import StorageError  # noqa: PLC0415

    ctx = FakeContext(tmp_path)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise StorageError("upload s3://b/k failed: No space left on device") from exc
    except StorageError as wrapped:
        assert no_space_left(ctx, wrapped).startswith(f"no space left on {ctx.staging_dir}: ")
    assert no_space_left(ctx, OSError(errno.EACCES, "Permission denied")) == ""
    assert no_space_left(ctx, ValueError("x")) == ""
