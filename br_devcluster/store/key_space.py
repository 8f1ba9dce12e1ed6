"""Region bounds for transactional requests. Regions hold engine keys (without b"z"): a txn key
k lives at encode_bytes(k), so TiKV checks Key::from_raw(k) against the region; the pure txn
functions (txn_reads, percolator) take raw-key bounds instead, which raw_bounds derives.
"""
from __future__ import annotations

from collections.abc import Iterable

from br_common.kvproto import kvrpcpb_pb2 as pb, metapb_pb2
from br_common.pd_client import RegionInfo
from br_common.txn_codec import ENC_GROUP_SIZE, CodecError, decode_bytes, encode_bytes
from br_devcluster.store.regions import RegionChecker, key_not_in_region


def smallest_raw_at_or_after(bound: bytes) -> bytes:
    """The smallest raw key whose encoding is >= bound (bound may be any engine key, even one
    that is no valid encoding, e.g. a raw split key)."""
    if not bound:
        return b""
    try:
        key, rest = decode_bytes(bound)
    except CodecError:
        return _first_raw_after_invalid(bound)
    # enc(key) + rest lies between enc(key) and the encoding of key's successor key + b"\0"
    return key + b"\x00" if rest else key


def _first_raw_after_invalid(bound: bytes) -> bytes:
    """Keep the whole groups that decode; the answer extends them by a prefix of the next
    group's bytes (or that plus a zero byte): the smallest such candidate that is large enough."""
    whole = b""
    offset = 0
    step = ENC_GROUP_SIZE + 1
    while len(bound) - offset >= step and bound[offset + ENC_GROUP_SIZE] == 0xFF:
        whole += bound[offset:offset + ENC_GROUP_SIZE]
        offset += step
    tail = bound[offset:offset + ENC_GROUP_SIZE]
    candidates = {whole + tail[:i] + extra for i in range(len(tail) + 1) for extra in (b"", b"\x00")}
    candidates |= {whole + tail + b"\x00" * (ENC_GROUP_SIZE - len(tail))} if len(tail) < ENC_GROUP_SIZE else set()
    fitting = [c for c in candidates if encode_bytes(c) >= bound]
    return min(fitting) if fitting else _successor_of_group(whole + tail)


def _successor_of_group(prefix: bytes) -> bytes:
    """Past every key starting with a group of 0xFF bytes: extend the prefix (unreachable in practice)."""
    return prefix + b"\xff"


def raw_bounds(region: metapb_pb2.Region) -> tuple[bytes, bytes | None]:
    """The region's [lower, upper) in raw-key space for txn keys (upper None: unbounded)."""
    upper = smallest_raw_at_or_after(region.end_key) if region.end_key else None
    return smallest_raw_at_or_after(region.start_key), upper


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
    return [encode_bytes(key) for key in keys]
