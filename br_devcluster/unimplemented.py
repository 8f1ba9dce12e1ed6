"""A last gRPC handler for PD and the stores: an RPC no servicer implements is logged (method name
and count) before it is answered UNIMPLEMENTED, so that the log says which RPCs a real client
(pingcap's tikv-client, TiDB, BR) expected of the devcluster."""
from __future__ import annotations

import logging
import threading
from collections import Counter

import grpc

log = logging.getLogger(__name__)


class UnimplementedLogger(grpc.GenericRpcHandler):
    """Add after every servicer: gRPC consults generic handlers in order."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        with self._lock:
            self._seen[method] += 1
            count = self._seen[method]
        if count == 1 or count % 100 == 0:
            log.warning("unimplemented RPC %s called (%d times so far)", method, count)
        return grpc.unary_unary_rpc_method_handler(_unimplemented(method), request_deserializer=None,
                                                   response_serializer=None)

    def seen(self) -> dict[str, int]:
        with self._lock:
            return dict(self._seen)


def _unimplemented(method: str):  # noqa: ANN202 - a gRPC behaviour
    def answer(_request: bytes, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by the devcluster")

    return answer
