"""The Coprocessor checksum of transactional data at a ts (TiDB's ADMIN CHECKSUM, BR's checksum):
coprocessor.Request tp 105 carrying a tipb ChecksumRequest, sent per region to its leader over the
raw-key ranges the region holds, answering crc64xor / total_kvs / total_bytes over raw user key ||
value of every value visible at the ts, the very formula of txn backup files (br_common.txn_files).

Region errors are retried through PD (RawKVClient's routing); a lock that blocks the read is
resolved through its primary and the region read again (br_common.lock_resolver), so the answer is
always a consistent snapshot. Plain kvproto: true against a real TiKV.

    with TxnChecksum(pd) as client:
        client.checksum_at(b"", b"", ts)      # the whole txn key space at ts
"""
from __future__ import annotations

from collections.abc import Callable
from itertools import count

from br_common.checksum import Checksum
from br_common.kvproto import checksum_pb2, coprocessor_pb2, kvrpcpb_pb2 as pb, metapb_pb2
from br_common.lock_resolver import LockResolver
from br_common.pd_client import RegionInfo
from br_common.tikv_client import RawKVError, summed_in_store_turns
from br_common.txn_codec import encode_bytes
from br_common.txn_keys import engine_bound, raw_bounds

REQ_TYPE_CHECKSUM = 105  # TiDB's kv.ReqTypeChecksum


class ChecksumError(RawKVError):
    """The store could not compute the checksum (other_error); the message names the region."""


class TxnChecksum(LockResolver):
    def checksum_at(self, start: bytes, end: bytes, ts: int, workers: int = 4) -> Checksum:
        """Of the values visible at ts in the raw-key range [start, end) (end b"": unbounded): one
        request per region, `workers` at a time (the regions' stores count in parallel), merged."""
        pieces = self._region_pieces(start, end) or [(0, (start, end))]
        return summed_in_store_turns(pieces, lambda piece: self._checksum_piece(*piece, ts), workers)

    def _region_pieces(self, start: bytes, end: bytes) -> list[tuple[int, tuple[bytes, bytes]]]:
        """(leader store, piece) of [start, end) cut at PD's region bounds (raw keys); a region that
        splits or moves before its piece is read only adds a step to that piece's walk."""
        pieces = []
        for info in self.pd.scan_regions(engine_bound(start), engine_bound(end)):
            lower, upper = raw_bounds(info.region)
            low = max(start, lower)
            high = end if upper is None or (end and end < upper) else upper
            if not high or low < high:
                pieces.append((info.leader_store_id, (low, high)))
        return pieces

    def _checksum_piece(self, start: bytes, end: bytes, ts: int) -> Checksum:
        """A sequential walk over [start, end), region by region."""
        total, cursor = Checksum(), start
        while True:
            info, part = self._region_checksum(cursor, end, ts)
            total = total.merge(part)
            region_end = raw_bounds(info.region)[1]
            if region_end is None or (end and region_end >= end):
                return total
            cursor = region_end

    def _region_checksum(self, cursor: bytes, end: bytes, ts: int) -> tuple[RegionInfo, Checksum]:
        """The part of [cursor, end) in the region holding cursor; locks resolved, then read again."""
        for attempt in count():
            info, response = self._call_at(encode_bytes(cursor), "Coprocessor", _request_builder(cursor, end, ts))
            if response.other_error:
                raise ChecksumError(f"checksum at ts {ts} on region {info.id}: {response.other_error}")
            if not response.HasField("locked"):
                part = checksum_pb2.ChecksumResponse.FromString(response.data)
                return info, Checksum(crc64xor=part.checksum, total_kvs=part.total_kvs,
                                      total_bytes=part.total_bytes)
            resolution = self.resolve(response.locked, ts)
            if not resolution.resolved:
                self._backoff(attempt, f"checksum at ts {ts} on region {info.id}", resolution.detail)
        raise AssertionError("unreachable")


def _request_builder(cursor: bytes, end: bytes, ts: int) -> Callable[[pb.Context, metapb_pb2.Region],
                                                                     coprocessor_pb2.Request]:
    def build(ctx: pb.Context, region: metapb_pb2.Region) -> coprocessor_pb2.Request:
        lower, upper = raw_bounds(region)
        high = end if upper is None or (end and end < upper) else upper
        data = checksum_pb2.ChecksumRequest(algorithm=checksum_pb2.Crc64_Xor).SerializeToString()
        return coprocessor_pb2.Request(context=ctx, tp=REQ_TYPE_CHECKSUM, data=data, start_ts=ts,
                                       ranges=[coprocessor_pb2.KeyRange(start=max(cursor, lower), end=high)])
    return build
