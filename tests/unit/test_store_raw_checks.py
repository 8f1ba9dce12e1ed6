"""The raw KV rules a store applies as TiKV does, without a process: API version, column family,
TTL, batch scan and delete ranges, where storage errors land in each response, and the region
check (RegionNotFound without a peer, EpochNotMatch on the version only)."""
from __future__ import annotations

import pytest

from br_common.kvproto import kvrpcpb_pb2, metapb_pb2
from br_common.pd_client import RegionInfo
from br_devcluster.store.errors import RegionError, StorageError, rpc
from br_devcluster.store.raw_checks import (
    batch_scan_ranges,
    check_api_version,
    check_cf,
    check_delete_range,
    check_no_ttl,
    rust_debug,
)
from br_devcluster.store.regions import RegionChecker
from tests.unit.test_store_rules import FakeContext


def test_api_version_v1_only() -> None:
    check_api_version(kvrpcpb_pb2.Context(api_version=kvrpcpb_pb2.V1), "raw_get")
    with pytest.raises(StorageError) as info:
        check_api_version(kvrpcpb_pb2.Context(api_version=kvrpcpb_pb2.V1TTL), "raw_scan")
    assert str(info.value) == ("Api version in request does not match with TiKV storage, cmd: raw_scan, "
                               "storage: V1, request: V1ttl")
    assert info.value.debug == ("Error(ApiVersionNotMatched { cmd: raw_scan, storage_api_version: V1, "
                                "req_api_version: V1ttl })")


@pytest.mark.parametrize("cf", ["", "default"])
def test_raw_data_in_default(cf: str) -> None:
    check_cf(cf)


def test_bad_cf_as_tikv_and_unsupported_data_cfs() -> None:
    with pytest.raises(StorageError) as info:
        check_cf("nope")
    assert (str(info.value), info.value.debug) == ("invalid cf name: nope", 'Error(InvalidCf("nope"))')
    with pytest.raises(StorageError, match="only default"):
        check_cf("write")


def test_ttl_refused_in_api_v1() -> None:
    check_no_ttl([0, 0])
    with pytest.raises(StorageError, match="ttl is not enabled"):
        check_no_ttl([0, 7])


def test_delete_range_must_not_be_inverted() -> None:
    check_delete_range(b"a", b"b")
    check_delete_range(b"a", b"")
    with pytest.raises(StorageError, match="invalid delete range"):
        check_delete_range(b"b", b"b")


def key_range(start: bytes, end: bytes = b"") -> kvrpcpb_pb2.KeyRange:
    return kvrpcpb_pb2.KeyRange(start_key=start, end_key=end)


def test_batch_scan_ranges_end_where_the_next_starts() -> None:
    assert batch_scan_ranges([key_range(b"a"), key_range(b"c", b"d"), key_range(b"x")], reverse=False) == [
        (b"a", b"c"), (b"c", b"d"), (b"x", b"")]
    assert batch_scan_ranges([key_range(b"z", b"x"), key_range(b"d")], reverse=True) == [(b"z", b"x"), (b"d", b"")]
    with pytest.raises(StorageError, match="Invalid KeyRanges"):
        batch_scan_ranges([key_range(b"c", b"a")], reverse=False)
    with pytest.raises(StorageError, match="Invalid KeyRanges"):
        batch_scan_ranges([key_range(b"a", b"c")], reverse=True)


def test_rust_debug_quotes_like_rust() -> None:
    assert rust_debug('a"b\\c') == '"a\\"b\\\\c"'


class Service:
    @rpc(kvrpcpb_pb2.RawScanResponse)
    def scan(self, request, context):  # noqa: ANN001, ANN201
        raise StorageError("invalid cf name: x", 'Error(InvalidCf("x"))')

    @rpc(kvrpcpb_pb2.RawBatchGetResponse)
    def batch_get(self, request, context):  # noqa: ANN001, ANN201
        raise StorageError("invalid cf name: x", 'Error(InvalidCf("x"))')

    @rpc(kvrpcpb_pb2.RawDeleteRangeResponse)
    def delete_range(self, request, context):  # noqa: ANN001, ANN201
        raise StorageError("invalid cf name: x", 'Error(InvalidCf("x"))')


def test_storage_errors_land_where_tikv_puts_them() -> None:
    """Display in an error string; Debug in one KvPair's KeyError.abort (TiKV's extract_kv_pairs)."""
    assert Service().delete_range(None, FakeContext()).error == "invalid cf name: x"
    for response in (Service().scan(None, FakeContext()), Service().batch_get(None, FakeContext())):
        pairs = response.kvs if hasattr(response, "kvs") else response.pairs
        assert [(p.key, p.error.abort) for p in pairs] == [(b"", 'Error(InvalidCf("x"))')]


REGION = metapb_pb2.Region(id=5, start_key=b"b", end_key=b"d",
                           region_epoch=metapb_pb2.RegionEpoch(conf_ver=3, version=7),
                           peers=[metapb_pb2.Peer(id=50, store_id=1), metapb_pb2.Peer(id=51, store_id=2)])


RIGHT = metapb_pb2.Region(id=6, start_key=b"d", end_key=b"", region_epoch=metapb_pb2.RegionEpoch(conf_ver=3, version=7))


class FakePD:
    def region_by_id(self, region_id: int) -> RegionInfo | None:
        return RegionInfo(region=REGION, leader=REGION.peers[0]) if region_id == REGION.id else None

    def region(self, key: bytes) -> RegionInfo | None:
        return RegionInfo(region=RIGHT, leader=None) if key >= RIGHT.start_key else None


def context(conf_ver: int, version: int) -> kvrpcpb_pb2.Context:
    return kvrpcpb_pb2.Context(region_id=5, region_epoch=metapb_pb2.RegionEpoch(conf_ver=conf_ver, version=version))


def test_epoch_check_compares_the_version_only() -> None:
    checker = RegionChecker(FakePD(), lambda: 1)
    assert checker.leader_region(context(conf_ver=1, version=7)).id == 5  # conf change only: served
    with pytest.raises(RegionError) as info:
        checker.leader_region(context(conf_ver=3, version=6))
    assert list(info.value.error.epoch_not_match.current_regions) == [REGION, RIGHT]  # and its right sibling


def test_a_store_without_a_peer_does_not_know_the_region() -> None:
    with pytest.raises(RegionError) as info:
        RegionChecker(FakePD(), lambda: 3).leader_region(context(3, 7))
    assert info.value.error.region_not_found.region_id == 5
    with pytest.raises(RegionError) as info:
        RegionChecker(FakePD(), lambda: 2).leader_region(context(3, 7))  # a follower peer
    assert info.value.error.not_leader.leader.store_id == 1
