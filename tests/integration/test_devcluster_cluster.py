"""Region errors, bad input, restarts: what a devcluster's PD and stores answer over gRPC."""
from __future__ import annotations

import grpc
import pytest

from br_common.grpc_util import channel_options
from br_devcluster.snapshot_kv import READ_TS_METADATA
from br_common.kvproto import (brpb_pb2, brpb_pb2_grpc, kvrpcpb_pb2, pdpb_pb2, pdpb_pb2_grpc, tikvpb_pb2_grpc)
from br_common.pd_client import RegionInfo
from br_common.tikv_client import RawKVClient, RawKVError
from br_devcluster.admin import DevAdmin

pytestmark = pytest.mark.integration


def _stub(address: str) -> tikvpb_pb2_grpc.TikvStub:
    return tikvpb_pb2_grpc.TikvStub(grpc.insecure_channel(address, options=channel_options()))


def _ctx(info: RegionInfo, cluster_id: int) -> kvrpcpb_pb2.Context:
    return kvrpcpb_pb2.Context(region_id=info.id, region_epoch=info.region.region_epoch, peer=info.leader,
                               cluster_id=cluster_id)


@pytest.fixture
def two_replicas(devcluster_factory):
    """2 stores, every region on both (so leaders can move), 2 regions split at 0x8000."""
    return devcluster_factory(stores=2, replicas=2, regions=2)


def test_region_errors_as_specified(two_replicas):
    dc = two_replicas
    addresses = dc.store_addresses()
    old = dc.pd.region(b"\x20")
    leader, other = old.leader_store_id, next(s for s in addresses if s != old.leader_store_id)
    get = kvrpcpb_pb2.RawGetRequest(context=_ctx(old, dc.cluster_id), key=b"\x20")
    assert not _stub(addresses[leader]).RawGet(get).HasField("region_error")

    # NotLeader naming the new leader after a transfer
    DevAdmin.of(dc.pd).transfer_leader(old.id, other)
    answer = _stub(addresses[leader]).RawGet(get)
    assert answer.region_error.HasField("not_leader")
    assert answer.region_error.not_leader.leader.store_id == other
    assert answer.region_error.not_leader.region_id == old.id

    # EpochNotMatch after a split, carrying the current region(s)
    moved = dc.pd.region(b"\x20")
    DevAdmin.of(dc.pd).split_region(b"\x10")
    stale = kvrpcpb_pb2.RawGetRequest(context=_ctx(moved, dc.cluster_id), key=b"\x20")
    answer = _stub(addresses[other]).RawGet(stale)
    assert answer.region_error.HasField("epoch_not_match")
    current = answer.region_error.epoch_not_match.current_regions
    assert current and all(r.region_epoch.version > moved.region.region_epoch.version for r in current)

    # KeyNotInRegion: a right context, a key of the other region
    now = dc.pd.region(b"\x20")
    outside = kvrpcpb_pb2.RawGetRequest(context=_ctx(now, dc.cluster_id), key=b"\xf0")
    answer = _stub(addresses[now.leader_store_id]).RawGet(outside)
    assert answer.region_error.HasField("key_not_in_region")
    assert answer.region_error.key_not_in_region.key == b"\xf0"
    assert answer.region_error.key_not_in_region.region_id == now.id

    # RegionNotFound
    ctx = _ctx(now, dc.cluster_id)
    ctx.region_id = 987_654_321
    answer = _stub(addresses[now.leader_store_id]).RawGet(kvrpcpb_pb2.RawGetRequest(context=ctx, key=b"\x20"))
    assert answer.region_error.region_not_found.region_id == 987_654_321

    # the client gets through all of that by re-resolving through PD
    dc.kv.batch_put([(b"\x05", b"a"), (b"\x20", b"b"), (b"\xf0", b"c")])
    assert [dc.kv.get(k) for k in (b"\x05", b"\x20", b"\xf0")] == [b"a", b"b", b"c"]


def test_client_follows_leader_moves_with_a_stale_cache(two_replicas):
    dc = two_replicas
    pairs = [(bytes([i]) + b"k", b"v%d" % i) for i in range(0, 256, 8)]
    dc.kv.batch_put(pairs)
    before = dc.kv.checksum()
    for info in list(dc.pd.scan_regions()):
        other = next(p.store_id for p in info.region.peers if p.store_id != info.leader_store_id)
        DevAdmin.of(dc.pd).transfer_leader(info.id, other)
    DevAdmin.of(dc.pd).split_region(b"\x33")
    assert dc.kv.checksum() == before  # cached leaders and epochs are all stale now
    assert dc.kv.scan(limit=1000) == sorted(pairs)


def _refused(call) -> str:
    """The error a request got, as a gRPC status (not UNAVAILABLE: the server must not crash) or in
    the response's error field; fails the test when the request was accepted."""
    try:
        answer = call()
    except grpc.RpcError as exc:
        assert exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION), exc
        return exc.details()
    assert answer.error, f"accepted: {answer}"
    return str(answer.error)


def test_bad_input_is_an_error_and_servers_keep_answering(devcluster):
    dc = devcluster
    info = dc.pd.region(b"")
    ctx = _ctx(info, dc.cluster_id)
    store = _stub(dc.store_addresses()[info.leader_store_id])
    pd = pdpb_pb2_grpc.PDStub(grpc.insecure_channel(dc.pd_address))

    # PD: an unknown cluster id is refused in the response header (or with a gRPC status)
    wrong = pdpb_pb2.RequestHeader(cluster_id=dc.cluster_id + 1)
    try:
        answer = pd.GetRegion(pdpb_pb2.GetRegionRequest(header=wrong, region_key=b"a"), timeout=5)
        assert answer.header.error.type != pdpb_pb2.OK and answer.header.error.message
    except grpc.RpcError as exc:
        assert exc.code() != grpc.StatusCode.UNAVAILABLE

    # stores: empty key, inverted ranges, a malformed read ts
    assert "empty" in _refused(lambda: store.RawPut(kvrpcpb_pb2.RawPutRequest(context=ctx, key=b"", value=b"v")))
    inverted = [kvrpcpb_pb2.KeyRange(start_key=b"\x05", end_key=b"\x01")]
    assert _refused(lambda: store.RawChecksum(kvrpcpb_pb2.RawChecksumRequest(context=ctx, ranges=inverted)))
    # as TiKV: an inverted scan range is empty (the iterator's upper bound is below its seek key)
    inverted_scan = store.RawScan(kvrpcpb_pb2.RawScanRequest(context=ctx, start_key=b"\x05", end_key=b"\x01", limit=5))
    assert not inverted_scan.kvs and not inverted_scan.HasField("region_error")
    bad_ts = ((READ_TS_METADATA, "yesterday"),)
    assert READ_TS_METADATA in _refused(
        lambda: store.RawGet(kvrpcpb_pb2.RawGetRequest(context=ctx, key=b"\x01"), metadata=bad_ts))
    backup = brpb_pb2_grpc.BackupStub(grpc.insecure_channel(dc.store_addresses()[info.leader_store_id]))
    request = brpb_pb2.BackupRequest(cluster_id=dc.cluster_id + 1, end_version=dc.pd.tso(), is_raw_kv=True)
    answers = list(backup.backup(request, timeout=10))
    assert answers and answers[0].error.HasField("cluster_id_error")
    with pytest.raises(ValueError, match="end"):
        dc.kv.scan(b"\x05", b"\x01")

    # ...and everything still works
    dc.kv.put(b"\x01", b"still alive")
    assert dc.kv.get(b"\x01") == b"still alive"
    assert dc.pd.tso() > 0


def test_restarted_pd_keeps_tso_increasing(devcluster_factory):
    dc = devcluster_factory(stores=1, regions=2)
    before = dc.pd.tso()
    dc.kv.put(b"k", b"v")
    for hard in (False, True):  # a clean stop, then a crash
        dc.kill_pd(hard=hard)
        dc.restart_pd()
        after = dc.pd.tso()
        assert after > before
        before = after
    assert dc.kv.get(b"k") == b"v"
    dc.kv.put(b"k", b"v2")  # stores reach the restarted PD for commit timestamps
    assert dc.kv.get(b"k") == b"v2"


def test_store_crash_and_restart_keeps_data(devcluster_factory):
    dc = devcluster_factory(stores=2, replicas=1, regions=4)
    pairs = [(bytes([i]) + b"s", b"v%d" % i) for i in range(0, 256, 4)]
    dc.kv.batch_put(pairs)
    before = dc.kv.checksum()
    victim = dc.pd.region(b"\x00").leader_store_id
    dc.kill_store(victim)
    with pytest.raises(RawKVError):
        RawKVClient(dc.pd, max_attempts=2, backoff_base=0.01).get(b"\x00s")
    dc.restart_store(victim)
    assert dc.kv.checksum() == before
