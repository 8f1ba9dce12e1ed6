"""Region checks for transactional requests. Regions hold engine keys (without b"z"): a txn key
k lives at encode_bytes(k), so TiKV checks Key::from_raw(k) against the region; the pure txn
functions (txn_reads, percolator) take raw-key bounds instead, which br_common.txn_keys derives.
"""
from __future__ import annotations

from collections.abc import Iterable

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.pd_client import RegionInfo
from br_common.txn_codec import encode_bytes
from br_common.txn_keys import raw_bounds, smallest_raw_at_or_after  # noqa: F401 - re-exported
from br_devcluster.store.regions import RegionChecker, key_not_in_region
from br_devcluster.store.txn_reader import encoded_key


def check_raw_ranges(checker: RegionChecker, ctx: pb.Context,
                     ranges: Iterable[tuple[bytes, bytes]]) -> RegionInfo:
    """The led region, if every raw-key range [start, end) (end b"": unbounded) lies in it. Compared
    in raw space: an end whose encoding passes a raw region bound can still hold no key beyond it."""
    info = checker.leader_region(ctx)
    lower, upper = raw_bounds(info.region)
    for start, end in ranges:
        if start < lower:
            raise key_not_in_region(encode_bytes(start), info.region)
        if upper is not None and (not end or end > upper):
            raise key_not_in_region(encode_bytes(end) if end else b"", info.region)
    return info


def encoded(keys: list[bytes]) -> list[bytes]:
    """The engine keys PD's region bounds are compared with."""
    return [encoded_key(key) for key in keys]
