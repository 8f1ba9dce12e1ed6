"""The store's calls to PD's devcluster-only DevPD service (registration, peer changes)."""
from __future__ import annotations

import grpc

from br_common.grpc_tls import TLSConfig, open_channel
from br_common.kvproto import devclusterpb_pb2, devclusterpb_pb2_grpc, metapb_pb2
from br_common.pd_client import PDError

TIMEOUT = 10.0
_REFUSALS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)


class PDRefused(PDError):
    """PD answered and said no (wrong cluster, unknown store id): retrying will not help."""


class DevPDClient:
    def __init__(self, address: str, cluster_id: int, tls: TLSConfig | None = None) -> None:
        self.cluster_id = cluster_id
        self._channel = open_channel(address, tls)
        self._stub = devclusterpb_pb2_grpc.DevPDStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def put_store(self, store_id: int, address: str) -> int:
        request = devclusterpb_pb2.PutStoreRequest(cluster_id=self.cluster_id,
                                                   store=metapb_pb2.Store(id=store_id, address=address))
        try:
            return self._stub.PutStore(request, timeout=TIMEOUT).store_id
        except grpc.RpcError as exc:
            kind = PDRefused if exc.code() in _REFUSALS else PDError
            raise kind(f"PD PutStore failed: {exc.code().name}: {exc.details()}") from None

    def commit_peer_change(self, region: metapb_pb2.Region, peers: list[metapb_pb2.Peer],
                           leader_store_id: int) -> metapb_pb2.Region:
        request = devclusterpb_pb2.CommitPeerChangeRequest(cluster_id=self.cluster_id, region_id=region.id,
                                                           region_epoch=region.region_epoch, peers=peers,
                                                           leader_store_id=leader_store_id)
        try:
            response = self._stub.CommitPeerChange(request, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            raise PDError(f"PD CommitPeerChange failed: {exc.code().name}: {exc.details()}") from None
        if response.error:
            raise PDError(f"PD CommitPeerChange: {response.error}")
        return response.region
