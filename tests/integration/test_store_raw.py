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
    assert "TTL" in stub.RawPut(kvrpcpb_pb2.RawPutRequest(context=ctx, key=b"k", value=b"v", ttl=5)).error
    with pytest.raises(grpc.RpcError) as info:
        stub.RawGet(kvrpcpb_pb2.RawGetRequest(context=ctx, key=b"k"), metadata=[(READ_TS_METADATA, "soon")])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        stub.RawGet(kvrpcpb_pb2.RawGetRequest(context=ctx, key=b"k", cf="write"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "column family" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.RawScan(kvrpcpb_pb2.RawScanRequest(context=ctx, start_key=b"k2", end_key=b"k1", limit=5))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert cluster.get(b"k") is None  # still serving
