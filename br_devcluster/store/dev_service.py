"""devclusterpb.DevStore: replication from the leader, leader transfer and peer migration for PD."""
from __future__ import annotations

import logging

from br_common.kvproto import devclusterpb_pb2, devclusterpb_pb2_grpc, metapb_pb2
from br_common.pd_client import RegionInfo
from br_common.redaction import show_key
from br_devcluster.store.errors import StoreError, rpc
from br_devcluster.store.regions import region_not_found
from br_devcluster.store.staging import Staging
from br_devcluster.store.state import StoreState
from br_devcluster.store.txn_reader import CF_DEFAULT, DeleteRange, Modify

log = logging.getLogger(__name__)

Admin = devclusterpb_pb2.AdminResponse


class DevStoreService(devclusterpb_pb2_grpc.DevStoreServicer):
    def __init__(self, state: StoreState, staging: Staging) -> None:
        self._state = state
        self._staging = staging

    def _check_cluster(self, cluster_id: int) -> None:
        if cluster_id != self._state.cluster_id:
            raise StoreError(f"cluster id mismatch: store is in {self._state.cluster_id}, request is for {cluster_id}")

    # --- follower side -----------------------------------------------------------------------
    @rpc(Admin)
    def ApplyWrites(self, request, context):  # noqa: ANN001, ANN201, N802
        """The leader's batch as it is; no lock: one write batch is atomic on its own."""
        self._check_cluster(request.cluster_id)
        ranges = [DeleteRange(r.cf or CF_DEFAULT, r.start_key, r.end_key or None) for r in request.delete_ranges]
        modifies = [Modify(e.cf or CF_DEFAULT, e.key, None if e.delete else e.value) for e in request.entries]
        try:
            self._state.engine.apply(modifies, ranges)
        except ValueError as exc:  # an unknown CF
            raise StoreError(str(exc)) from None
        return Admin()

    @rpc(Admin)
    def IngestReplica(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check_cluster(request.cluster_id)
        staged = [self._staging.load(uuid) for uuid in request.uuids]
        self._staging.ingest(self._state.engine, staged)
        for uuid in request.uuids:
            self._staging.remove(uuid)
        return Admin()

    @rpc(Admin)
    def DropRange(self, request, context):  # noqa: ANN001, ANN201, N802
        self._check_cluster(request.cluster_id)
        if request.end_key and request.end_key < request.start_key:
            raise StoreError(f"inverted range [{show_key(request.start_key)}, {show_key(request.end_key)}) (hex)")
        self._state.engine.drop_range(request.start_key, request.end_key)
        return Admin()

    # --- leader side -------------------------------------------------------------------------
    @rpc(Admin)
    def TransferLeader(self, request, context):  # noqa: ANN001, ANN201, N802
        """Under the write lock, so every write this leader answered is on the new leader."""
        self._check_cluster(request.cluster_id)
        state = self._state
        with state.write_lock:
            info = self._led_region(request.region_id)
            if not any(p.store_id == request.to_store_id for p in info.region.peers):
                raise StoreError(f"store {request.to_store_id} holds no peer of region {info.id}")
            region = state.dev_pd.commit_peer_change(info.region, list(info.region.peers), request.to_store_id)
            if request.to_store_id != state.store_id:
                state.concurrency.forget(info.id)  # leading it again means syncing max ts again
        log.info("region %d: leadership handed to store %d", info.id, request.to_store_id)
        return Admin(region=region)

    @rpc(Admin)
    def MigratePeer(self, request, context):  # noqa: ANN001, ANN201, N802
        """Copy the region (every CF) to to_store, commit the new peer set, drop the old copy."""
        self._check_cluster(request.cluster_id)
        state = self._state
        with state.write_lock:
            info = self._led_region(request.region_id)
            peers = _moved_peers(info, request)
            region = info.region
            state.peers.apply_modifies(request.to_store_id, region.id,
                                       state.engine.snapshot_cfs().entries(region.start_key, region.end_key))
            leader = request.to_store_id if request.from_store_id == state.store_id else state.store_id
            committed = state.dev_pd.commit_peer_change(region, peers, leader)
            if leader != state.store_id:
                state.concurrency.forget(region.id)
            self._drop_old_copy(request.from_store_id, region)
        log.info("region %d: peer moved from store %d to store %d", region.id, request.from_store_id,
                 request.to_store_id)
        return Admin(region=committed)

    def _drop_old_copy(self, store_id: int, region: metapb_pb2.Region) -> None:
        """Clean-up after a committed change: a failure is logged, not answered (the move happened)."""
        try:
            if store_id == self._state.store_id:
                self._state.engine.drop_range(region.start_key, region.end_key)
            else:
                self._state.peers.drop_range(store_id, region.start_key, region.end_key)
        except StoreError as exc:
            log.warning("region %d moved, but store %d kept its data: %s", region.id, store_id, exc)

    def _led_region(self, region_id: int) -> RegionInfo:
        info = self._state.pd.region_by_id(region_id)
        if info is None:
            raise StoreError(region_not_found(region_id).error.message)
        if info.leader_store_id != self._state.store_id:
            raise StoreError(f"store {self._state.store_id} does not lead region {region_id} "
                             f"(leader: store {info.leader_store_id})")
        return info


def _moved_peers(info: RegionInfo, request: devclusterpb_pb2.MigratePeerRequest) -> list[metapb_pb2.Peer]:
    stores = [p.store_id for p in info.region.peers]
    if request.from_store_id not in stores:
        raise StoreError(f"store {request.from_store_id} holds no peer of region {info.id}")
    if request.to_store_id in stores:
        raise StoreError(f"store {request.to_store_id} already holds a peer of region {info.id}")
    if request.new_peer_id == 0:
        raise StoreError("new_peer_id must not be 0")
    return [metapb_pb2.Peer(id=request.new_peer_id, store_id=request.to_store_id)
            if p.store_id == request.from_store_id else p for p in info.region.peers]
