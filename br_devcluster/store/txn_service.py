"""The transactional Kv* RPCs of tikvpb.Tikv (mixed into the servicer with the raw ones).

Each write command runs under the store's write lock (TiKV uses per-key latches; one lock
serialises commands, which the pure percolator functions assume): region check on the encoded
keys, one consistent view of the CFs, the command, one atomic batch applied here and on every
follower. Reads check the region and take the view under the lock, then read without it.
Every handler is the same few steps around a pure function, so they are built from a table
(which request fields are its keys, which function answers, whether it needs the region's
bounds, which TiKV CommandKind names it in errors, the ts it reads at). A read at a ts raises
the store's max ts first, under the lock (TiKV's concurrency manager: prepare_snap_ctx,
scan_lock, check_txn_status), and prewrite gets it, for async commit's min_commit_ts; 1PC is
refused the way TiKV may (see percolator). Context.api_version is checked first, as TiKV's storage does for every
command (raw_checks.check_api_version): a mismatch is its ApiVersionNotMatched, in KeyError.abort.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.pd_client import RegionInfo
from br_common.txn_codec import TS_MAX
from br_devcluster.store import percolator, txn_reads
from br_devcluster.store.errors import InvalidArgument, rpc
from br_devcluster.store.key_space import check_raw_ranges, encoded, raw_bounds
from br_devcluster.store.percolator import Outcome
from br_devcluster.store.raw_checks import check_api_version
from br_devcluster.store.state import StoreState
from br_devcluster.store.txn_reader import DeleteRange, Modify, TxnReader

Bounds = tuple[bytes, bytes | None]
KeysOf = Callable[[Any], Iterable[bytes]]
TsOf = Callable[[Any], int]


def _no_ts(request: Any) -> int:
    """Commands that read at no ts of their own (TS_MAX leaves the max ts alone, as in TiKV)."""
    return TS_MAX


def _status_ts(request: pb.CheckTxnStatusRequest) -> int:
    """check_txn_status.rs: the largest of lock_ts, current_ts and caller_start_ts below TS_MAX."""
    return max((ts for ts in (request.lock_ts, request.current_ts, request.caller_start_ts) if ts != TS_MAX),
               default=TS_MAX)


def _no_keys(request: Any) -> list[bytes]:
    """Region-wide requests (scans, ScanLock, GC): only the region is checked."""
    return []


def _keys_field(request: Any) -> Iterable[bytes]:
    return request.keys


def _mutation_keys(request: Any) -> Iterable[bytes]:
    return (m.key for m in request.mutations)


def _read(kind: str, response_type: type, keys_of: KeysOf, read: Callable[..., Any], ts_of: TsOf,
          bounded: bool = False) -> Callable:
    """A read handler: region check, max ts and view under the lock, then read(reader, request[, bounds])."""
    def handler(self: "TxnMethods", request: Any, context: Any) -> Any:
        check_api_version(request.context, kind)
        reader, bounds = self._view(request.context, _keys(keys_of(request)), ts_of(request))
        return read(reader, request, *bounds) if bounded else read(reader, request)
    handler.__name__ = read.__name__  # what the rpc wrapper's log names
    return rpc(response_type)(handler)


def _write(kind: str, response_type: type, keys_of: KeysOf, command: Callable[..., Outcome],
           bounded: bool = False, ts_of: TsOf = _no_ts) -> Callable:
    """A command handler: command(reader, request[, bounds]) under the lock, its batch applied."""
    def handler(self: "TxnMethods", request: Any, context: Any) -> Any:
        check_api_version(request.context, kind)
        def run(reader: TxnReader, bounds: Bounds, _max_ts: int) -> Outcome:
            return command(reader, request, *bounds) if bounded else command(reader, request)
        return self._command(request.context, _keys(keys_of(request)), run, ts_of(request))
    handler.__name__ = command.__name__
    return rpc(response_type)(handler)


def _prewrite(self: "TxnMethods", request: pb.PrewriteRequest, context: Any) -> pb.PrewriteResponse:
    """Prewrite gets the store's max ts (under the lock, so no read slips in between); async
    commit first syncs it with PD if this store has not since it began leading the region."""
    check_api_version(request.context, "prewrite")
    def run(reader: TxnReader, _bounds: Bounds, max_ts: int) -> Outcome:
        return percolator.prewrite(reader, request, max_ts)
    return self._command(request.context, _keys(_mutation_keys(request)), run, TS_MAX,
                         sync_max_ts=request.use_async_commit)


_prewrite.__name__ = "prewrite"


def _gc(reader: TxnReader, request: pb.GCRequest, lower: bytes, upper: bytes | None) -> Outcome:
    return Outcome(percolator.gc(reader, request.safe_point, lower, upper), pb.GCResponse())


class TxnMethods:
    """Kv* handlers; the class it is mixed into sets self._state."""

    _state: StoreState

    KvGet = _read("get", pb.GetResponse, lambda r: [r.key], txn_reads.kv_get, lambda r: r.version)
    KvBatchGet = _read("batch_get", pb.BatchGetResponse, _keys_field, txn_reads.kv_batch_get, lambda r: r.version)
    KvScan = _read("scan", pb.ScanResponse, _no_keys, txn_reads.kv_scan, lambda r: r.version, bounded=True)
    KvScanLock = _read("scan_lock", pb.ScanLockResponse, _no_keys, txn_reads.kv_scan_lock,
                       lambda r: r.max_version, bounded=True)

    KvPrewrite = rpc(pb.PrewriteResponse)(_prewrite)
    KvCommit = _write("commit", pb.CommitResponse, _keys_field, percolator.commit)
    KvCleanup = _write("cleanup", pb.CleanupResponse, lambda r: [r.key], percolator.cleanup)
    KvBatchRollback = _write("rollback", pb.BatchRollbackResponse, _keys_field, percolator.batch_rollback)
    KvResolveLock = _write("resolve_lock", pb.ResolveLockResponse, _keys_field, percolator.resolve_lock, bounded=True)
    KvCheckTxnStatus = _write("check_txn_status", pb.CheckTxnStatusResponse,
                              lambda r: [r.primary_key], percolator.check_txn_status, ts_of=_status_ts)
    KvCheckSecondaryLocks = _write("check_secondary_locks", pb.CheckSecondaryLocksResponse,
                                   _keys_field, percolator.check_secondary_locks)
    KvTxnHeartBeat = _write("txn_heart_beat", pb.TxnHeartBeatResponse,
                            lambda r: [r.primary_lock], percolator.txn_heart_beat)
    KvPessimisticLock = _write("acquire_pessimistic_lock", pb.PessimisticLockResponse,
                               _mutation_keys, percolator.pessimistic_lock)
    KVPessimisticRollback = _write("pessimistic_rollback", pb.PessimisticRollbackResponse,
                                   _keys_field, percolator.pessimistic_rollback)
    KvGC = _write("gc", pb.GCResponse, _no_keys, _gc, bounded=True)

    @rpc(pb.DeleteRangeResponse)
    def KvDeleteRange(self, request, context):  # noqa: ANN001, ANN201, N802
        check_api_version(request.context, "delete_range")
        start, end = request.start_key, request.end_key
        if end and end <= start:
            raise InvalidArgument(f"delete range is empty or inverted: [{start.hex()}, {end.hex()}) (hex)")
        with self._state.write_lock:
            info = check_raw_ranges(self._state.checker, request.context, [(start, end)])
            self._apply(info, [], percolator.delete_range(request))
        return pb.DeleteRangeResponse()

    # --- plumbing ----------------------------------------------------------------------------
    def _view(self, ctx: pb.Context, keys: list[bytes], read_ts: int) -> tuple[TxnReader, Bounds]:
        """Region check (of keys, or the region alone), max ts and a consistent view, under the lock."""
        state = self._state
        with state.write_lock:
            info = state.checker.check_keys(ctx, encoded(keys))
            state.concurrency.update_max_ts(read_ts)
            return TxnReader(state.engine.snapshot_cfs()), raw_bounds(info.region)

    def _command(self, ctx: pb.Context, keys: list[bytes],
                 command: Callable[[TxnReader, Bounds, int], Outcome], read_ts: int,
                 sync_max_ts: bool = False) -> object:
        state = self._state
        with state.write_lock:
            info = state.checker.check_keys(ctx, encoded(keys))
            state.concurrency.update_max_ts(read_ts)
            if sync_max_ts and not state.concurrency.is_synced(info.id):
                state.concurrency.sync(info.id, state.pd.tso())
            outcome = command(TxnReader(state.engine.snapshot_cfs()), raw_bounds(info.region),
                              state.concurrency.max_ts())
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
