"""tikvpb.Tikv: raw KV reads and writes as TiKV answers them (MVCC underneath, leader-only,
replicated writes).

Each handler checks in TiKV's order: the request's API version, then the region (RegionNotFound,
NotLeader, EpochNotMatch, KeyNotInRegion), then the column family and TTLs, whose errors go into
the response (raw_checks). Scans are clamped to the region as TiKV's region snapshot clamps
them, so that a client sending its own end key to every region gets each region's share.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from br_common.checksum import Checksum
from br_common.kvproto import kvrpcpb_pb2, metapb_pb2, tikvpb_pb2_grpc
from br_common.pd_client import RegionInfo
from br_common.redaction import show_key
from br_devcluster.store import mvcc
from br_devcluster.store.engine import Snapshot
from br_devcluster.store.errors import StoreError, rpc
from br_devcluster.store.raw_checks import (
    batch_scan_ranges,
    check_api_version,
    check_cf,
    check_delete_range,
    check_no_ttl,
)
from br_devcluster.store.regions import (
    clamp_end,
    clamp_scan,
    is_empty_range,
    key_in_region,
    key_not_in_region,
    range_in_region,
)
from br_devcluster.store.state import StoreState, read_ts

Mutation = tuple[bytes, bytes | None]  # (user key, value or None = delete)
LATEST = mvcc.TS_MAX  # writes that read first (CAS, delete range) read the latest data


class RawService(tikvpb_pb2_grpc.TikvServicer):
    def __init__(self, state: StoreState) -> None:
        self._state = state

    # --- writes ------------------------------------------------------------------------------
    @rpc(kvrpcpb_pb2.RawPutResponse)
    def RawPut(self, request, context):  # noqa: ANN001, ANN201, N802
        _check_write(request.context, "raw_put", request.cf, [request.ttl])
        self._commit(request.context, [(_nonempty(request.key), request.value)])
        return kvrpcpb_pb2.RawPutResponse()

    @rpc(kvrpcpb_pb2.RawBatchPutResponse)
    def RawBatchPut(self, request, context):  # noqa: ANN001, ANN201, N802
        _check_write(request.context, "raw_batch_put", request.cf, [request.ttl, *request.ttls])
        self._commit(request.context, [(_nonempty(pair.key), pair.value) for pair in request.pairs])
        return kvrpcpb_pb2.RawBatchPutResponse()

    @rpc(kvrpcpb_pb2.RawDeleteResponse)
    def RawDelete(self, request, context):  # noqa: ANN001, ANN201, N802
        _check_write(request.context, "raw_delete", request.cf, [])
        self._commit(request.context, [(_nonempty(request.key), None)])
        return kvrpcpb_pb2.RawDeleteResponse()

    @rpc(kvrpcpb_pb2.RawBatchDeleteResponse)
    def RawBatchDelete(self, request, context):  # noqa: ANN001, ANN201, N802
        _check_write(request.context, "raw_batch_delete", request.cf, [])
        self._commit(request.context, [(_nonempty(key), None) for key in request.keys])
        return kvrpcpb_pb2.RawBatchDeleteResponse()

    @rpc(kvrpcpb_pb2.RawDeleteRangeResponse)
    def RawDeleteRange(self, request, context):  # noqa: ANN001, ANN201, N802
        """Delete every key of [start_key, end_key), one delete per key found, through the same
        write path as RawBatchDelete. The range must lie inside the region, as TiKV's apply of a
        DeleteRange command checks."""
        _check_write(request.context, "raw_delete_range", request.cf, [])
        start, end = request.start_key, request.end_key
        check_delete_range(start, end)

        def plan(snapshot: Snapshot) -> list[Mutation]:
            return [(key, None) for key, _ in snapshot.scan(start, end, LATEST)]

        self._read_modify_write(lambda: self._state.checker.check_ranges(request.context, [(start, end)]), plan)
        return kvrpcpb_pb2.RawDeleteRangeResponse()

    @rpc(kvrpcpb_pb2.RawCASResponse)
    def RawCompareAndSwap(self, request, context):  # noqa: ANN001, ANN201, N802
        """Write the value if the key's current value is previous_value (or the key is absent, with
        previous_not_exist); answer the current value whether or not it was swapped."""
        _check_write(request.context, "raw_compare_and_swap", request.cf, [request.ttl])
        key = _nonempty(request.key)
        response = kvrpcpb_pb2.RawCASResponse()

        def plan(snapshot: Snapshot) -> list[Mutation]:
            current = snapshot.get(key, LATEST)
            response.previous_not_exist = current is None
            response.previous_value = current or b""
            response.succeed = _cas_matches(request, current)
            return [(key, request.value)] if response.succeed else []

        self._read_modify_write(lambda: self._state.checker.check_keys(request.context, [key]), plan)
        return response

    def _commit(self, ctx: kvrpcpb_pb2.Context, mutations: list[Mutation]) -> None:
        """Blind writes: region and keys checked, then applied, under the write lock."""
        self._read_modify_write(lambda: self._state.checker.check_keys(ctx, [key for key, _ in mutations]),
                                lambda _snapshot: mutations)

    def _read_modify_write(self, check: Callable[[], RegionInfo],
                           plan: Callable[[Snapshot], list[Mutation]]) -> None:
        """Under the write lock: check the region, plan the mutations on a snapshot, take a commit
        ts, write them locally and on every follower. Nothing planned, nothing written."""
        state = self._state
        with state.write_lock:
            info = check()
            mutations = plan(state.engine.snapshot())
            if not mutations:
                return
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
        check_api_version(request.context, "raw_get")
        key = _nonempty(request.key)
        _, snapshot = self._read(lambda: self._state.checker.check_keys(request.context, [key]))
        check_cf(request.cf)
        value = snapshot.get(key, ts)
        if value is None:
            return kvrpcpb_pb2.RawGetResponse(not_found=True)
        return kvrpcpb_pb2.RawGetResponse(value=value)

    @rpc(kvrpcpb_pb2.RawBatchGetResponse)
    def RawBatchGet(self, request, context):  # noqa: ANN001, ANN201, N802
        """The pairs of the keys found, in request order (absent keys are left out, as TiKV)."""
        ts = read_ts(context)
        check_api_version(request.context, "raw_batch_get")
        keys = [_nonempty(key) for key in request.keys]
        _, snapshot = self._read(lambda: self._state.checker.check_keys(request.context, keys))
        check_cf(request.cf)
        found = ((key, snapshot.get(key, ts)) for key in keys)
        return kvrpcpb_pb2.RawBatchGetResponse(
            pairs=[kvrpcpb_pb2.KvPair(key=key, value=value) for key, value in found if value is not None])

    @rpc(kvrpcpb_pb2.RawGetKeyTTLResponse)
    def RawGetKeyTTL(self, request, context):  # noqa: ANN001, ANN201, N802
        """API V1 keeps no TTL: an existing key answers ttl 0 (no expiry), as a TTL-enabled TiKV
        answers for a key written without one; a missing key answers not_found."""
        check_api_version(request.context, "raw_get_key_ttl")
        key = _nonempty(request.key)
        _, snapshot = self._read(lambda: self._state.checker.check_keys(request.context, [key]))
        check_cf(request.cf)
        if snapshot.get(key, LATEST) is None:
            return kvrpcpb_pb2.RawGetKeyTTLResponse(not_found=True)
        return kvrpcpb_pb2.RawGetKeyTTLResponse(ttl=0)

    @rpc(kvrpcpb_pb2.RawScanResponse)
    def RawScan(self, request, context):  # noqa: ANN001, ANN201, N802
        ts = read_ts(context)
        check_api_version(request.context, "raw_scan")
        info, snapshot = self._read(lambda: self._state.checker.leader_region(request.context))
        check_cf(request.cf)
        lower, upper = clamp_scan(request.start_key, request.end_key, request.reverse, info.region)
        kvs = scan_pairs(snapshot, lower, upper, ScanOptions(request.reverse, request.limit, request.key_only, ts))
        return kvrpcpb_pb2.RawScanResponse(kvs=kvs)

    @rpc(kvrpcpb_pb2.RawBatchScanResponse)
    def RawBatchScan(self, request, context):  # noqa: ANN001, ANN201, N802
        """Up to each_limit pairs of every range, one range after the other; a range without an end
        ends where the next one starts (the last one: at the region's end)."""
        ts = read_ts(context)
        check_api_version(request.context, "raw_batch_scan")
        info, snapshot = self._read(lambda: self._state.checker.leader_region(request.context))
        check_cf(request.cf)
        options = ScanOptions(request.reverse, request.each_limit, request.key_only, ts)
        kvs = []
        for start, end in batch_scan_ranges(request.ranges, request.reverse):
            lower, upper = clamp_scan(start, end, request.reverse, info.region)
            kvs += scan_pairs(snapshot, lower, upper, options)
        return kvrpcpb_pb2.RawBatchScanResponse(kvs=kvs)

    @rpc(kvrpcpb_pb2.RawChecksumResponse)
    def RawChecksum(self, request, context):  # noqa: ANN001, ANN201, N802
        ts = read_ts(context)
        if request.algorithm != kvrpcpb_pb2.Crc64_Xor:
            raise StoreError(f"unsupported checksum algorithm {request.algorithm}")
        check_api_version(request.context, "raw_checksum")
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


@dataclass(frozen=True)
class ScanOptions:
    """How a scan reads: direction, at most `limit` pairs (0: none, as TiKV), keys only, at ts."""
    reverse: bool
    limit: int
    key_only: bool
    ts: int


def scan_pairs(snapshot: Snapshot, lower: bytes, upper: bytes, options: ScanOptions) -> list[kvrpcpb_pb2.KvPair]:
    """The visible pairs of [lower, upper) (upper b"" = unbounded), ascending or descending."""
    if options.limit == 0 or is_empty_range(lower, upper):
        return []
    if options.reverse:
        pairs = snapshot.scan_reverse(upper, lower, options.ts)
    else:
        pairs = snapshot.scan(lower, upper, options.ts)
    return [kvrpcpb_pb2.KvPair(key=key, value=b"" if options.key_only else value)
            for key, value in islice(pairs, options.limit)]


def checksum_ranges(ranges: list[kvrpcpb_pb2.KeyRange], region: metapb_pb2.Region) -> Iterator[tuple[bytes, bytes]]:
    """The requested ranges (the whole region when none), each inside the region."""
    if not ranges:
        yield region.start_key, region.end_key
        return
    for key_range in ranges:
        start, end = key_range.start_key, clamp_end(key_range.end_key, region)
        if end and end < start:
            raise StoreError(f"checksum range is inverted: [{show_key(start)}, {show_key(end)}) (hex)")
        if not range_in_region(start, end, region):
            raise key_not_in_region(start if not key_in_region(start, region) else end, region)
        yield start, end


def _cas_matches(request: kvrpcpb_pb2.RawCASRequest, current: bytes | None) -> bool:
    if request.previous_not_exist:
        return current is None
    return current is not None and current == request.previous_value


def _check_write(ctx: kvrpcpb_pb2.Context, command: str, cf: str, ttls: Iterable[int]) -> None:
    """What TiKV checks of a raw write before proposing it: API version, TTLs, column family."""
    check_api_version(ctx, command)
    check_no_ttl(ttls)
    check_cf(cf)


def _nonempty(key: bytes) -> bytes:
    if not key:
        raise StoreError("key must not be empty")
    return key
