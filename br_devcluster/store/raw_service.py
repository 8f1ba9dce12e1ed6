"""tikvpb.Tikv: raw KV reads and writes (MVCC underneath, leader-only, replicated writes)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice

from br_common.checksum import Checksum
from br_common.kvproto import kvrpcpb_pb2, metapb_pb2, tikvpb_pb2_grpc
from br_common.pd_client import RegionInfo
from br_common.redaction import show_key
from br_devcluster.store import mvcc
from br_devcluster.store.engine import Snapshot
from br_devcluster.store.errors import InvalidArgument, StoreError, rpc
from br_devcluster.store.regions import (
    clamp_end,
    key_in_region,
    key_not_in_region,
    range_in_region,
)
from br_devcluster.store.state import StoreState, read_ts

Mutation = tuple[bytes, bytes | None]  # (user key, value or None = delete)
SUPPORTED_CFS = ("", "default")


class RawService(tikvpb_pb2_grpc.TikvServicer):
    def __init__(self, state: StoreState) -> None:
        self._state = state

    # --- writes ------------------------------------------------------------------------------
    @rpc(kvrpcpb_pb2.RawPutResponse)
    def RawPut(self, request, context):  # noqa: ANN001, ANN201, N802
        _check_write_options(request.cf, request.ttl)
        self._commit(request.context, [(_nonempty(request.key), request.value)])
        return kvrpcpb_pb2.RawPutResponse()

    @rpc(kvrpcpb_pb2.RawBatchPutResponse)
    def RawBatchPut(self, request, context):  # noqa: ANN001, ANN201, N802
        _check_write_options(request.cf, request.ttl or max(request.ttls, default=0))
        mutations = [(_nonempty(pair.key), pair.value) for pair in request.pairs]
        if mutations:
            self._commit(request.context, mutations)
        return kvrpcpb_pb2.RawBatchPutResponse()

    @rpc(kvrpcpb_pb2.RawDeleteResponse)
    def RawDelete(self, request, context):  # noqa: ANN001, ANN201, N802
        _check_write_options(request.cf, 0)
        self._commit(request.context, [(_nonempty(request.key), None)])
        return kvrpcpb_pb2.RawDeleteResponse()

    def _commit(self, ctx: kvrpcpb_pb2.Context, mutations: list[Mutation]) -> None:
        """Check, take a commit ts, write locally and on every follower, all under the write lock."""
        state = self._state
        with state.write_lock:
            info = state.checker.check_keys(ctx, [key for key, _ in mutations])
            commit_ts = state.pd.tso()
            entries = [(mvcc.encode_key(key, commit_ts), mvcc.TOMBSTONE if value is None else mvcc.encode_put(value))
                       for key, value in mutations]
            state.engine.write(entries)
            for peer in info.region.peers:
                if peer.store_id != state.store_id:
                    state.peers.apply_writes(peer.store_id, info.id, entries)

    # --- reads -------------------------------------------------------------------------------
    @rpc(kvrpcpb_pb2.RawGetResponse)
    def RawGet(self, request, context):  # noqa: ANN001, ANN201, N802
        ts = read_ts(context)
        _check_cf(request.cf)
        key = _nonempty(request.key)
        _, snapshot = self._read(lambda: self._state.checker.check_keys(request.context, [key]))
        value = snapshot.get(key, ts)
        if value is None:
            return kvrpcpb_pb2.RawGetResponse(not_found=True)
        return kvrpcpb_pb2.RawGetResponse(value=value)

    @rpc(kvrpcpb_pb2.RawScanResponse)
    def RawScan(self, request, context):  # noqa: ANN001, ANN201, N802
        ts = read_ts(context)
        _check_cf(request.cf)
        info, snapshot = self._read(lambda: self._state.checker.leader_region(request.context))
        lower, upper = scan_bounds(request, info.region)
        if request.limit == 0:
            return kvrpcpb_pb2.RawScanResponse()
        if request.reverse:
            pairs = snapshot.scan_reverse(upper, lower, ts)
        else:
            pairs = snapshot.scan(lower, upper, ts)
        kvs = [kvrpcpb_pb2.KvPair(key=k, value=b"" if request.key_only else v)
               for k, v in islice(pairs, request.limit)]
        return kvrpcpb_pb2.RawScanResponse(kvs=kvs)

    @rpc(kvrpcpb_pb2.RawChecksumResponse)
    def RawChecksum(self, request, context):  # noqa: ANN001, ANN201, N802
        ts = read_ts(context)
        if request.algorithm != kvrpcpb_pb2.Crc64_Xor:
            raise StoreError(f"unsupported checksum algorithm {request.algorithm}")
        info, snapshot = self._read(lambda: self._state.checker.leader_region(request.context))
        checksum = Checksum()
        for start, end in checksum_ranges(request.ranges, info.region):
            checksum.add_pairs(snapshot.scan(start, end, ts))
        return kvrpcpb_pb2.RawChecksumResponse(checksum=checksum.crc64xor, total_kvs=checksum.total_kvs,
                                               total_bytes=checksum.total_bytes)

    def _read(self, check: Callable[[], RegionInfo]) -> tuple[RegionInfo, Snapshot]:
        """Region check and snapshot under the write lock: no write or leader change in between."""
        with self._state.write_lock:
            return check(), self._state.engine.snapshot()


def scan_bounds(request: kvrpcpb_pb2.RawScanRequest, region: metapb_pb2.Region) -> tuple[bytes, bytes]:
    """[lower, upper) of a scan, open ends clamped to the region; forward scans start at
    start_key, reverse ones end before it (as TiKV's raw scan)."""
    if request.reverse:
        lower, upper = request.end_key or region.start_key, clamp_end(request.start_key, region)
    else:
        lower, upper = request.start_key, clamp_end(request.end_key, region)
    if upper and upper < lower:
        raise InvalidArgument(f"scan range is empty or inverted: [{lower!r}, {upper!r})")
    _require_inside(lower, upper, region)
    return lower, upper


def _require_inside(lower: bytes, upper: bytes, region: metapb_pb2.Region) -> None:
    """KeyNotInRegion naming the first end of [lower, upper) outside the region."""
    if not range_in_region(lower, upper, region):
        raise key_not_in_region(lower if not key_in_region(lower, region) else upper, region)


def checksum_ranges(ranges: list[kvrpcpb_pb2.KeyRange], region: metapb_pb2.Region) -> Iterator[tuple[bytes, bytes]]:
    """The requested ranges (the whole region when none), each inside the region."""
    if not ranges:
        yield region.start_key, region.end_key
        return
    for key_range in ranges:
        start, end = key_range.start_key, clamp_end(key_range.end_key, region)
        if end and end < start:
            raise StoreError(f"checksum range is inverted: [{show_key(start)}, {show_key(end)}) (hex)")
        _require_inside(start, end, region)
        yield start, end


def _nonempty(key: bytes) -> bytes:
    if not key:
        raise StoreError("key must not be empty")
    return key


def _check_cf(cf: str) -> None:
    if cf not in SUPPORTED_CFS:
        raise InvalidArgument(f"unsupported column family {cf!r} (raw KV uses 'default')")


def _check_write_options(cf: str, ttl: int) -> None:
    _check_cf(cf)
    if ttl:
        raise StoreError("TTL is not supported (API V1)")
