"""Pure request rules of the store: region ranges, scan bounds, rewrite and SST range checks,
error translation into responses, command-line validation."""
from __future__ import annotations

import grpc
import pytest

from br_common.kvproto import coprocessor_pb2, devclusterpb_pb2, errorpb_pb2, import_sstpb_pb2, kvrpcpb_pb2, metapb_pb2
from br_common.pd_client import PDError
from br_devcluster.store.txn_reader import Modify
from br_devcluster.store.config import parse_args
from br_devcluster.store.errors import InvalidArgument, RegionError, StoreError, rpc
from br_devcluster.store.import_service import after_range, before_range, rewrite_key
from br_devcluster.store.raw_service import checksum_ranges
from br_devcluster.store.regions import clamp_scan, is_empty_range, range_in_region
from br_devcluster.store.replication import chunks

MIDDLE = metapb_pb2.Region(id=5, start_key=b"b", end_key=b"d")
LAST = metapb_pb2.Region(id=6, start_key=b"d", end_key=b"")


@pytest.mark.parametrize("region, start, end, inside", [
    (MIDDLE, b"b", b"d", True), (MIDDLE, b"c", b"c\x00", True), (MIDDLE, b"a", b"c", False),
    (MIDDLE, b"b", b"d\x00", False), (MIDDLE, b"b", b"", False), (LAST, b"d", b"", True), (LAST, b"c", b"", False),
])
def test_range_in_region(region: metapb_pb2.Region, start: bytes, end: bytes, inside: bool) -> None:
    assert range_in_region(start, end, region) is inside


def test_scan_bounds_forward_and_reverse() -> None:
    assert clamp_scan(b"b", b"", False, MIDDLE) == (b"b", b"d")
    assert clamp_scan(b"bb", b"c", False, MIDDLE) == (b"bb", b"c")
    assert clamp_scan(b"", b"", True, MIDDLE) == (b"b", b"d")
    assert clamp_scan(b"c", b"bb", True, MIDDLE) == (b"bb", b"c")
    assert clamp_scan(b"x", b"", False, LAST) == (b"x", b"")


def test_scan_end_beyond_the_region_is_clamped_as_tikv() -> None:
    """TiKV's region snapshot bounds the iterator by the region: the far end is cut."""
    assert clamp_scan(b"b", b"e", False, MIDDLE) == (b"b", b"d")
    assert clamp_scan(b"c", b"a", True, MIDDLE) == (b"b", b"c")
    assert clamp_scan(b"d", b"", False, MIDDLE) == (b"d", b"d")  # seeking at the end: allowed, empty
    assert clamp_scan(b"d", b"a", True, MIDDLE) == (b"b", b"d")  # reverse from the region's end


@pytest.mark.parametrize("start, end, reverse", [(b"a", b"", False), (b"e", b"f", False), (b"", b"", False),
                                                 (b"e", b"a", True), (b"a", b"", True)])
def test_scan_seeking_outside_the_region(start: bytes, end: bytes, reverse: bool) -> None:
    with pytest.raises(RegionError) as info:
        clamp_scan(start, end, reverse, MIDDLE)
    assert info.value.error.key_not_in_region.key == start
    assert info.value.error.key_not_in_region.region_id == 5


def test_scan_inverted_is_empty_as_tikv() -> None:
    assert is_empty_range(*clamp_scan(b"c", b"bb", False, MIDDLE))
    assert is_empty_range(*clamp_scan(b"bb", b"c", True, MIDDLE))
    assert not is_empty_range(*clamp_scan(b"x", b"", False, LAST))


def test_checksum_ranges() -> None:
    assert list(checksum_ranges([], MIDDLE)) == [(b"b", b"d")]
    ranges = [kvrpcpb_pb2.KeyRange(start_key=b"b", end_key=b"c"), kvrpcpb_pb2.KeyRange(start_key=b"c")]
    assert list(checksum_ranges(ranges, MIDDLE)) == [(b"b", b"c"), (b"c", b"d")]
    with pytest.raises(RegionError):
        list(checksum_ranges([kvrpcpb_pb2.KeyRange(start_key=b"a", end_key=b"c")], MIDDLE))
    with pytest.raises(StoreError):
        list(checksum_ranges([kvrpcpb_pb2.KeyRange(start_key=b"c", end_key=b"b")], MIDDLE))


def test_rewrite_key() -> None:
    rule = import_sstpb_pb2.RewriteRule(old_key_prefix=b"t1_", new_key_prefix=b"t22_")
    assert rewrite_key(b"t1_abc", rule) == b"t22_abc"
    assert rewrite_key(b"x", import_sstpb_pb2.RewriteRule()) == b"x"
    with pytest.raises(StoreError, match="old prefix"):
        rewrite_key(b"t2_abc", rule)


def meta(start: bytes, end: bytes, exclusive: bool = False) -> import_sstpb_pb2.SSTMeta:
    return import_sstpb_pb2.SSTMeta(range=import_sstpb_pb2.Range(start=start, end=end), end_key_exclusive=exclusive)


def test_download_keeps_the_keys_inside_the_range() -> None:
    assert not before_range(b"a", meta(b"a", b"b")) and not after_range(b"b", meta(b"a", b"b"))
    assert after_range(b"b", meta(b"a", b"b", exclusive=True))
    assert not after_range(b"zzz", meta(b"a", b""))
    assert before_range(b"0", meta(b"a", b""))


class FakeContext:
    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.aborted = (code, message)
        raise RuntimeError("aborted")


class Service:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    @rpc(kvrpcpb_pb2.RawGetResponse)
    def get(self, request, context):  # noqa: ANN001, ANN201
        raise self.exc

    @rpc(kvrpcpb_pb2.RawScanResponse)
    def scan(self, request, context):  # noqa: ANN001, ANN201
        raise self.exc

    @rpc(import_sstpb_pb2.IngestResponse)
    def ingest(self, request, context):  # noqa: ANN001, ANN201
        raise self.exc

    @rpc(import_sstpb_pb2.DownloadResponse)
    def download(self, request, context):  # noqa: ANN001, ANN201
        raise self.exc

    @rpc(devclusterpb_pb2.AdminResponse)
    def admin(self, request, context):  # noqa: ANN001, ANN201
        raise self.exc

    @rpc(coprocessor_pb2.Response)
    def coprocessor(self, request, context):  # noqa: ANN001, ANN201
        raise self.exc


def test_errors_go_where_each_response_has_room() -> None:
    region_error = errorpb_pb2.Error(message="nope", region_not_found=errorpb_pb2.RegionNotFound(region_id=9))
    assert Service(StoreError("bad")).get(None, FakeContext()).error == "bad"
    assert Service(RegionError(region_error)).get(None, FakeContext()).region_error == region_error
    assert Service(RegionError(region_error)).scan(None, FakeContext()).region_error == region_error
    assert Service(RegionError(region_error)).ingest(None, FakeContext()).error == region_error
    assert Service(StoreError("bad")).ingest(None, FakeContext()).error.message == "bad"
    download = Service(RegionError(region_error)).download(None, FakeContext())
    assert download.error.store_error == region_error
    assert Service(ValueError("bug")).admin(None, FakeContext()).error == "internal error: bug"
    busy = Service(PDError("down")).get(None, FakeContext()).region_error
    assert busy.HasField("server_is_busy") and "down" in busy.message
    assert Service(StoreError("bad")).coprocessor(None, FakeContext()).other_error == "bad"
    assert Service(RegionError(region_error)).coprocessor(None, FakeContext()).region_error == region_error


def test_errors_without_room_abort() -> None:
    context = FakeContext()
    with pytest.raises(RuntimeError, match="aborted"):
        Service(InvalidArgument("bad ts")).scan(None, context)
    assert context.aborted == (grpc.StatusCode.INVALID_ARGUMENT, "bad ts")


def test_chunks() -> None:
    entries = [Modify("write" if i % 3 else "default", b"k%d" % i, b"v" * 100 if i % 2 else None)
               for i in range(100)]
    parts = list(chunks(entries, limit=1000))
    assert len(parts) == 5 and all(parts)  # ~5,300 bytes in chunks of >= 1,000
    flat = [Modify(e.cf or "default", e.key, None if e.delete else e.value) for part in parts for e in part]
    assert flat == entries
    assert list(chunks([], first=True)) == [[]]  # room for range deletions


BASE = ["--pd", "127.0.0.1:2379", "--data-dir", "/tmp/x", "--host", "127.0.0.1", "--port", "20160"]


def test_config_defaults() -> None:
    config = parse_args(BASE)
    assert (config.gc_interval, config.address, config.log_file) == (30.0, "127.0.0.1:20160", None)
    assert parse_args([*BASE[:1], "http://h:1", *BASE[2:]]).pd == "h:1"


@pytest.mark.parametrize("change", [("--pd", "nohost"), ("--pd", "h:0"), ("--port", "0"), ("--port", "x"),
                                    ("--gc-interval", "0"), ("--host", "")])
def test_config_rejects(change: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = list(BASE)
    if change[0] in argv:
        argv[argv.index(change[0]) + 1] = change[1]
    else:
        argv += list(change)
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("br_devcluster.store: error: ") and err.count("\n") == 1
