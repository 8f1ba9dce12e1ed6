"""tikvpb.Tikv/Coprocessor: the checksum request (tp 105, tipb.ChecksumRequest) that TiDB's
ADMIN CHECKSUM and BR use to verify transactional data; other request types are answered with
other_error, as is a Context.api_version other than the store's (raw_checks.check_api_version).
The checksum is br_common.checksum's crc64xor / total_kvs / total_bytes over raw
user key ‖ value of every value visible at start_ts, as TiKV's checksum_crc64_xor and as BR
computes for backup files (a rewrite rule hashes old_prefix ‖ the key after new_prefix).
"""
from __future__ import annotations

from collections.abc import Iterable

from br_common.checksum import Checksum, RunningChecksum
from br_common.kvproto import checksum_pb2, coprocessor_pb2, kvrpcpb_pb2 as pb
from br_common.txn_checksum import REQ_TYPE_CHECKSUM
from br_devcluster.store.checksum_scan import add_visible, has_locks
from br_devcluster.store.errors import rpc
from br_devcluster.store.key_space import check_raw_ranges
from br_devcluster.store.raw_checks import check_api_version
from br_devcluster.store.state import StoreState
from br_devcluster.store.txn_reader import TxnReader
from br_devcluster.store.txn_reads import scan_entries



class LockedError(Exception):
    """A lock that may commit before start_ts: the client resolves it and retries."""

    def __init__(self, lock: pb.LockInfo) -> None:
        super().__init__(f"key {lock.key.hex()} is locked by txn {lock.lock_version}")
        self.lock = lock


class CoprocessorMethods:
    """The Coprocessor handler; the class it is mixed into sets self._state."""

    _state: StoreState

    @rpc(coprocessor_pb2.Response)
    def Coprocessor(self, request, context):  # noqa: ANN001, ANN201, N802
        check_api_version(request.context, "coprocessor")
        if request.tp != REQ_TYPE_CHECKSUM:
            return coprocessor_pb2.Response(other_error=f"unsupported coprocessor request type {request.tp}")
        checksum_request = checksum_pb2.ChecksumRequest()
        try:
            checksum_request.ParseFromString(request.data)
        except Exception:  # noqa: BLE001 - protobuf's DecodeError
            return coprocessor_pb2.Response(other_error="data is not a tipb.ChecksumRequest")
        ranges = [(r.start, r.end) for r in request.ranges]
        reader = self._checksum_view(request.context, ranges, request.start_ts)
        try:
            rule = checksum_request.rule if checksum_request.HasField("rule") else None
            checksum = checksum_ranges(reader, ranges, request.start_ts, request.context, rule)
        except LockedError as exc:
            return coprocessor_pb2.Response(locked=exc.lock)
        data = checksum_pb2.ChecksumResponse(checksum=checksum.crc64xor, total_kvs=checksum.total_kvs,
                                             total_bytes=checksum.total_bytes).SerializeToString()
        return coprocessor_pb2.Response(data=data)

    def _checksum_view(self, ctx: pb.Context, ranges: list[tuple[bytes, bytes]], start_ts: int) -> TxnReader:
        """Every range inside the region, the max ts raised to start_ts (TiKV's coprocessor
        check_memory_locks), then a consistent view."""
        state = self._state
        with state.write_lock:
            check_raw_ranges(state.checker, ctx, ranges)
            state.concurrency.update_max_ts(start_ts)
            return TxnReader(state.engine.snapshot_cfs())


def checksum_ranges(reader: TxnReader, ranges: Iterable[tuple[bytes, bytes]], ts: int, context: pb.Context,
                    rule: checksum_pb2.ChecksumRewriteRule | None = None) -> Checksum:
    """The checksum of the values visible at ts in the raw-key ranges; raises LockedError."""
    checksum = RunningChecksum()
    for start, end in ranges:
        if rule is None and not has_locks(reader.cfs, start, end or None):
            add_visible(reader.cfs, start, end or None, ts, checksum)  # the common case, one loop
            continue
        for raw_key, error, value in scan_entries(reader, start, end or None, ts, context):
            if error is not None:
                raise LockedError(error.locked)
            checksum.add(_hashed_key(raw_key, rule) if rule is not None else raw_key, value)
    return checksum.result()


def _hashed_key(raw_key: bytes, rule: checksum_pb2.ChecksumRewriteRule | None) -> bytes:
    if rule is None or not rule.new_prefix or not raw_key.startswith(rule.new_prefix):
        return raw_key
    return rule.old_prefix + raw_key[len(rule.new_prefix):]
