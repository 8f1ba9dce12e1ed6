"""Region errors, replication and leader transfer on a 3-store cluster with 3 replicas,
and peer migration (PD scatter -> DevStore.MigratePeer) on a 2-store cluster."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from br_common.kvproto import kvrpcpb_pb2, metapb_pb2
from br_devcluster.admin import DevAdmin
from tests.integration._store_cluster import Cluster, context_of, running_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("regions"), stores=3, regions=2, replicas=3) as running:
        yield running


def raw_get(cluster: Cluster, store_id: int, ctx: kvrpcpb_pb2.Context, key: bytes) -> kvrpcpb_pb2.RawGetResponse:
    return cluster.stub(store_id).RawGet(kvrpcpb_pb2.RawGetRequest(context=ctx, key=key))


def other_store(info, exclude: int) -> int:  # noqa: ANN001
    return next(p.store_id for p in info.region.peers if p.store_id != exclude)


def test_not_leader_after_transfer_and_value_on_new_leader(cluster: Cluster) -> None:
    cluster.put(b"\x10moving", b"before transfer")
    info = cluster.pd.region(b"\x10moving")
    old, new = info.leader_store_id, other_store(info, info.leader_store_id)
    DevAdmin.of(cluster.pd).transfer_leader(info.id, new)
    response = raw_get(cluster, old, context_of(info), b"\x10moving")
    assert response.region_error.not_leader.region_id == info.id
    assert response.region_error.not_leader.leader.store_id == new
    assert cluster.get(b"\x10moving") == b"before transfer"  # served by the new leader
    cluster.put(b"\x10moving", b"after transfer")
    third = next(p.store_id for p in info.region.peers if p.store_id not in (old, new))
    DevAdmin.of(cluster.pd).transfer_leader(info.id, third)  # the third peer got both writes by replication
    assert cluster.pd.region(b"\x10moving").leader_store_id == third
    assert cluster.get(b"\x10moving") == b"after transfer"


def test_every_replica_gets_writes(cluster: Cluster) -> None:
    keys = [b"\x20r%d" % i for i in range(10)]
    for key in keys:
        cluster.put(key, key)
    cluster.delete(keys[0])
    info = cluster.pd.region(keys[0])
    for peer in info.region.peers:
        DevAdmin.of(cluster.pd).transfer_leader(info.id, peer.store_id)
        assert [cluster.get(k) for k in keys] == [None, *keys[1:]]


def test_epoch_not_match_after_split(cluster: Cluster) -> None:
    before = cluster.pd.region(b"\x30b")
    cluster.put(b"\x30b", b"v")
    DevAdmin.of(cluster.pd).split_region(b"\x30a")
    response = raw_get(cluster, before.leader_store_id, context_of(before), b"\x30b")
    current = cluster.pd.region_by_id(before.id)  # the left half keeps the id
    assert current.region.region_epoch.version == before.region.region_epoch.version + 1
    right = cluster.pd.region(b"\x30a")  # the new half, which TiKV adds as the sibling
    assert list(response.region_error.epoch_not_match.current_regions) == [current.region, right.region]
    assert cluster.get(b"\x30b") == b"v"  # data stays where it was


def test_key_not_in_region(cluster: Cluster) -> None:
    info = cluster.pd.region(b"\x01")
    outside = info.region.end_key + b"x"
    response = raw_get(cluster, info.leader_store_id, context_of(info), outside)
    error = response.region_error.key_not_in_region
    assert (error.key, error.region_id, error.start_key, error.end_key) == (
        outside, info.id, info.region.start_key, info.region.end_key)
    put = cluster.stub(info.leader_store_id).RawPut(
        kvrpcpb_pb2.RawPutRequest(context=context_of(info), key=outside, value=b"v"))
    assert put.region_error.HasField("key_not_in_region")
    assert cluster.get(outside) is None


def test_region_not_found(cluster: Cluster) -> None:
    ctx = kvrpcpb_pb2.Context(region_id=987654, region_epoch=metapb_pb2.RegionEpoch(conf_ver=1, version=1))
    store_id = cluster.pd.stores()[0].id
    assert raw_get(cluster, store_id, ctx, b"k").region_error.region_not_found.region_id == 987654


def test_scatter_moves_data_with_the_peers(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_cluster(tmp_path_factory.mktemp("scatter"), stores=2, regions=1, replicas=1) as small:
        keys = [bytes([i]) + b"key" for i in range(0, 256, 8)]
        for key in keys:
            small.put(key, key * 2)
        small.delete(keys[1])
        before = small.checksum()
        small.pd.split_regions([b"\x40", b"\x80", b"\xc0"])
        region_ids = [info.id for info in small.pd.scan_regions()]
        assert small.pd.scatter_regions(region_ids) == []
        leaders = {info.leader_store_id for info in small.pd.scan_regions()}
        assert len(leaders) == 2  # some regions moved to the second store
        assert small.checksum() == before
        assert [small.get(k) for k in keys] == [keys[0] * 2, None, *[k * 2 for k in keys[2:]]]
