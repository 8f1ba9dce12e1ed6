"""The bad-input rule for every transactional RPC (and Coprocessor): a mismatched api_version,
an unknown region, a key outside the region, an empty key or a malformed payload is answered
(a region error, a KeyError, an error string or a gRPC status), never a crash: the store keeps
serving. api_version mismatches are TiKV's ApiVersionNotMatched, in KeyError.abort (DeleteRange:
its error string; Coprocessor: other_error)."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from br_common.kvproto import coprocessor_pb2, kvrpcpb_pb2 as pb
from br_common.txn_codec import encode_bytes
from br_devcluster.admin import DevAdmin
from tests.integration._store_cluster import Cluster, context_of, running_cluster

pytestmark = pytest.mark.integration

INSIDE, OUTSIDE = b"a", b"z"  # the region under test is ["", encode(m))
Build = Callable[[pb.Context, bytes], object]


def _mutation(key: bytes) -> pb.Mutation:
    return pb.Mutation(op=pb.Put, key=key, value=b"v")


# every Kv* RPC with a request about one key (region-wide requests ignore the key)
REQUESTS: dict[str, Build] = {
    "KvGet": lambda ctx, key: pb.GetRequest(context=ctx, key=key, version=10),
    "KvBatchGet": lambda ctx, key: pb.BatchGetRequest(context=ctx, keys=[key], version=10),
    "KvScan": lambda ctx, key: pb.ScanRequest(context=ctx, start_key=key, limit=10, version=10),
    "KvScanLock": lambda ctx, key: pb.ScanLockRequest(context=ctx, start_key=key, max_version=10, limit=10),
    "KvPrewrite": lambda ctx, key: pb.PrewriteRequest(context=ctx, mutations=[_mutation(key)], primary_lock=key,
                                                      start_version=10, lock_ttl=3000),
    "KvCommit": lambda ctx, key: pb.CommitRequest(context=ctx, keys=[key], start_version=10, commit_version=11),
    "KvCleanup": lambda ctx, key: pb.CleanupRequest(context=ctx, key=key, start_version=10),
    "KvBatchRollback": lambda ctx, key: pb.BatchRollbackRequest(context=ctx, keys=[key], start_version=10),
    "KvResolveLock": lambda ctx, key: pb.ResolveLockRequest(context=ctx, keys=[key], start_version=10),
    "KvCheckTxnStatus": lambda ctx, key: pb.CheckTxnStatusRequest(context=ctx, primary_key=key, lock_ts=10,
                                                                  caller_start_ts=12, current_ts=12),
    "KvCheckSecondaryLocks": lambda ctx, key: pb.CheckSecondaryLocksRequest(context=ctx, keys=[key],
                                                                            start_version=10),
    "KvTxnHeartBeat": lambda ctx, key: pb.TxnHeartBeatRequest(context=ctx, primary_lock=key, start_version=10,
                                                              advise_lock_ttl=5000),
    "KvPessimisticLock": lambda ctx, key: pb.PessimisticLockRequest(
        context=ctx, mutations=[pb.Mutation(op=pb.PessimisticLock, key=key)], primary_lock=key, start_version=10,
        for_update_ts=10, lock_ttl=3000),
    "KVPessimisticRollback": lambda ctx, key: pb.PessimisticRollbackRequest(context=ctx, keys=[key],
                                                                            start_version=10, for_update_ts=10),
    "KvGC": lambda ctx, key: pb.GCRequest(context=ctx, safe_point=1),
    "KvDeleteRange": lambda ctx, key: pb.DeleteRangeRequest(context=ctx, start_key=key, end_key=key + b"\x00"),
}
KEYED = [name for name in REQUESTS if name not in ("KvScan", "KvScanLock", "KvGC")]
COMMAND_KIND = {"KvGet": "get", "KvBatchGet": "batch_get", "KvScan": "scan", "KvScanLock": "scan_lock",
                "KvPrewrite": "prewrite", "KvCommit": "commit", "KvCleanup": "cleanup", "KvBatchRollback": "rollback",
                "KvResolveLock": "resolve_lock", "KvCheckTxnStatus": "check_txn_status",
                "KvCheckSecondaryLocks": "check_secondary_locks", "KvTxnHeartBeat": "txn_heart_beat",
                "KvPessimisticLock": "acquire_pessimistic_lock", "KVPessimisticRollback": "pessimistic_rollback",
                "KvGC": "gc", "KvDeleteRange": "delete_range"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("txn-bad-input"), stores=1, regions=1) as running:
        admin = DevAdmin.of(running.pd)
        admin.split_region(encode_bytes(b"m"))
        admin.close()
        yield running


def call(cluster: Cluster, name: str, ctx: pb.Context, key: bytes) -> object:
    stub, _, _ = cluster.route(encode_bytes(INSIDE))
    return getattr(stub, name)(REQUESTS[name](ctx, key))


def routed(cluster: Cluster) -> pb.Context:
    return context_of(cluster.pd.region(encode_bytes(INSIDE)))


def key_error_abort(response: object) -> str:
    """The abort of the response's KeyError (or its first one), or its error string."""
    error = getattr(response, "errors", None)
    if error is not None:
        return error[0].abort if error else ""
    error = response.error  # type: ignore[attr-defined]
    return error if isinstance(error, str) else error.abort


def still_serving(cluster: Cluster) -> None:
    response = call(cluster, "KvGet", routed(cluster), INSIDE)
    assert not response.HasField("region_error") and not response.HasField("error"), response


@pytest.mark.parametrize("name", list(REQUESTS))
def test_api_version_mismatch_is_tikvs_error(cluster: Cluster, name: str) -> None:
    ctx = routed(cluster)
    ctx.api_version = pb.V2
    response = call(cluster, name, ctx, INSIDE)
    kind = COMMAND_KIND[name]
    assert not response.HasField("region_error"), response
    if name == "KvDeleteRange":
        assert key_error_abort(response) == (f"Api version in request does not match with TiKV storage, cmd: {kind}, "
                                             "storage: V1, request: V2")
    else:
        assert key_error_abort(response) == (f"Error(ApiVersionNotMatched {{ cmd: {kind}, storage_api_version: V1, "
                                             "req_api_version: V2 })")
    still_serving(cluster)


@pytest.mark.parametrize("name", list(REQUESTS))
def test_unknown_region_is_region_not_found(cluster: Cluster, name: str) -> None:
    response = call(cluster, name, pb.Context(region_id=999_999), INSIDE)
    assert response.region_error.HasField("region_not_found"), response


@pytest.mark.parametrize("name", KEYED)
def test_key_outside_the_region_is_key_not_in_region(cluster: Cluster, name: str) -> None:
    response = call(cluster, name, routed(cluster), OUTSIDE)
    assert response.region_error.HasField("key_not_in_region"), response
    still_serving(cluster)


@pytest.mark.parametrize("name", [n for n in KEYED if n != "KvDeleteRange"])  # its b"" start is the key space's
def test_empty_key_is_refused(cluster: Cluster, name: str) -> None:
    try:
        response = call(cluster, name, routed(cluster), b"")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    else:
        assert response.HasField("region_error") or key_error_abort(response), response
    still_serving(cluster)


def test_coprocessor_api_version_and_bad_input(cluster: Cluster) -> None:
    stub, _, _ = cluster.route(encode_bytes(INSIDE))
    ctx = routed(cluster)
    ctx.api_version = pb.V1TTL
    response = stub.Coprocessor(coprocessor_pb2.Request(context=ctx, tp=105, start_ts=5))
    assert response.other_error == ("Api version in request does not match with TiKV storage, cmd: coprocessor, "
                                    "storage: V1, request: V1ttl")
    unknown = stub.Coprocessor(coprocessor_pb2.Request(context=pb.Context(region_id=999_999), tp=105, start_ts=5))
    assert unknown.region_error.HasField("region_not_found")
    still_serving(cluster)
