"""Leader transfers and peer moves, carried out by the stores (DevStore) without holding PD's lock.

A store calls back into PD (CommitPeerChange) while PD waits for its answer, so everything here
reads a fresh snapshot of the region, releases the lock, and only then calls the store.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc

from br_common.grpc_tls import TLSConfig, open_channel
from br_common.kvproto import devclusterpb_pb2, devclusterpb_pb2_grpc
from br_devcluster.pd.models import Region
from br_devcluster.pd.scatter import Move, ScatterPlan
from br_devcluster.pd.state import ClusterState

log = logging.getLogger(__name__)

TRANSFER_TIMEOUT = 30.0
MIGRATE_TIMEOUT = 600.0  # a migration copies the region's data
SCATTER_PARALLELISM = 4


class OperatorError(RuntimeError):
    """A store refused or could not be reached; the message says which and why."""


class StoreLink:
    """DevStore stubs on cached channels (TLS when the cluster has it), one per store address."""

    def __init__(self, tls: TLSConfig | None = None) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}

    def stub(self, address: str) -> devclusterpb_pb2_grpc.DevStoreStub:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = open_channel(address, self._tls)
            return devclusterpb_pb2_grpc.DevStoreStub(channel)

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


class Operators:
    def __init__(self, state: ClusterState, link: StoreLink) -> None:
        self._state = state
        self._link = link

    # --- leader transfer -----------------------------------------------------------------------
    def transfer_leader(self, region_id: int, to_store_id: int) -> devclusterpb_pb2.AdminResponse:
        """Validate, then have the current leader hand over; answers what the leader answers."""
        try:
            region = self._region(region_id)
            if region.peer_on(to_store_id) is None:
                raise OperatorError(f"store {to_store_id} holds no peer of region {region_id}")
            if region.leader_store_id == to_store_id:
                return devclusterpb_pb2.AdminResponse(region=region.to_proto())
            return self._call_transfer(region, to_store_id)
        except OperatorError as exc:
            return devclusterpb_pb2.AdminResponse(error=str(exc))

    def _call_transfer(self, region: Region, to_store_id: int) -> devclusterpb_pb2.AdminResponse:
        request = devclusterpb_pb2.TransferLeaderRequest(cluster_id=self._state.cluster_id, region_id=region.id,
                                                         to_store_id=to_store_id)
        return self._call(region.leader_store_id, "TransferLeader", request, TRANSFER_TIMEOUT)

    # --- scatter -----------------------------------------------------------------------------
    def scatter(self, region_ids: list[int]) -> tuple[int, list[int]]:
        """Returns (finished percentage, failed region ids); unknown ids count as failed."""
        plans, unknown = self._state.plan_scatter(region_ids)
        with ThreadPoolExecutor(SCATTER_PARALLELISM, thread_name_prefix="scatter") as pool:
            results = list(pool.map(self._execute_logged, plans))
        failed = unknown + [plan.region_id for plan, ok in zip(plans, results) if not ok]
        total = len(plans) + len(unknown)
        return (100 * (total - len(failed)) // total if total else 100), failed

    def _execute_logged(self, plan: ScatterPlan) -> bool:
        try:
            self._execute(plan)
            return True
        except OperatorError as exc:
            log.warning("scatter of region %d failed: %s", plan.region_id, exc)
            return False

    def _execute(self, plan: ScatterPlan) -> None:
        region = self._region(plan.region_id)
        if plan.is_noop(region):
            return
        leaving = {m.from_store_id for m in plan.moves}
        staying = [s for s in region.store_ids() if s not in leaving]
        if region.leader_store_id in leaving and staying:  # hand over before the leader's peer moves away
            self._transfer(region, plan.leader_store_id if plan.leader_store_id in staying else staying[0])
        for move in plan.moves:
            self._migrate(self._region(plan.region_id), move)
        region = self._region(plan.region_id)
        if region.leader_store_id != plan.leader_store_id:
            self._transfer(region, plan.leader_store_id)

    def _transfer(self, region: Region, to_store_id: int) -> None:
        response = self._call_transfer(region, to_store_id)
        if response.error:
            raise OperatorError(response.error)

    def _migrate(self, region: Region, move: Move) -> None:
        if region.peer_on(move.to_store_id) is not None and region.peer_on(move.from_store_id) is None:
            return  # already done (e.g. a retried scatter)
        if region.peer_on(move.from_store_id) is None or region.peer_on(move.to_store_id) is not None:
            raise OperatorError(f"region {region.id} changed while scattering (peers on {region.store_ids()})")
        request = devclusterpb_pb2.MigratePeerRequest(
            cluster_id=self._state.cluster_id, region_id=region.id, from_store_id=move.from_store_id,
            to_store_id=move.to_store_id, new_peer_id=move.new_peer_id)
        response = self._call(region.leader_store_id, "MigratePeer", request, MIGRATE_TIMEOUT)
        if response.error:
            raise OperatorError(response.error)

    # --- helpers -----------------------------------------------------------------------------
    def _region(self, region_id: int) -> Region:
        region = self._state.region_by_id(region_id)
        if region is None:
            raise OperatorError(f"region {region_id} not found")
        return region

    def _call(self, store_id: int, method: str, request, timeout: float) -> devclusterpb_pb2.AdminResponse:  # noqa: ANN001
        store = self._state.store(store_id)
        if store is None:
            raise OperatorError(f"store {store_id} is not registered")
        try:
            return getattr(self._link.stub(store.address), method)(request, timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") and exc.code() else "ERROR"
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise OperatorError(f"store {store_id} at {store.address}: {method} failed: {code}: {details}") from None
