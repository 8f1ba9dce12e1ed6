"""Region bounds in raw user-key space, for transactional work.

A transactional key k lives in TiKV at Key::from_raw(k) = encode_bytes(k), so PD's region bounds
are encoded (engine) keys, while txn backups, Coprocessor ranges and BR's txn ranges speak raw
user keys. raw_bounds maps a region to the raw keys it holds; the coordinator plans txn backups
with it and the devcluster store clamps its txn reads with it, so both agree on every boundary.
Bounds need not be valid encodings (a raw split key of a pre-split cluster): the answer is the
smallest raw key whose encoding is at or after the bound.
"""
from __future__ import annotations

from br_common.kvproto import metapb_pb2
from br_common.txn_codec import ENC_GROUP_SIZE, CodecError, decode_bytes, encode_bytes


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


def engine_bound(raw: bytes) -> bytes:
    """The engine key PD compares a raw range bound with (b"" stays unbounded)."""
    return encode_bytes(raw) if raw else b""
