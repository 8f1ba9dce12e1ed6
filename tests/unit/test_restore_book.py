"""RestoreBook: downloads on every peer before the leader ingests; redo, parts done, give up."""
from __future__ import annotations

from br_common.backupmeta import meta as backupmeta
from br_common.checksum import Checksum
from br_common.fleet.messages import KeyRange
from br_common.fleet.restore_messages import DownloadResult, IngestResult, StagedPiece
from br_common.kvproto import brpb_pb2, metapb_pb2
from br_common.pd_client import RegionInfo
from br_coordinator import restore_plan as rp
from br_coordinator.follow.book import Checkpoint, Fail, Resolve
from br_coordinator.follow.restore_book import INGEST, RestoreBook


def _restored(action: object) -> Checksum:
    """The checksum a part's checkpoint records (what was restored of it)."""
    assert isinstance(action, Checkpoint)
    f = action.record.files[0]
    return Checksum(crc64xor=f.crc64xor, total_kvs=f.total_kvs, total_bytes=f.total_bytes)


def _region(rid: int, start: bytes, end: bytes, stores=(1, 2, 3), leader: int = 1, version: int = 1) -> RegionInfo:
    peers = [metapb_pb2.Peer(id=rid * 10 + s, store_id=s) for s in stores]
    region = metapb_pb2.Region(id=rid, start_key=start, end_key=end, peers=peers,
                               region_epoch=metapb_pb2.RegionEpoch(conf_ver=1, version=version))
    return RegionInfo(region, next(p for p in peers if p.store_id == leader))


def _parts(cut: KeyRange | None = None):
    f = brpb_pb2.File(name="1/a.sst", sha256=b"\x01" * 32, start_key=b"a", end_key=b"z", crc64xor=5,
                      total_kvs=2, total_bytes=20, cf="default", size=10)
    meta = brpb_pb2.BackupMeta(end_version=1, is_raw_kv=True, files=[f])
    return rp.select_parts(backupmeta.files(meta), [cut or KeyRange()])


def _ok(work, store: int, checksum: Checksum | None = None, empty: bool = False) -> DownloadResult:
    staged = [StagedPiece(uuid=p.uuid, first_key=p.range.start, last_key=p.range.start, is_empty=empty,
                          checksum=checksum) for p in work.pieces]
    return DownloadResult(job_id="j", attempt="x", store_id=store, agent="a", region_id=work.region.id,
                          staged=staged)


def _ingest(work, error: str = "", kind: str = "") -> IngestResult:
    return IngestResult(job_id="j", attempt="y", store_id=1, agent="a", region_id=work.region.id, error=error,
                        error_kind=kind)


def test_every_peer_downloads_then_the_leader_ingests_once() -> None:
    parts = _parts()
    book = RestoreBook(parts)
    work = rp.assign_regions(parts, [_region(7, b"", b"", leader=2)], "j")[0]
    sends = book.add(work)
    assert sorted(a.store_id for a in sends) == [1, 2, 3]
    assert book.downloaded(1, 1, _ok(work, 1)) == []
    assert book.downloaded(1, 3, _ok(work, 3)) == []
    assert book.downloaded(1, 3, _ok(work, 3)) == []  # duplicate of a resent task
    (ingest,) = book.downloaded(1, 2, _ok(work, 2))
    assert ingest.lane == INGEST and ingest.store_id == 2 and len(ingest.body.ssts) == 1
    (done,) = book.ingested(1, _ingest(work))
    assert _restored(done) == Checksum(crc64xor=5, total_kvs=2, total_bytes=20)
    assert book.done


def test_an_integrity_error_fails_before_any_ingest() -> None:
    parts = _parts()
    book = RestoreBook(parts)
    work = rp.assign_regions(parts, [_region(7, b"", b"")], "j")[0]
    book.add(work)
    bad = DownloadResult(job_id="j", attempt="x", store_id=2, agent="a", region_id=7, error="1/a.sst changed",
                         error_kind="integrity")
    (fail,) = book.downloaded(1, 2, bad)
    assert isinstance(fail, Fail) and "1/a.sst" in fail.reason


def test_region_error_on_ingest_then_the_new_leader_ingests() -> None:
    parts = _parts()
    book = RestoreBook(parts)
    work = rp.assign_regions(parts, [_region(7, b"", b"", leader=1)], "j")[0]
    book.add(work)
    for s in (1, 2, 3):
        book.downloaded(1, s, _ok(work, s))
    (redo,) = book.ingested(1, _ingest(work, "NotLeader", "region"))
    assert isinstance(redo, Resolve) and book.redo_of(1)[1]
    moved = rp.region_ref(_region(7, b"", b"", leader=3))
    assert work.region.same_placement(moved)
    (ingest,) = book.reingest(1, moved)
    assert ingest.store_id == 3
    assert isinstance(book.ingested(1, _ingest(work))[0], Checkpoint)


def test_redo_after_a_split_cuts_the_part_and_sums_the_crops() -> None:
    parts = _parts()
    book = RestoreBook(parts)
    work = rp.assign_regions(parts, [_region(7, b"", b"")], "j")[0]
    book.add(work)
    (redo,) = book.downloaded(1, 1, DownloadResult(job_id="j", attempt="x", store_id=1, agent="a", region_id=7,
                                                   error="EpochNotMatch", error_kind="region"))
    assert isinstance(redo, Resolve) and not book.redo_of(1)[1] and not book.done
    new = rp.reassign(book.redo_of(1)[0].pieces, [_region(7, b"", b"m", version=2), _region(8, b"m", b"", version=2)], "j")
    sends = book.replace(1, new)
    assert len(sends) == 6 and book.task_failed(1, "late result of a superseded work") == []
    halves = {2: Checksum(crc64xor=1, total_kvs=1, total_bytes=9), 3: Checksum(crc64xor=4, total_kvs=1, total_bytes=11)}
    done = []
    for work_id, w in ((2, new[0]), (3, new[1])):
        for s in (1, 2, 3):
            book.downloaded(work_id, s, _ok(w, s, checksum=halves[work_id]))
        done += book.ingested(work_id, _ingest(w))
    assert len(done) == 1 and _restored(done[0]) == Checksum(crc64xor=5, total_kvs=2, total_bytes=20)
    assert book.done


def test_empty_pieces_finish_without_ingest() -> None:
    parts = _parts(KeyRange(start=b"b", end=b"c"))
    book = RestoreBook(parts)
    work = rp.assign_regions(parts, [_region(7, b"", b"", stores=(1,))], "j")[0]
    book.add(work)
    (done,) = book.downloaded(1, 1, _ok(work, 1, checksum=Checksum(), empty=True))
    assert _restored(done) == Checksum()


def test_gives_up_after_max_tries() -> None:
    parts = _parts()
    book = RestoreBook(parts, max_tries=2)
    work = rp.assign_regions(parts, [_region(7, b"", b"", stores=(1,))], "j")[0]
    book.add(work)
    assert isinstance(book.task_failed(1, "lost")[0], Resolve)
    book.replace(1, [work])
    book.task_failed(2, "lost again")
    (fail,) = book.replace(2, [work])
    assert isinstance(fail, Fail) and "gave up after 2 attempts" in fail.reason
    assert "; the last: lost again; nothing was ingested" in fail.reason  # the last line says why (e.g. a full disk)


def test_what_no_finished_work_ingested_is_left_to_discard_per_store() -> None:
    """A superseded work's pieces (new regions: new uuids) and an unfinished work's are unconsumed;
    a finished work's are not, even when a superseded work shared a uuid with it."""
    parts = _parts()
    book = RestoreBook(parts)
    work = rp.assign_regions(parts, [_region(7, b"", b"", stores=(1, 2))], "j")[0]
    book.add(work)
    assert book.unconsumed() == {1: {work.pieces[0].uuid}, 2: {work.pieces[0].uuid}}  # maybe staged already
    book.downloaded(1, 1, DownloadResult(job_id="j", attempt="x", store_id=1, agent="a", region_id=7,
                                         error="EpochNotMatch", error_kind="region"))
    left, right = rp.reassign(work.pieces, [_region(7, b"", b"m", stores=(1, 2), version=2),
                                            _region(8, b"m", b"", stores=(2, 3), leader=2, version=2)], "j")
    book.replace(1, [left, right])
    for s in (1, 2):
        book.downloaded(2, s, _ok(left, s))
    book.ingested(2, _ingest(left))
    old, new_right = work.pieces[0].uuid, right.pieces[0].uuid
    assert book.unconsumed() == {1: {old}, 2: {old, new_right}, 3: {new_right}}
    same = RestoreBook(parts)  # a redo into the same region keeps its uuid: ingested, nothing left
    same.add(work)
    same.task_failed(1, "agent lost")
    same.replace(1, [work])
    for s in (1, 2):
        same.downloaded(2, s, _ok(work, s))
    same.ingested(2, _ingest(work))
    assert same.done and same.unconsumed() == {}


def test_no_ingest_before_every_download_is_checked_and_a_damaged_file_writes_nothing() -> None:
    parts = _parts()
    regions = [_region(7, b"", b"m", stores=(1,)), _region(8, b"m", b"", stores=(1,))]
    left, right = rp.assign_regions(parts, regions, "j")
    book = RestoreBook(parts, [left, right])
    assert [a.lane for a in book.start()] == ["download", "download"]
    assert book.downloaded(1, 1, _ok(left, 1, checksum=Checksum())) == []  # held: region 8 is not checked yet
    bad = DownloadResult(job_id="j", attempt="x", store_id=1, agent="a", region_id=8, error="1/a.sst changed",
                         error_kind="integrity")
    (fail,) = book.downloaded(2, 1, bad)
    assert isinstance(fail, Fail) and fail.reason == "1/a.sst changed; nothing was ingested into the cluster"


def test_held_ingests_go_once_the_last_download_succeeds_and_a_later_failure_says_what_was_written() -> None:
    parts = _parts()
    regions = [_region(7, b"", b"m", stores=(1,)), _region(8, b"m", b"", stores=(1,))]
    left, right = rp.assign_regions(parts, regions, "j")
    book = RestoreBook(parts, [left, right], max_tries=1)
    book.start()
    assert book.downloaded(1, 1, _ok(left, 1, checksum=Checksum())) == []
    ingests = book.downloaded(2, 1, _ok(right, 1, checksum=Checksum()))
    assert sorted(a.work_id for a in ingests) == [1, 2] and {a.lane for a in ingests} == {INGEST}
    assert book.ingested(1, _ingest(left)) == []  # the part is complete only with region 8's piece
    (resolve,) = book.ingested(2, _ingest(right, "disk full", "retryable"))
    (fail,) = book.replace(resolve.work_id, [right])
    assert fail.reason.endswith("; 1 region was already ingested (0 of 1 file parts complete): they stay, and a "
                                "rerun of the same command restores the rest")
