"""The devcluster's admin operations on PD (DevPD service): split a region, move a leader.

A real PD does these through pd-ctl operators, not over kvproto, so product code never calls
them; tests and the devcluster's own tools do:

    with PDClient(address) as pd, DevAdmin.of(pd) as admin:
        admin.split_region(b"k")
"""
from __future__ import annotations

import grpc

from br_common.grpc_tls import open_channel
from br_common.kvproto import devclusterpb_pb2, devclusterpb_pb2_grpc, metapb_pb2
from br_common.pd_client import PDClient, PDError


class DevAdmin:
    def __init__(self, address: str, cluster_id: int, tls=None, timeout: float = 10.0) -> None:  # noqa: ANN001
        self.cluster_id, self.timeout = cluster_id, timeout
        self._channel = open_channel(address, tls)
        self._stub = devclusterpb_pb2_grpc.DevPDStub(self._channel)

    @classmethod
    def of(cls, pd: PDClient) -> "DevAdmin":
        """The admin service of the PD this client talks to (same address, TLS and cluster)."""
        return cls(pd.address, pd.cluster_id, pd.tls, pd.timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "DevAdmin":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transfer_leader(self, region_id: int, to_store_id: int) -> metapb_pb2.Region:
        request = devclusterpb_pb2.TransferLeaderRequest(cluster_id=self.cluster_id, region_id=region_id,
                                                         to_store_id=to_store_id)
        return self._call("TransferLeader", request)

    def split_region(self, split_key: bytes) -> metapb_pb2.Region:
        request = devclusterpb_pb2.SplitRegionRequest(cluster_id=self.cluster_id, split_key=split_key)
        return self._call("SplitRegion", request)

    def _call(self, method: str, request):  # noqa: ANN001, ANN202
        try:
            response = getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise PDError(f"PD {method} failed: {exc.code().name}: {exc.details()}") from None
        if response.error:
            raise PDError(f"PD {method}: {response.error}")
        return response.region
