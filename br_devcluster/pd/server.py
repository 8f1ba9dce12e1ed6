"""gRPC front: pdpb.PD and devclusterpb.DevPD servicers translating protobuf <-> PD state.

Errors: a wrong cluster id aborts with FAILED_PRECONDITION (as real PD); other bad input is
answered in the response (pdpb header error, AdminResponse.error) or as INVALID_ARGUMENT where
the message has no place for an error.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc

from br_common.kvproto import devclusterpb_pb2, devclusterpb_pb2_grpc, metapb_pb2, pdpb_pb2, pdpb_pb2_grpc
from br_devcluster.pd.gc import GCSafePoints
from br_devcluster.pd.ids import MAX_COUNT
from br_devcluster.pd.models import GIT_HASH, RELEASE_VERSION, Peer, Region
from br_devcluster.pd.operators import Operators
from br_devcluster.pd.state import ClusterState, NotBootstrapped, StateError
from br_devcluster.pd.tso import TsoAllocator

log = logging.getLogger(__name__)


def check_cluster_id(expected: int, got: int, context: grpc.ServicerContext, allow_zero: bool = False) -> None:
    if got == expected or (allow_zero and got == 0):
        return
    context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"mismatch cluster id, need {expected} but got {got}")


class PDService(pdpb_pb2_grpc.PDServicer):
    def __init__(self, state: ClusterState, tso: TsoAllocator, gc: GCSafePoints, operators: Operators,
                 client_urls: list[str]) -> None:
        """client_urls: the gRPC URL first (what gRPC clients connect to), then the HTTP API's."""
        self._state = state
        self._tso = tso
        self._gc = gc
        self._operators = operators
        self._member = pdpb_pb2.Member(name="pd", member_id=state.member_id, client_urls=client_urls,
                                       peer_urls=client_urls[:1], binary_version=RELEASE_VERSION, git_hash=GIT_HASH)

    def _check(self, request, context: grpc.ServicerContext, allow_zero: bool = False) -> None:  # noqa: ANN001
        check_cluster_id(self._state.cluster_id, request.header.cluster_id, context, allow_zero)

    def _header(self, error_type: int = pdpb_pb2.OK, message: str = "") -> pdpb_pb2.ResponseHeader:
        header = pdpb_pb2.ResponseHeader(cluster_id=self._state.cluster_id)
        if error_type != pdpb_pb2.OK:
            header.error.CopyFrom(pdpb_pb2.Error(type=error_type, message=message))
        return header

    def _error_header(self, exc: StateError) -> pdpb_pb2.ResponseHeader:
        kind = pdpb_pb2.NOT_BOOTSTRAPPED if isinstance(exc, NotBootstrapped) else pdpb_pb2.INVALID_VALUE
        return self._header(kind, str(exc))

    # --- members, ids, config ------------------------------------------------------------------
    def GetMembers(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context, allow_zero=True)
        return pdpb_pb2.GetMembersResponse(header=self._header(), members=[self._member], leader=self._member,
                                           etcd_leader=self._member)

    def AllocID(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        count = request.count or 1
        if count > MAX_COUNT:
            return pdpb_pb2.AllocIDResponse(header=self._header(pdpb_pb2.INVALID_VALUE,
                                                                f"count {count} is above {MAX_COUNT}"))
        return pdpb_pb2.AllocIDResponse(header=self._header(), id=self._state.alloc_ids(count), count=count)

    def GetClusterInfo(self, request, context):  # noqa: ANN001, ANN201, N802
        """A plain PD (no separate TSO or API service): what client-go asks at connect."""
        self._check(request, context, allow_zero=True)
        return pdpb_pb2.GetClusterInfoResponse(header=self._header(), serviceModes=[pdpb_pb2.PD_SVC_MODE])

    def IsBootstrapped(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        return pdpb_pb2.IsBootstrappedResponse(header=self._header(), bootstrapped=self._state.bootstrapped)

    def GetClusterConfig(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        cluster = metapb_pb2.Cluster(id=self._state.cluster_id, max_peer_count=self._state.max_replicas)
        return pdpb_pb2.GetClusterConfigResponse(header=self._header(), cluster=cluster)

    # --- stores --------------------------------------------------------------------------------
    def GetStore(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        store = self._state.store(request.store_id)
        if store is None:
            return pdpb_pb2.GetStoreResponse(header=self._header(
                pdpb_pb2.UNKNOWN, f"invalid store ID {request.store_id}, not found"))
        return pdpb_pb2.GetStoreResponse(header=self._header(), store=store.to_proto())

    def GetAllStores(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        stores = [s.to_proto() for s in self._state.stores()]  # none is ever a tombstone
        return pdpb_pb2.GetAllStoresResponse(header=self._header(), stores=stores)

    # --- regions -------------------------------------------------------------------------------
    def GetRegion(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        return self._region_response(self._state.region_by_key(request.region_key))

    def GetPrevRegion(self, request, context):  # noqa: ANN001, ANN201, N802
        """The region before the one holding region_key (none for the first), as PD."""
        self._check(request, context)
        return self._region_response(self._state.region_before(request.region_key))

    def GetRegionByID(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        if request.region_id == 0:
            return pdpb_pb2.GetRegionResponse(header=self._header(pdpb_pb2.INVALID_VALUE, "region id must not be 0"))
        return self._region_response(self._state.region_by_id(request.region_id))

    def _region_response(self, region: Region | None) -> pdpb_pb2.GetRegionResponse:
        if region is None:  # as PD: no region, no error
            return pdpb_pb2.GetRegionResponse(header=self._header())
        leader = region.leader()
        return pdpb_pb2.GetRegionResponse(header=self._header(), region=region.to_proto(),
                                          leader=leader.to_proto() if leader else None)

    def ScanRegions(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        if request.limit < 0:
            return pdpb_pb2.ScanRegionsResponse(header=self._header(
                pdpb_pb2.INVALID_VALUE, f"limit must not be negative, got {request.limit}"))
        if request.end_key and request.end_key < request.start_key:
            return pdpb_pb2.ScanRegionsResponse(header=self._header(
                pdpb_pb2.INVALID_VALUE, "invalid key range, start key > end key"))
        response = pdpb_pb2.ScanRegionsResponse(header=self._header())
        for region in self._state.scan_regions(request.start_key, request.end_key, request.limit):
            meta, leader = region.to_proto(), region.leader()
            leader_proto = leader.to_proto() if leader else metapb_pb2.Peer()
            response.regions.add(region=meta, leader=leader_proto)
            response.region_metas.append(meta)
            response.leaders.append(leader_proto)
        return response

    def SplitRegions(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        keys = list(request.split_keys)
        if not keys or any(k == b"" for k in keys):
            return pdpb_pb2.SplitRegionsResponse(header=self._header(
                pdpb_pb2.INVALID_VALUE, "split keys must be a non-empty list of non-empty keys"))
        try:
            new_ids = self._state.split(keys)
        except StateError as exc:
            return pdpb_pb2.SplitRegionsResponse(header=self._error_header(exc))
        log.info("split at %d keys: new regions %s", len(keys), new_ids)
        return pdpb_pb2.SplitRegionsResponse(header=self._header(), finished_percentage=100, regions_id=new_ids)

    def ScatterRegion(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        region_ids = list(request.regions_id) or [i for i in (request.region.id, request.region_id) if i][:1]
        if not region_ids:
            return pdpb_pb2.ScatterRegionResponse(header=self._header(pdpb_pb2.INVALID_VALUE, "no region to scatter"))
        try:
            finished, failed = self._operators.scatter(region_ids)
        except StateError as exc:
            return pdpb_pb2.ScatterRegionResponse(header=self._error_header(exc))
        log.info("scattered %d regions, failed: %s", len(region_ids), failed)
        return pdpb_pb2.ScatterRegionResponse(header=self._header(), finished_percentage=finished,
                                              failed_regions_id=failed)

    # --- timestamps and GC ---------------------------------------------------------------------
    def Tso(self, request_iterator, context) -> Iterator[pdpb_pb2.TsoResponse]:  # noqa: ANN001, N802
        for request in request_iterator:
            self._check(request, context)
            try:
                physical, logical = self._tso.allocate(request.count)
            except ValueError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            yield pdpb_pb2.TsoResponse(header=self._header(), count=request.count,
                                       timestamp=pdpb_pb2.Timestamp(physical=physical, logical=logical))

    def GetGCSafePoint(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        return pdpb_pb2.GetGCSafePointResponse(header=self._header(), safe_point=self._gc.gc_safe_point())

    def UpdateGCSafePoint(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        return pdpb_pb2.UpdateGCSafePointResponse(header=self._header(),
                                                  new_safe_point=self._gc.update_gc_safe_point(request.safe_point))

    def UpdateServiceGCSafePoint(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check(request, context)
        if not request.service_id:
            return pdpb_pb2.UpdateServiceGCSafePointResponse(header=self._header(
                pdpb_pb2.INVALID_VALUE, "service id must not be empty"))
        low = self._gc.update_service(request.service_id, request.TTL, request.safe_point)
        return pdpb_pb2.UpdateServiceGCSafePointResponse(header=self._header(), service_id=low.service_id,
                                                         TTL=low.ttl_seconds, min_safe_point=low.safe_point)


class DevPDService(devclusterpb_pb2_grpc.DevPDServicer):
    def __init__(self, state: ClusterState, operators: Operators) -> None:
        self._state = state
        self._operators = operators

    def PutStore(self, request, context):  # noqa: ANN001, ANN201, N802
        check_cluster_id(self._state.cluster_id, request.cluster_id, context)
        address = request.store.address
        if not _valid_address(address):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"store address must be host:port, got {address!r}")
        try:
            store_id = self._state.put_store(address, request.store.id)
        except StateError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return devclusterpb_pb2.PutStoreResponse(cluster_id=self._state.cluster_id, store_id=store_id)

    def TransferLeader(self, request, context):  # noqa: ANN001, ANN201, N802
        check_cluster_id(self._state.cluster_id, request.cluster_id, context)
        response = self._operators.transfer_leader(request.region_id, request.to_store_id)
        log.info("transfer leader of region %d to store %d: %s", request.region_id, request.to_store_id,
                 response.error or "done")
        return response

    def SplitRegion(self, request, context):  # noqa: ANN001, ANN201, N802
        check_cluster_id(self._state.cluster_id, request.cluster_id, context)
        try:
            return devclusterpb_pb2.AdminResponse(region=self._state.split_one(request.split_key).to_proto())
        except StateError as exc:
            return devclusterpb_pb2.AdminResponse(error=str(exc))

    def CommitPeerChange(self, request, context):  # noqa: ANN001, ANN201, N802
        check_cluster_id(self._state.cluster_id, request.cluster_id, context)
        peers = [Peer(id=p.id, store_id=p.store_id) for p in request.peers]
        try:
            region = self._state.commit_peer_change(request.region_id, request.region_epoch.conf_ver,
                                                    request.region_epoch.version, peers, request.leader_store_id)
        except StateError as exc:
            return devclusterpb_pb2.AdminResponse(error=str(exc))
        return devclusterpb_pb2.AdminResponse(region=region.to_proto())


def _valid_address(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(host) and sep == ":" and port.isdigit() and 0 < int(port) < 65536
