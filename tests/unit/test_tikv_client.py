"""RawKVClient routing and retries against in-process fake stores and a fake PD.

The fakes share one "truth" (regions, leaders, epochs) that the tests change to simulate a
leader transfer or a split; the client only learns about it through region errors.
"""
from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest

from br_common.checksum import Checksum
from br_devcluster.snapshot_kv import READ_TS_METADATA
from br_common.kvproto import errorpb_pb2, kvrpcpb_pb2, metapb_pb2, tikvpb_pb2_grpc
from br_common.pd_client import RegionInfo
from br_common.tikv_client import RawKVClient, RawKVError, describe_region_error
from br_devcluster.snapshot_kv import SnapshotKV
from tests.doubles import FakePD


class Truth:
    """The cluster layout both the fake PD and the fake stores consult."""

    def __init__(self, splits: list[bytes], stores: int) -> None:
        self.lock = threading.Lock()
        self.addresses: dict[int, str] = {}
        bounds = [b""] + splits + [b""]
        self.regions = []
        for i in range(len(bounds) - 1):
            self.regions.append(metapb_pb2.Region(
                id=i + 1, start_key=bounds[i], end_key=bounds[i + 1],
                region_epoch=metapb_pb2.RegionEpoch(conf_ver=1, version=1),
                peers=[metapb_pb2.Peer(id=100 + i, store_id=s) for s in range(1, stores + 1)]))
        self.leaders = {r.id: (r.id - 1) % stores + 1 for r in self.regions}  # round robin
        self.busy = 0  # answer ServerIsBusy this many more times

    def info(self, region: metapb_pb2.Region) -> RegionInfo:
        leader = next(p for p in region.peers if p.store_id == self.leaders[region.id])
        return RegionInfo(region, leader)

    def by_key(self, key: bytes) -> metapb_pb2.Region:
        return next(r for r in self.regions if r.start_key <= key and (not r.end_key or key < r.end_key))

    def split(self, key: bytes) -> None:
        with self.lock:
            old = self.by_key(key)
            left, right = metapb_pb2.Region(), metapb_pb2.Region()
            left.CopyFrom(old)
            right.CopyFrom(old)
            left.end_key, right.start_key = key, key
            right.id = max(r.id for r in self.regions) + 1
            for r in (left, right):
                r.region_epoch.version += 1
            self.regions[self.regions.index(old):self.regions.index(old) + 1] = [left, right]
            self.leaders[right.id] = self.leaders[left.id]


class TruthPD(FakePD):
    """The shared FakePD over the Truth's current layout, counting region lookups."""

    def __init__(self, truth: Truth) -> None:
        super().__init__(cluster_id=42)
        self.truth = truth
        self.region_calls = 0

    @property
    def regions(self) -> list[RegionInfo]:  # type: ignore[override]
        return [self.truth.info(r) for r in self.truth.regions]

    @regions.setter
    def regions(self, _value: list[RegionInfo]) -> None:
        pass  # the Truth holds them

    def region(self, key: bytes) -> RegionInfo:
        self.region_calls += 1
        return self.truth.info(self.truth.by_key(key))

    def store(self, store_id: int) -> metapb_pb2.Store:
        return metapb_pb2.Store(id=store_id, address=self.truth.addresses[store_id])


class FakeStore(tikvpb_pb2_grpc.TikvServicer):
    def __init__(self, store_id: int, truth: Truth) -> None:
        self.id, self.truth = store_id, truth
        self.data: dict[bytes, bytes] = {}
        self.calls: list[tuple[str, int]] = []  # (method, region id)
        self.read_ts: list[str | None] = []

    def _check(self, ctx: kvrpcpb_pb2.Context, keys: list[bytes], method: str, grpc_ctx) -> errorpb_pb2.Error | None:
        self.read_ts.append(dict(grpc_ctx.invocation_metadata()).get(READ_TS_METADATA))
        self.calls.append((method, ctx.region_id))
        with self.truth.lock:
            if self.truth.busy:
                self.truth.busy -= 1
                return errorpb_pb2.Error(server_is_busy=errorpb_pb2.ServerIsBusy(reason="test"))
            region = next((r for r in self.truth.regions if r.id == ctx.region_id), None)
            if region is None:
                return errorpb_pb2.Error(region_not_found=errorpb_pb2.RegionNotFound(region_id=ctx.region_id))
            leader = self.truth.leaders[region.id]
            if leader != self.id:
                peer = next(p for p in region.peers if p.store_id == leader)
                return errorpb_pb2.Error(not_leader=errorpb_pb2.NotLeader(region_id=region.id, leader=peer))
            if ctx.region_epoch.version != region.region_epoch.version:
                return errorpb_pb2.Error(epoch_not_match=errorpb_pb2.EpochNotMatch(current_regions=[region]))
            for key in keys:
                if key < region.start_key or (region.end_key and key >= region.end_key):
                    return errorpb_pb2.Error(key_not_in_region=errorpb_pb2.KeyNotInRegion(key=key, region_id=region.id))
        return None

    def RawPut(self, request, context):
        err = self._check(request.context, [request.key], "RawPut", context)
        if err is None:
            self.data[request.key] = request.value
        return kvrpcpb_pb2.RawPutResponse(region_error=err)

    def RawBatchPut(self, request, context):
        err = self._check(request.context, [p.key for p in request.pairs], "RawBatchPut", context)
        if err is None:
            self.data.update((p.key, p.value) for p in request.pairs)
        return kvrpcpb_pb2.RawBatchPutResponse(region_error=err)

    def RawGet(self, request, context):
        err = self._check(request.context, [request.key], "RawGet", context)
        if err is not None:
            return kvrpcpb_pb2.RawGetResponse(region_error=err)
        value = self.data.get(request.key)
        return kvrpcpb_pb2.RawGetResponse(value=value or b"", not_found=value is None)

    def RawDelete(self, request, context):
        err = self._check(request.context, [request.key], "RawDelete", context)
        if err is None:
            self.data.pop(request.key, None)
        return kvrpcpb_pb2.RawDeleteResponse(region_error=err)

    def _range(self, start: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if k >= start and (not end or k < end))

    def RawScan(self, request, context):
        err = self._check(request.context, [request.start_key], "RawScan", context)
        if err is not None:
            return kvrpcpb_pb2.RawScanResponse(region_error=err)
        pairs = self._range(request.start_key, request.end_key)[:request.limit]
        return kvrpcpb_pb2.RawScanResponse(kvs=[kvrpcpb_pb2.KvPair(key=k, value=v) for k, v in pairs])

    def RawChecksum(self, request, context):
        rng = request.ranges[0]
        err = self._check(request.context, [rng.start_key], "RawChecksum", context)
        if err is not None:
            return kvrpcpb_pb2.RawChecksumResponse(region_error=err)
        c = Checksum().add_pairs(self._range(rng.start_key, rng.end_key))
        return kvrpcpb_pb2.RawChecksumResponse(checksum=c.crc64xor, total_kvs=c.total_kvs, total_bytes=c.total_bytes)


@pytest.fixture
def fake():
    truth = Truth([b"\x40", b"\x80", b"\xc0"], stores=2)
    servers, stores = [], {}
    for store_id in (1, 2):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        store = FakeStore(store_id, truth)
        tikvpb_pb2_grpc.add_TikvServicer_to_server(store, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        truth.addresses[store_id] = f"127.0.0.1:{port}"
        servers.append(server)
        stores[store_id] = store
    pd = TruthPD(truth)
    client = SnapshotKV(pd, timeout=5.0, max_attempts=5, backoff_base=0.001, backoff_cap=0.01)
    yield truth, pd, stores, client
    client.close()
    for server in servers:
        server.stop(None)


def _pairs(n: int = 64) -> list[tuple[bytes, bytes]]:
    return [(bytes([i * 4]) + b"k", b"v%d" % i) for i in range(n)]


def test_batch_put_one_rpc_per_region_and_data_lands_on_leaders(fake):
    truth, _, stores, client = fake
    client.batch_put(_pairs())
    batch_calls = [c for s in stores.values() for c in s.calls if c[0] == "RawBatchPut"]
    assert sorted(r for _, r in batch_calls) == [1, 2, 3, 4]
    for store in stores.values():  # each store holds exactly the keys of the regions it leads
        for key in store.data:
            assert truth.leaders[truth.by_key(key).id] == store.id
    assert sum(len(s.data) for s in stores.values()) == 64


def test_batch_put_splits_batches_by_bytes(fake):
    _, _, stores, client = fake
    client.batch_put(_pairs(), batch_bytes=20)
    assert len([c for s in stores.values() for c in s.calls if c[0] == "RawBatchPut"]) > 4


def test_get_put_delete_and_scan_across_regions(fake):
    _, _, _, client = fake
    client.batch_put(_pairs())
    assert client.get(b"\x04k") == b"v1"
    client.put(b"\x05", b"x")
    assert client.get(b"\x05") == b"x"
    client.delete(b"\x05")
    assert client.get(b"\x05") is None
    everything = client.scan(limit=1000)
    assert everything == sorted(_pairs())
    assert client.scan(b"\x3c", b"\x88", limit=1000) == [p for p in sorted(_pairs()) if b"\x3c" <= p[0] < b"\x88"]
    assert client.scan(limit=5) == sorted(_pairs())[:5]
    assert list(client.iter_scan(page=3)) == sorted(_pairs())  # pages inside a region too


def test_checksum_merges_regions(fake):
    _, _, _, client = fake
    client.batch_put(_pairs())
    assert client.checksum() == Checksum().add_pairs(_pairs())
    part = [p for p in _pairs() if b"\x30" <= p[0] < b"\x90"]
    assert client.checksum(b"\x30", b"\x90") == Checksum().add_pairs(part)


def test_read_ts_sent_as_metadata(fake):
    _, _, stores, client = fake
    client.get(b"\x01", ts=12345)
    client.checksum(ts=777)
    seen = {ts for s in stores.values() for ts in s.read_ts}
    assert {"12345", "777"} <= seen
    client.get(b"\x01")
    assert stores[1].read_ts[-1] is None


def test_not_leader_after_transfer_is_followed(fake):
    truth, _, stores, client = fake
    client.put(b"\x01", b"a")
    truth.leaders[1] = 2  # PD moved the leader; the client's cache still says store 1
    client.put(b"\x02", b"b")
    assert b"\x02" in stores[2].data
    assert client.get(b"\x02") == b"b"


def test_epoch_not_match_after_split_is_reresolved(fake):
    truth, pd, stores, client = fake
    client.batch_put(_pairs())
    truth.split(b"\x20")
    before = pd.region_calls
    assert client.checksum() == Checksum().add_pairs(_pairs())
    client.batch_put([(b"\x21", b"new"), (b"\x01", b"new")])
    assert client.get(b"\x21") == b"new"
    assert pd.region_calls > before


def test_server_busy_retried_then_gives_up_clearly(fake):
    truth, _, _, client = fake
    truth.busy = 2
    client.put(b"\x01", b"a")  # two busy answers, then success
    truth.busy = 100
    with pytest.raises(RawKVError, match=r"gave up after 5 attempts.*ServerIsBusy"):
        client.put(b"\x01", b"a")


def test_bad_range_rejected(fake):
    _, _, _, client = fake
    with pytest.raises(ValueError, match="end"):
        client.checksum(b"\x90", b"\x10")
    with pytest.raises(ValueError, match="end"):
        client.scan(b"\x90", b"\x10")


def test_unreachable_store_gives_clear_error():
    truth = Truth([], stores=1)
    truth.addresses[1] = "127.0.0.1:1"
    client = RawKVClient(TruthPD(truth), timeout=2.0, max_attempts=2, backoff_base=0.001)
    with pytest.raises(RawKVError, match="gave up after 2 attempts.*store 1"):
        client.get(b"a")
    client.close()


def test_describe_region_error():
    err = errorpb_pb2.Error(not_leader=errorpb_pb2.NotLeader(region_id=3, leader=metapb_pb2.Peer(store_id=2)))
    assert describe_region_error(err) == "NotLeader(region 3, leader on store 2)"
    assert "RegionNotFound(region 9)" == describe_region_error(
        errorpb_pb2.Error(region_not_found=errorpb_pb2.RegionNotFound(region_id=9)))
