"""The devcluster's last gRPC handler: an RPC no servicer implements is logged, then UNIMPLEMENTED."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from br_common.kvproto import pdpb_pb2, pdpb_pb2_grpc
from br_devcluster.unimplemented import UnimplementedLogger


def test_unknown_rpc_is_logged_and_answered_unimplemented(caplog: pytest.LogCaptureFixture) -> None:
    logger = UnimplementedLogger()
    server = grpc.server(ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers([logger])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, caplog.at_level(logging.WARNING):
            stub = pdpb_pb2_grpc.PDStub(channel)
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as info:
                    stub.IsBootstrapped(pdpb_pb2.IsBootstrappedRequest(), timeout=10)
                assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(0)
    assert logger.seen() == {"/pdpb.PD/IsBootstrapped": 2}
    assert "unimplemented RPC /pdpb.PD/IsBootstrapped" in caplog.text
