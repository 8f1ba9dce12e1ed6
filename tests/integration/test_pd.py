"""The devcluster PD as a real process: TSO and state across restarts, cluster-id checks, regions, GC.

Leader transfer and scatter run against an in-test DevStore double that behaves like a store
towards PD (calls back CommitPeerChange); the real stores are tested by the store's own suite.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from br_common.txn_codec import encode_bytes

from br_common import procs
from br_common.kvproto import devclusterpb_pb2, devclusterpb_pb2_grpc, metapb_pb2, pdpb_pb2, pdpb_pb2_grpc
from br_common.pd_client import PDClient, PDError
from br_devcluster.admin import DevAdmin

pytestmark = pytest.mark.integration


class PDProcess:
    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.args = args
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "PDProcess":
        self.port = procs.free_port()
        self.proc = procs.spawn([sys.executable, "-m", "br_devcluster.pd", "--data-dir", str(self.data_dir),
                                 "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                                self.data_dir.parent / f"{self.data_dir.name}.log")
        procs.wait_for_port("127.0.0.1", self.port, proc=self.proc)
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        procs.stop_pid(self.proc.pid)
        return self.proc.wait()

    def client(self) -> PDClient:
        return PDClient(self.address)

    def dev(self) -> devclusterpb_pb2_grpc.DevPDStub:
        return devclusterpb_pb2_grpc.DevPDStub(grpc.insecure_channel(self.address))


@pytest.fixture
def start_pd(tmp_path):
    started: list[PDProcess] = []

    def start(*args: str, name: str = "pd") -> PDProcess:
        pd = PDProcess(tmp_path / name, *args).start()
        started.append(pd)
        return pd
    yield start
    for pd in started:
        if pd.proc is not None:
            procs.stop_pid(pd.proc.pid)


def register(pd: PDProcess, cluster_id: int, addresses: list[str]) -> list[int]:
    dev = pd.dev()
    return [dev.PutStore(devclusterpb_pb2.PutStoreRequest(cluster_id=cluster_id,
                                                          store=metapb_pb2.Store(address=a)), timeout=10).store_id
            for a in addresses]


def dummy_addresses(count: int) -> list[str]:
    return [f"127.0.0.1:{1000 + i}" for i in range(count)]


def test_tso_strictly_increases_across_sigkill_and_restart(start_pd):
    pd = start_pd()
    with pd.client() as client:
        before = [client.tso() for _ in range(200)]
    assert before == sorted(set(before))
    pd.kill()
    pd.start()
    with pd.client() as client:
        after = [client.tso() for _ in range(50)]
    assert after == sorted(set(after)) and after[0] > before[-1]


def test_state_survives_restart(start_pd):
    pd = start_pd("--initial-stores", "2", "--initial-regions", "4", "--max-replicas", "2")
    with pd.client() as client:
        store_ids = register(pd, client.cluster_id, dummy_addresses(2))
        client.split_regions([b"\x10"])
        client.update_service_gc_safe_point("br-test", 3600, client.tso())
        gc_safe_point = client.gc_safe_point()
        cluster_id, regions = client.cluster_id, [r.region for r in client.scan_regions()]
    pd.kill()
    pd.start()
    with pd.client() as client:
        assert client.cluster_id == cluster_id
        assert [s.id for s in client.stores()] == store_ids
        assert [r.region for r in client.scan_regions()] == regions
        assert client.gc_safe_point() >= gc_safe_point
        assert register(pd, cluster_id, dummy_addresses(2)) == store_ids  # heartbeat recalls ids


def test_cluster_id_mismatch_is_failed_precondition_and_pd_keeps_serving(start_pd):
    pd = start_pd()
    with pd.client() as client:
        stub = pdpb_pb2_grpc.PDStub(grpc.insecure_channel(pd.address))
        wrong = client.cluster_id + 1
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetAllStores(pdpb_pb2.GetAllStoresRequest(header=pdpb_pb2.RequestHeader(cluster_id=wrong)))
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert str(wrong) in raised.value.details() and str(client.cluster_id) in raised.value.details()
        with pytest.raises(grpc.RpcError) as raised:
            next(stub.Tso(iter([pdpb_pb2.TsoRequest(header=pdpb_pb2.RequestHeader(cluster_id=0), count=1)])))
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as raised:  # DevPD does not accept 0 either
            register(pd, 0, dummy_addresses(1))
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        urls = list(client.members().leader.client_urls)  # gRPC first, then the HTTP API (pd.http_api)
        assert client.tso() > 0 and urls[0] == f"http://{pd.address}" and len(urls) == 2


def test_malformed_requests_get_clear_errors(start_pd):
    pd = start_pd()
    with pd.client() as client:
        stub = pdpb_pb2_grpc.PDStub(grpc.insecure_channel(pd.address))
        header = pdpb_pb2.RequestHeader(cluster_id=client.cluster_id)
        scan = stub.ScanRegions(pdpb_pb2.ScanRegionsRequest(header=header, start_key=b"b", end_key=b"a"))
        assert scan.header.error.type == pdpb_pb2.INVALID_VALUE
        assert stub.ScanRegions(pdpb_pb2.ScanRegionsRequest(header=header, limit=-1)).header.error.message
        with pytest.raises(PDError, match="not found"):
            client.store(12345)
        with pytest.raises(PDError, match="region id"):
            client.region_by_id(0)
        assert client.region(b"any") is None  # not bootstrapped yet
        with pytest.raises(PDError, match="not bootstrapped"):
            client.split_regions([b"k"])
        register(pd, client.cluster_id, dummy_addresses(1))
        assert client.region_by_id(987654) is None
        with pytest.raises(PDError, match="split keys"):
            client.split_regions([b""])
        with pytest.raises(grpc.RpcError) as raised:
            next(stub.Tso(iter([pdpb_pb2.TsoRequest(header=header, count=0)])))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as raised:
            register(pd, client.cluster_id, ["no-port"])
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert client.tso() > 0


def test_scan_regions_pages_through_pd_client(start_pd):
    pd = start_pd("--initial-regions", "300")
    with pd.client() as client:
        register(pd, client.cluster_id, dummy_addresses(1))
        everything = list(client.scan_regions(page=7))
        assert len(everything) == 300
        assert everything[0].region.start_key == b"" and everything[-1].region.end_key == b""
        assert all(a.region.end_key == b.region.start_key for a, b in zip(everything, everything[1:]))
        assert all(info.leader is not None and info.leader_store_id == 1 for info in everything)
        middle = list(client.scan_regions(b"\x10\x00", b"\x20\x00", page=5))
        assert middle[0].region.start_key <= b"\x10\x00" < middle[-1].region.end_key
        assert middle[-1].region.start_key < b"\x20\x00" <= middle[-1].region.end_key
        stub = pdpb_pb2_grpc.PDStub(grpc.insecure_channel(pd.address))
        raw = stub.ScanRegions(pdpb_pb2.ScanRegionsRequest(header=pdpb_pb2.RequestHeader(cluster_id=client.cluster_id),
                                                           limit=3))
        assert [r.region for r in raw.regions] == list(raw.region_metas)
        assert [r.leader for r in raw.regions] == list(raw.leaders) and len(raw.leaders) == 3


def test_gc_safe_points_through_pd_client(start_pd):
    pd = start_pd("--gc-life-time", "3600")
    with pd.client() as client:
        gc_safe_point = client.gc_safe_point()
        now = client.tso()
        assert 0 < gc_safe_point < now
        assert client.update_service_gc_safe_point("br-a", 300, gc_safe_point + 10) == gc_safe_point + 10
        assert client.update_service_gc_safe_point("br-b", 300, gc_safe_point + 5) == gc_safe_point + 5
        held = client.gc_safe_point()
        assert gc_safe_point <= held <= gc_safe_point + 5  # held back by the lower service
        assert client.update_service_gc_safe_point("late", 300, gc_safe_point - 1) == gc_safe_point + 5  # refused
        assert client.update_service_gc_safe_point("br-b", 0, 0) == gc_safe_point + 10  # removed
        assert client.update_service_gc_safe_point("br-a", -1, 0) == held  # none left: the GC safe point
        assert client.gc_safe_point() >= held


def test_what_clients_ask_at_connect_and_tidbs_gc_worker(start_pd):
    """GetMembers/GetAllStores with parseable versions, IsBootstrapped, GetClusterInfo,
    GetPrevRegion and UpdateGCSafePoint, with kvproto's messages, as a client-go/client-rust."""
    pd = start_pd("--initial-stores", "2", "--initial-regions", "4", "--gc-life-time", "3600")
    stub = pdpb_pb2_grpc.PDStub(grpc.insecure_channel(pd.address))
    members = stub.GetMembers(pdpb_pb2.GetMembersRequest(header=pdpb_pb2.RequestHeader()))
    header = pdpb_pb2.RequestHeader(cluster_id=members.header.cluster_id)
    assert (members.leader.binary_version, members.leader.git_hash) == ("8.5.0", "br-devcluster")
    assert not stub.IsBootstrapped(pdpb_pb2.IsBootstrappedRequest(header=header)).bootstrapped
    register(pd, header.cluster_id, dummy_addresses(2))
    assert stub.IsBootstrapped(pdpb_pb2.IsBootstrappedRequest(header=header)).bootstrapped
    info = stub.GetClusterInfo(pdpb_pb2.GetClusterInfoRequest(
        header=pdpb_pb2.ResponseHeader(cluster_id=header.cluster_id)))
    assert list(info.serviceModes) == [pdpb_pb2.PD_SVC_MODE] and not info.header.HasField("error")
    stores = stub.GetAllStores(pdpb_pb2.GetAllStoresRequest(header=header)).stores
    assert {(s.version, s.git_hash) for s in stores} == {("8.5.0", "br-devcluster")}
    assert [s.status_address for s in stores] == [s.address for s in stores]

    second = stub.GetRegion(pdpb_pb2.GetRegionRequest(header=header, region_key=b"\x50")).region
    prev = stub.GetPrevRegion(pdpb_pb2.GetRegionRequest(header=header, region_key=b"\x50")).region
    assert prev.end_key == second.start_key and prev.start_key == b""
    first = stub.GetPrevRegion(pdpb_pb2.GetRegionRequest(header=header, region_key=b"\x01"))
    assert not first.HasField("region") and not first.header.HasField("error")  # none before the first

    life_time_ago = stub.GetGCSafePoint(pdpb_pb2.GetGCSafePointRequest(header=header)).safe_point
    with pd.client() as client:
        target = client.tso()  # ahead of what PD's own advance (now - life time) reaches
    update = pdpb_pb2.UpdateGCSafePointRequest(header=header, safe_point=target)
    assert stub.UpdateGCSafePoint(update).new_safe_point == target
    update.safe_point = life_time_ago  # never backwards: the answer is the current one
    assert stub.UpdateGCSafePoint(update).new_safe_point == target
    assert stub.GetGCSafePoint(pdpb_pb2.GetGCSafePointRequest(header=header)).safe_point == target
    with pytest.raises(grpc.RpcError) as wrong:
        stub.IsBootstrapped(pdpb_pb2.IsBootstrappedRequest(header=pdpb_pb2.RequestHeader(cluster_id=1)))
    assert wrong.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_split_regions_and_split_region(start_pd):
    pd = start_pd("--initial-stores", "2", "--initial-regions", "2", "--max-replicas", "2")
    with pd.client() as client:
        register(pd, client.cluster_id, dummy_addresses(2))
        old = client.region(b"\x10")
        boundary = encode_bytes(b"\x80\x00")  # the bootstrap split of 2 regions (an engine key)
        new_ids = client.split_regions([b"\x10", boundary, b"\x90"])
        assert len(new_ids) == 2
        right = client.region_by_id(new_ids[0]).region
        left = client.region_by_id(old.id).region
        assert (left.end_key, right.start_key) == (b"\x10", b"\x10")
        assert left.region_epoch.version == right.region_epoch.version == old.region.region_epoch.version + 1
        assert [p.store_id for p in right.peers] == [p.store_id for p in old.region.peers]
        assert client.region(b"\x10").leader_store_id == old.leader_store_id
        assert DevAdmin.of(client).split_region(b"\x20").start_key == b"\x20"
        with pytest.raises(PDError, match="boundary"):
            DevAdmin.of(client).split_region(b"\x20")


def test_sigterm_stops_cleanly(start_pd):
    pd = start_pd()
    assert pd.stop() == 0


def test_bad_cli_input_exits_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "br_devcluster.pd", "--data-dir", str(tmp_path), "--host",
                             "127.0.0.1", "--port", "70000"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--port" in result.stderr


class FakeStore(devclusterpb_pb2_grpc.DevStoreServicer):
    """Acts as every store's DevStore towards PD: commits the change PD asked for, records calls."""

    def __init__(self, pd_address: str, cluster_id: int) -> None:
        channel = grpc.insecure_channel(pd_address)
        self._pd = pdpb_pb2_grpc.PDStub(channel)
        self._dev = devclusterpb_pb2_grpc.DevPDStub(channel)
        self._cluster_id = cluster_id
        self.calls: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()

    def _region(self, region_id: int) -> metapb_pb2.Region:
        header = pdpb_pb2.RequestHeader(cluster_id=self._cluster_id)
        return self._pd.GetRegionByID(pdpb_pb2.GetRegionByIDRequest(header=header, region_id=region_id)).region

    def _commit(self, region: metapb_pb2.Region, peers, leader_store_id: int):  # noqa: ANN001
        return self._dev.CommitPeerChange(devclusterpb_pb2.CommitPeerChangeRequest(
            cluster_id=self._cluster_id, region_id=region.id, region_epoch=region.region_epoch, peers=peers,
            leader_store_id=leader_store_id))

    def TransferLeader(self, request, context):  # noqa: ANN001, ANN201, N802
        with self._lock:
            self.calls.append(("transfer", request.region_id, request.to_store_id))
        region = self._region(request.region_id)
        return self._commit(region, region.peers, request.to_store_id)

    def MigratePeer(self, request, context):  # noqa: ANN001, ANN201, N802
        with self._lock:
            self.calls.append(("migrate", request.region_id, request.to_store_id))
        region = self._region(request.region_id)
        leader = self._pd.GetRegionByID(pdpb_pb2.GetRegionByIDRequest(
            header=pdpb_pb2.RequestHeader(cluster_id=self._cluster_id), region_id=region.id)).leader.store_id
        peers = [p for p in region.peers if p.store_id != request.from_store_id]
        peers.append(metapb_pb2.Peer(id=request.new_peer_id, store_id=request.to_store_id))
        return self._commit(region, peers, request.to_store_id if leader == request.from_store_id else leader)


@pytest.fixture
def fake_stores():
    servers = []

    def start(pd: PDProcess, cluster_id: int, count: int) -> tuple[FakeStore, list[str]]:
        store = FakeStore(pd.address, cluster_id)
        server = grpc.server(ThreadPoolExecutor(8))
        devclusterpb_pb2_grpc.add_DevStoreServicer_to_server(store, server)
        addresses = [f"127.0.0.1:{server.add_insecure_port(f'127.0.0.1:{procs.free_port()}')}" for _ in range(count)]
        server.start()
        servers.append(server)
        return store, addresses
    yield start
    for server in servers:
        server.stop(0).wait()


def test_transfer_leader_goes_through_the_current_leader(start_pd, fake_stores):
    pd = start_pd("--initial-stores", "3", "--max-replicas", "3")
    with pd.client() as client:
        store, addresses = fake_stores(pd, client.cluster_id, 3)
        ids = register(pd, client.cluster_id, addresses)
        region = client.region(b"")
        epoch = region.region.region_epoch
        target = next(s for s in ids if s != region.leader_store_id)
        moved = DevAdmin.of(client).transfer_leader(region.id, target)
        assert moved.region_epoch == epoch and client.region(b"").leader_store_id == target
        assert store.calls == [("transfer", region.id, target)]
        assert DevAdmin.of(client).transfer_leader(region.id, target).id == region.id  # already leader: no store call
        assert len(store.calls) == 1
        with pytest.raises(PDError, match="no peer"):
            DevAdmin.of(client).transfer_leader(region.id, 999)
        with pytest.raises(PDError, match="not found"):
            DevAdmin.of(client).transfer_leader(424242, target)


def test_transfer_leader_reports_an_unreachable_store(start_pd):
    pd = start_pd("--initial-stores", "2", "--max-replicas", "2")
    with pd.client() as client:
        ids = register(pd, client.cluster_id, [f"127.0.0.1:{procs.free_port()}" for _ in range(2)])
        region = client.region(b"")
        target = next(s for s in ids if s != region.leader_store_id)
        with pytest.raises(PDError, match="TransferLeader failed"):
            DevAdmin.of(client).transfer_leader(region.id, target)


def test_scatter_spreads_peers_and_leaders(start_pd, fake_stores):
    pd = start_pd("--initial-stores", "1", "--initial-regions", "6")
    with pd.client() as client:
        store, addresses = fake_stores(pd, client.cluster_id, 3)
        register(pd, client.cluster_id, addresses[:1])  # bootstrap: every region on the first store
        register(pd, client.cluster_id, addresses[1:])
        region_ids = [r.id for r in client.scan_regions()]
        assert client.scatter_regions(region_ids + [424242]) == [424242]
        after = list(client.scan_regions())
        per_store: dict[int, int] = {}
        for info in after:
            assert [p.store_id for p in info.region.peers] == [info.leader_store_id]
            per_store[info.leader_store_id] = per_store.get(info.leader_store_id, 0) + 1
        assert sorted(per_store.values()) == [2, 2, 2]
        moved = [info for info in after if info.region.region_epoch.conf_ver == 2]
        assert len(moved) == 4 and sum(1 for call in store.calls if call[0] == "migrate") == 4
        assert client.scatter_regions(region_ids) == []  # balanced now: nothing moves
        assert sum(1 for call in store.calls if call[0] == "migrate") == 4
