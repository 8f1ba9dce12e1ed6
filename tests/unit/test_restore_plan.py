"""Restore planning: ranges, parts, split keys, region assignment, checksums."""
from __future__ import annotations

import pytest

from br_common.backupmeta import meta as backupmeta
from br_common.backupmeta.kind import RULES, BackupKind
from br_common.checksum import Checksum
from br_common.fleet.messages import FileInfo, KeyRange
from br_common.kvproto import brpb_pb2, metapb_pb2
from br_common.pd_client import RegionInfo
from br_common.txn_codec import encode_bytes
from br_coordinator import restore_plan as rp


def _file(name: str, start: bytes, end: bytes, kvs: int = 1) -> brpb_pb2.File:
    return brpb_pb2.File(name=name, sha256=b"\x01" * 32, start_key=start, end_key=end, crc64xor=kvs * 7,
                         total_kvs=kvs, total_bytes=kvs * 10, cf="default", size=100)


def _meta(*files: brpb_pb2.File, ranges: tuple[tuple[bytes, bytes], ...] = ((b"", b""),)) -> brpb_pb2.BackupMeta:
    return brpb_pb2.BackupMeta(cluster_id=1, end_version=42, is_raw_kv=True, files=list(files),
                               raw_ranges=[brpb_pb2.RawRange(start_key=s, end_key=e) for s, e in ranges])


def _region(rid: int, start: bytes, end: bytes, stores: tuple[int, ...] = (1, 2, 3), leader: int = 1,
            version: int = 1) -> RegionInfo:
    peers = [metapb_pb2.Peer(id=rid * 10 + s, store_id=s) for s in stores]
    region = metapb_pb2.Region(id=rid, start_key=start, end_key=end, peers=peers,
                               region_epoch=metapb_pb2.RegionEpoch(conf_ver=1, version=version))
    return RegionInfo(region, next(p for p in peers if p.store_id == leader))


def test_restore_ranges_cut_to_the_wanted_range() -> None:
    backed_up = [KeyRange(start=b"a", end=b"f"), KeyRange(start=b"k", end=b"")]
    assert rp.restore_ranges(backed_up, None) == backed_up
    got = rp.restore_ranges(backed_up, KeyRange(start=b"c", end=b"m"))
    assert got == [KeyRange(start=b"c", end=b"f"), KeyRange(start=b"k", end=b"m")]
    with pytest.raises(rp.PlanError, match="outside the backup"):
        rp.restore_ranges(backed_up, KeyRange(start=b"g", end=b"h"))
    with pytest.raises(rp.PlanError, match="greater than --start"):
        rp.restore_ranges(backed_up, KeyRange(start=b"h", end=b"g"))


def test_parts_and_split_keys() -> None:
    files = backupmeta.files(_meta(_file("a", b"a", b"f"), _file("b", b"f", b"p"), _file("c", b"p", b"")))
    parts = rp.select_parts(files, [KeyRange(start=b"c", end=b"r")])
    assert [(p.file.name, p.range.start, p.range.end, p.whole) for p in parts] == [
        ("a", b"c", b"f", False), ("b", b"f", b"p", True), ("c", b"p", b"r", False)]
    assert rp.split_keys(parts) == [b"c", b"f", b"p", b"r"]
    whole = rp.select_parts(files, [KeyRange()])
    assert rp.split_keys(whole) == [b"a", b"f", b"p"]  # b"" is no split key


def test_assign_regions_one_region_per_part() -> None:
    files = backupmeta.files(_meta(_file("a", b"a", b"f"), _file("b", b"f", b"")))
    parts = rp.select_parts(files, [KeyRange()])
    regions = [_region(1, b"", b"a"), _region(2, b"a", b"f", leader=2), _region(3, b"f", b"", stores=(1, 4, 5))]
    works = rp.assign_regions(parts, regions, "job1")
    assert [w.region.id for w in works] == [2, 3]
    assert [len(w.pieces) for w in works] == [1, 1]
    assert works[0].pieces[0].whole_file and works[1].pieces[0].whole_file
    assert rp.download_stores(works[1]) == [1, 4, 5]
    assert rp.ingest_store(works[0]) == 2
    ctx = works[0].region.context(cluster_id=9)
    assert (ctx.region_id, ctx.peer.store_id, ctx.region_epoch.version, ctx.cluster_id) == (2, 2, 1, 9)


def test_a_part_spanning_regions_is_cut_into_pieces() -> None:
    parts = rp.select_parts(backupmeta.files(_meta(_file("a", b"a", b"z"))), [KeyRange()])
    regions = [_region(1, b"", b"k"), _region(2, b"k", b"")]
    works = rp.assign_regions(parts, regions, "job1")
    pieces = [p for w in works for p in w.pieces]
    assert [(p.range.start, p.range.end) for p in pieces] == [(b"a", b"k"), (b"k", b"z")]
    assert not any(p.whole_file for p in pieces)
    assert {p.part for p in pieces} == {KeyRange(start=b"a", end=b"z")}


def test_a_hole_in_the_region_list_is_an_error() -> None:
    parts = rp.select_parts(backupmeta.files(_meta(_file("a", b"a", b"z"))), [KeyRange()])
    with pytest.raises(rp.PlanError, match="hole"):
        rp.assign_regions(parts, [_region(1, b"", b"k"), _region(2, b"m", b"")], "job1")


def test_piece_uuids_are_stable_and_change_with_the_epoch() -> None:
    parts = rp.select_parts(backupmeta.files(_meta(_file("a", b"a", b"z"))), [KeyRange()])
    first = rp.assign_regions(parts, [_region(1, b"", b"")], "job1")[0].pieces[0].uuid
    again = rp.assign_regions(parts, [_region(1, b"", b"")], "job1")[0].pieces[0].uuid
    moved = rp.assign_regions(parts, [_region(1, b"", b"", version=2)], "job1")[0].pieces[0].uuid
    other_job = rp.assign_regions(parts, [_region(1, b"", b"")], "job2")[0].pieces[0].uuid
    assert first == again and len(first) == 16
    assert len({first, moved, other_job}) == 3


def test_expected_checksums_per_range() -> None:
    ranges = [KeyRange(start=b"", end=b"m"), KeyRange(start=b"m", end=b"")]
    restored = [(KeyRange(start=b"a", end=b"c"), Checksum(crc64xor=1, total_kvs=1, total_bytes=5)),
                (KeyRange(start=b"c", end=b"m"), Checksum(crc64xor=2, total_kvs=2, total_bytes=6)),
                (KeyRange(start=b"m", end=b""), Checksum(crc64xor=4, total_kvs=3, total_bytes=7))]
    got = rp.expected_checksums(ranges, restored)
    assert got[0][1] == Checksum(crc64xor=3, total_kvs=3, total_bytes=11)
    assert got[1][1] == Checksum(crc64xor=4, total_kvs=3, total_bytes=7)


def test_messages_round_trip_through_json() -> None:
    parts = rp.select_parts(backupmeta.files(_meta(_file("a", b"\x00\xff", b"z"))), [KeyRange()])
    work = rp.assign_regions(parts, [_region(1, b"", b"")], "job1")[0]
    again = type(work).model_validate(work.model_dump(mode="json"))
    assert again == work


def test_a_txn_backup_splits_at_encodings_and_keeps_a_ranges_files_in_one_region() -> None:
    """Raw user-key file ranges; PD splits at encode_bytes(k); a range's write and default files
    become pieces of one region's work (downloaded and ingested together)."""
    txn = RULES[BackupKind.TXN]
    files = [FileInfo(name=f"1/r_{cf}.sst", start_key=b"a", end_key=b"f", cf=cf) for cf in ("default", "write")]
    files.append(FileInfo(name="1/s_write.sst", start_key=b"f", end_key=b"", cf="write"))
    parts = rp.select_parts(files, [KeyRange()])
    assert rp.split_keys(parts, txn) == [encode_bytes(b"a"), encode_bytes(b"f")]
    regions = [_region(1, b"", encode_bytes(b"a")), _region(2, encode_bytes(b"a"), encode_bytes(b"f"), leader=2),
               _region(3, encode_bytes(b"f"), b"")]
    works = rp.assign_regions(parts, regions, "job1", txn)
    assert [(w.region.id, sorted(p.file.name for p in w.pieces)) for w in works] == [
        (2, ["1/r_default.sst", "1/r_write.sst"]), (3, ["1/s_write.sst"])]
    assert all(p.whole_file for w in works for p in w.pieces)
