"""Raw KV against real PD + store processes: put/get/scan/delete, reads at a ts, checksums, bad input."""
from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from br_common.checksum import Checksum
from br_devcluster.snapshot_kv import READ_TS_METADATA
from br_common.kvproto import kvrpcpb_pb2
from tests.integration._store_cluster import Cluster, context_of, read_ts, running_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("raw"), stores=2, regions=2) as running:
        yield running


def test_put_get_delete(cluster: Cluster) -> None:
    for key in [b"a", b"a\x00", b"\x00", b"\xff\xff", b"\x80\x00"]:
        cluster.put(key, b"value of " + key)
    assert cluster.get(b"a\x00") == b"value of a\x00"
    assert cluster.get(b"\xff\xff") == b"value of \xff\xff"
    cluster.put(b"a", b"")
    assert cluster.get(b"a") == b""  # an empty value is a value
    cluster.delete(b"a")
    assert cluster.get(b"a") is None
    assert cluster.get(b"never written") is None


def test_raw_data_is_unversioned_so_a_read_ts_reads_the_current_data(cluster: Cluster) -> None:
    """API V1 raw KV keeps no versions (as TiKV's): the read-ts header is validated, then moot."""
    cluster.put(b"ts-key", b"one")
    t1 = cluster.pd.tso()
    cluster.delete(b"ts-key")
    t2 = cluster.pd.tso()
    assert [cluster.get(b"ts-key", ts) for ts in (t1, t2, None)] == [None, None, None]
    cluster.put(b"ts-key", b"three")
    assert [cluster.get(b"ts-key", ts) for ts in (t1, t2, None)] == [b"three"] * 3


def scan(cluster: Cluster, start: bytes, end: bytes = b"", limit: int = 100, key_only: bool = False,
         reverse: bool = False, ts: int | None = None) -> list[tuple[bytes, bytes]]:
    stub, ctx, _ = cluster.route(start)
    request = kvrpcpb_pb2.RawScanRequest(context=ctx, start_key=start, end_key=end, limit=limit, key_only=key_only,
                                         reverse=reverse)
    response = stub.RawScan(request, metadata=read_ts(ts))
    assert not response.HasField("region_error"), response.region_error
    return [(kv.key, kv.value) for kv in response.kvs]


def test_scan(cluster: Cluster) -> None:
    keys = [b"s%02d" % i for i in range(20)]
    stub, ctx, _ = cluster.route(b"s")
    pairs = [kvrpcpb_pb2.KvPair(key=k, value=k.upper()) for k in keys]
    response = stub.RawBatchPut(kvrpcpb_pb2.RawBatchPutRequest(context=ctx, pairs=pairs))
    assert not response.error and not response.HasField("region_error")
    before_delete = cluster.pd.tso()
    cluster.delete(b"s05")
    assert scan(cluster, b"s", b"s10") == [(k, k.upper()) for k in keys[:10] if k != b"s05"]
    assert scan(cluster, b"s", b"s10", ts=before_delete) == scan(cluster, b"s", b"s10")  # unversioned
    assert scan(cluster, b"s03", limit=3, key_only=True) == [(b"s03", b""), (b"s04", b""), (b"s06", b"")]
    assert scan(cluster, b"s03", b"s", limit=2, reverse=True) == [(b"s02", b"S02"), (b"s01", b"S01")]
    assert scan(cluster, b"s", limit=0) == []


def test_checksum_matches_the_data(cluster: Cluster) -> None:
    info = cluster.pd.region(b"c")
    stub = cluster.stub(info.leader_store_id)
    ranges = [kvrpcpb_pb2.KeyRange(start_key=b"c", end_key=b"d")]
    for i in range(50):
        cluster.put(b"c%03d" % i, b"x" * i)
    expected = Checksum().add_pairs((b"c%03d" % i, b"x" * i) for i in range(50))
    response = stub.RawChecksum(kvrpcpb_pb2.RawChecksumRequest(context=context_of(info), ranges=ranges))
    assert (response.checksum, response.total_kvs, response.total_bytes) == (
        expected.crc64xor, expected.total_kvs, expected.total_bytes)


def test_checksums_over_regions_add_up(cluster: Cluster) -> None:
    cluster.put(b"\xf0z", b"in the second region")
    crc, kvs, _ = cluster.checksum()
    everything = []
    for info in cluster.pd.scan_regions():
        everything += scan(cluster, info.region.start_key, limit=100_000)
    assert (crc, kvs) == ((c := Checksum().add_pairs(everything)).crc64xor, c.total_kvs)


def test_bad_input_is_an_error_not_a_crash(cluster: Cluster) -> None:
    stub, ctx, _ = cluster.route(b"k")
    assert "empty" in stub.RawPut(kvrpcpb_pb2.RawPutRequest(context=ctx, key=b"", value=b"v")).error
    with_ttl = kvrpcpb_pb2.RawPutRequest(context=ctx, key=b"k", value=b"v", ttl=5)
    assert stub.RawPut(with_ttl).error == "ttl is not enabled, but get put request with ttl"  # TiKV's, API V1
    with pytest.raises(grpc.RpcError) as info:
        stub.RawGet(kvrpcpb_pb2.RawGetRequest(context=ctx, key=b"k"), metadata=[(READ_TS_METADATA, "soon")])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # as TiKV: a bad CF is reported in the response, an inverted scan range is empty
    assert stub.RawGet(kvrpcpb_pb2.RawGetRequest(context=ctx, key=b"k", cf="nope")).error == "invalid cf name: nope"
    assert "default" in stub.RawGet(kvrpcpb_pb2.RawGetRequest(context=ctx, key=b"k", cf="write")).error
    assert scan(cluster, b"k2", b"k1") == []
    assert cluster.get(b"k") is None  # still serving


def test_api_version_other_than_v1_is_refused_as_tikv(cluster: Cluster) -> None:
    stub, ctx, _ = cluster.route(b"k")
    ctx.api_version = kvrpcpb_pb2.V2
    put = stub.RawPut(kvrpcpb_pb2.RawPutRequest(context=ctx, key=b"k", value=b"v"))
    assert put.error == ("Api version in request does not match with TiKV storage, cmd: raw_put, storage: V1, "
                         "request: V2")
    scanned = stub.RawScan(kvrpcpb_pb2.RawScanRequest(context=ctx, start_key=b"k", limit=5))
    assert [kv.error.abort for kv in scanned.kvs] == [
        "Error(ApiVersionNotMatched { cmd: raw_scan, storage_api_version: V1, req_api_version: V2 })"]
    assert cluster.get(b"k") is None


def test_batch_get_delete_range_batch_delete(cluster: Cluster) -> None:
    keys = [b"b%02d" % i for i in range(10)]
    stub, ctx, _ = cluster.route(b"b")
    assert not stub.RawBatchPut(kvrpcpb_pb2.RawBatchPutRequest(
        context=ctx, pairs=[kvrpcpb_pb2.KvPair(key=k, value=k * 2) for k in keys])).error
    got = stub.RawBatchGet(kvrpcpb_pb2.RawBatchGetRequest(context=ctx, keys=[b"b03", b"b-missing", b"b01"]))
    assert [(kv.key, kv.value) for kv in got.pairs] == [(b"b03", b"b03b03"), (b"b01", b"b01b01")]
    assert not stub.RawDeleteRange(kvrpcpb_pb2.RawDeleteRangeRequest(context=ctx, start_key=b"b02",
                                                                      end_key=b"b05")).error
    assert not stub.RawBatchDelete(kvrpcpb_pb2.RawBatchDeleteRequest(context=ctx, keys=[b"b07", b"b08"])).error
    assert [k for k, _ in scan(cluster, b"b", b"c")] == [b"b00", b"b01", b"b05", b"b06", b"b09"]
    inverted = stub.RawDeleteRange(kvrpcpb_pb2.RawDeleteRangeRequest(context=ctx, start_key=b"b5", end_key=b"b1"))
    assert "invalid delete range" in inverted.error


def test_batch_scan_cas_and_ttl(cluster: Cluster) -> None:
    stub, ctx, _ = cluster.route(b"m")
    cluster.put(b"m1", b"one")
    cluster.put(b"m2", b"two")
    cluster.put(b"n1", b"three")
    ranges = [kvrpcpb_pb2.KeyRange(start_key=b"m"), kvrpcpb_pb2.KeyRange(start_key=b"n", end_key=b"o")]
    batch = stub.RawBatchScan(kvrpcpb_pb2.RawBatchScanRequest(context=ctx, ranges=ranges, each_limit=1))
    assert [kv.key for kv in batch.kvs] == [b"m1", b"n1"]
    cas = stub.RawCompareAndSwap(kvrpcpb_pb2.RawCASRequest(context=ctx, key=b"m1", value=b"uno",
                                                            previous_value=b"wrong"))
    assert (cas.succeed, cas.previous_value) == (False, b"one")
    cas = stub.RawCompareAndSwap(kvrpcpb_pb2.RawCASRequest(context=ctx, key=b"m1", value=b"uno",
                                                            previous_value=b"one"))
    assert cas.succeed and cluster.get(b"m1") == b"uno"
    cas = stub.RawCompareAndSwap(kvrpcpb_pb2.RawCASRequest(context=ctx, key=b"m9", value=b"new",
                                                            previous_not_exist=True))
    assert cas.succeed and cas.previous_not_exist and cluster.get(b"m9") == b"new"
    ttl = stub.RawGetKeyTTL(kvrpcpb_pb2.RawGetKeyTTLRequest(context=ctx, key=b"m9"))
    assert (ttl.ttl, ttl.not_found, ttl.error) == (0, False, "")
    assert stub.RawGetKeyTTL(kvrpcpb_pb2.RawGetKeyTTLRequest(context=ctx, key=b"m8")).not_found


def test_scans_are_clamped_to_the_region_both_ways(cluster: Cluster) -> None:
    """As TiKV: an end beyond the region is cut at the region's end (forward) or start (reverse),
    so a client sending its own end key to every region gets each region's share."""
    first, second = list(cluster.pd.scan_regions())[:2]
    boundary = first.region.end_key
    just_below = (int.from_bytes(boundary[:2], "big") - 1).to_bytes(2, "big")
    below, above = [just_below + b"-c%d" % i for i in range(3)], [boundary + b"-c%d" % i for i in range(3)]
    for key in below + above:
        cluster.put(key, b"v")
    forward = cluster.stub(first.leader_store_id).RawScan(kvrpcpb_pb2.RawScanRequest(
        context=context_of(first), start_key=below[0], end_key=above[-1] + b"\xff", limit=100))
    assert [kv.key for kv in forward.kvs if b"-c" in kv.key] == below and not forward.HasField("region_error")
    assert all(kv.key < boundary for kv in forward.kvs)
    reverse = cluster.stub(second.leader_store_id).RawScan(kvrpcpb_pb2.RawScanRequest(
        context=context_of(second), start_key=above[-1] + b"\xff", end_key=below[0], limit=100, reverse=True))
    assert [kv.key for kv in reverse.kvs if b"-c" in kv.key] == above[::-1] and not reverse.HasField("region_error")
    assert all(kv.key >= boundary for kv in reverse.kvs)
    outside = cluster.stub(second.leader_store_id).RawScan(kvrpcpb_pb2.RawScanRequest(
        context=context_of(second), start_key=below[0], limit=100))
    assert outside.region_error.key_not_in_region.key == below[0]  # the seek key must be in the region
