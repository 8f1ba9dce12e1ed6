"""The transactional Kv* RPCs of tikvpb.Tikv (mixed into the servicer with the raw ones).

Each write command runs under the store's write lock (TiKV uses per-key latches; one lock
serialises commands, which the pure percolator functions assume): region check on the encoded
keys, one consistent view of the CFs, the command, one atomic batch applied here and on every
follower. Reads check the region and take the view under the lock, then read without it.
Async commit and 1PC are refused the way TiKV may (see percolator); api_version is not checked.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.pd_client import RegionInfo
from br_devcluster.store import percolator, txn_reads
from br_devcluster.store.errors import InvalidArgument, rpc
from br_devcluster.store.key_space import check_raw_ranges, encoded, raw_bounds
from br_devcluster.store.percolator import Outcome
from br_devcluster.store.state import StoreState
from br_devcluster.store.txn_reader import DeleteRange, Modify, TxnReader

Bounds = tuple[bytes, bytes | None]


class TxnMethods:
    """Kv* handlers; the class it is mixed into sets self._state."""

    _state: StoreState

    # --- reads -------------------------------------------------------------------------------
    @rpc(pb.GetResponse)
    def KvGet(self, request, context):  # noqa: ANN001, ANN201, N802
        reader, _ = self._view(request.context, _keys([request.key]))
        return txn_reads.kv_get(reader, request)

    @rpc(pb.BatchGetResponse)
    def KvBatchGet(self, request, context):  # noqa: ANN001, ANN201, N802
        reader, _ = self._view(request.context, _keys(request.keys))
        return txn_reads.kv_batch_get(reader, request)

    @rpc(pb.ScanResponse)
    def KvScan(self, request, context):  # noqa: ANN001, ANN201, N802
        reader, bounds = self._view(request.context)
        return txn_reads.kv_scan(reader, request, *bounds)

    @rpc(pb.ScanLockResponse)
    def KvScanLock(self, request, context):  # noqa: ANN001, ANN201, N802
        reader, bounds = self._view(request.context)
        return txn_reads.kv_scan_lock(reader, request, *bounds)

    # --- Percolator commands -----------------------------------------------------------------
    @rpc(pb.PrewriteResponse)
    def KvPrewrite(self, request, context):  # noqa: ANN001, ANN201, N802
        keys = _keys(m.key for m in request.mutations)
        return self._command(request.context, keys, lambda r, _: percolator.prewrite(r, request))

    @rpc(pb.CommitResponse)
    def KvCommit(self, request, context):  # noqa: ANN001, ANN201, N802
        return self._command(request.context, _keys(request.keys), lambda r, _: percolator.commit(r, request))

    @rpc(pb.CleanupResponse)
    def KvCleanup(self, request, context):  # noqa: ANN001, ANN201, N802
        return self._command(request.context, _keys([request.key]), lambda r, _: percolator.cleanup(r, request))

    @rpc(pb.BatchRollbackResponse)
    def KvBatchRollback(self, request, context):  # noqa: ANN001, ANN201, N802
        return self._command(request.context, _keys(request.keys),
                             lambda r, _: percolator.batch_rollback(r, request))

    @rpc(pb.ResolveLockResponse)
    def KvResolveLock(self, request, context):  # noqa: ANN001, ANN201, N802
        return self._command(request.context, _keys(request.keys),
                             lambda r, bounds: percolator.resolve_lock(r, request, *bounds))

    @rpc(pb.CheckTxnStatusResponse)
    def KvCheckTxnStatus(self, request, context):  # noqa: ANN001, ANN201, N802
        return self._command(request.context, _keys([request.primary_key]),
                             lambda r, _: percolator.check_txn_status(r, request))

    @rpc(pb.CheckSecondaryLocksResponse)
    def KvCheckSecondaryLocks(self, request, context):  # noqa: ANN001, ANN201, N802
        return self._command(request.context, _keys(request.keys),
                             lambda r, _: percolator.check_secondary_locks(r, request))

    @rpc(pb.TxnHeartBeatResponse)
    def KvTxnHeartBeat(self, request, context):  # noqa: ANN001, ANN201, N802
        return self._command(request.context, _keys([request.primary_lock]),
                             lambda r, _: percolator.txn_heart_beat(r, request))

    @rpc(pb.PessimisticLockResponse)
    def KvPessimisticLock(self, request, context):  # noqa: ANN001, ANN201, N802
        keys = _keys(m.key for m in request.mutations)
        return self._command(request.context, keys, lambda r, _: percolator.pessimistic_lock(r, request))

    @rpc(pb.PessimisticRollbackResponse)
    def KVPessimisticRollback(self, request, context):  # noqa: ANN001, ANN201, N802
        return self._command(request.context, _keys(request.keys),
                             lambda r, _: percolator.pessimistic_rollback(r, request))

    @rpc(pb.GCResponse)
    def KvGC(self, request, context):  # noqa: ANN001, ANN201, N802
        def gc(reader: TxnReader, bounds: Bounds) -> Outcome:
            return Outcome(percolator.gc(reader, request.safe_point, *bounds), pb.GCResponse())
        return self._command(request.context, [], gc)

    @rpc(pb.DeleteRangeResponse)
    def KvDeleteRange(self, request, context):  # noqa: ANN001, ANN201, N802
        start, end = request.start_key, request.end_key
        if end and end <= start:
            raise InvalidArgument(f"delete range is empty or inverted: [{start.hex()}, {end.hex()}) (hex)")
        with self._state.write_lock:
            info = check_raw_ranges(self._state.checker, request.context, [(start, end)])
            self._apply(info, [], percolator.delete_range(request))
        return pb.DeleteRangeResponse()

    # --- plumbing ----------------------------------------------------------------------------
    def _view(self, ctx: pb.Context, keys: list[bytes] | None = None) -> tuple[TxnReader, Bounds]:
        """Region check (of keys, or the region alone) and a consistent view, under the lock."""
        state = self._state
        with state.write_lock:
            info = state.checker.check_keys(ctx, encoded(keys or []))
            return TxnReader(state.engine.snapshot_cfs()), raw_bounds(info.region)

    def _command(self, ctx: pb.Context, keys: list[bytes],
                 command: Callable[[TxnReader, Bounds], Outcome]) -> object:
        state = self._state
        with state.write_lock:
            info = state.checker.check_keys(ctx, encoded(keys))
            outcome = command(TxnReader(state.engine.snapshot_cfs()), raw_bounds(info.region))
            self._apply(info, outcome.modifies)
        return outcome.response

    def _apply(self, info: RegionInfo, modifies: list[Modify], ranges: list[DeleteRange] = ()) -> None:
        """Here, then on every follower, as one batch each (under the caller's write lock)."""
        state = self._state
        if not modifies and not ranges:
            return
        state.engine.apply(modifies, ranges)
        for peer in info.region.peers:
            if peer.store_id != state.store_id:
                state.peers.apply_modifies(peer.store_id, info.id, modifies, ranges)


def _keys(keys: Iterable[bytes]) -> list[bytes]:
    """Transactional keys must not be empty (TiKV refuses them too)."""
    listed = list(keys)
    if any(not key for key in listed):
        raise InvalidArgument("a key of the request is empty")
    return listed
