"""Where `--regions K` pre-splits a fresh devcluster: K-1 keys evenly spaced over the first two
bytes of user keys, memcomparable-encoded, because regions hold engine keys and TiKV's
transactional clients decode PD's region bounds (a raw 2-byte bound makes them fail). Raw API V1
keys compare against these bounds almost exactly as against the 2-byte keys (only raw keys that
start with those two bytes and six zero bytes fall on the other side).

PD's bootstrap layout (br_devcluster/pd/layout.py, split_keys) is to take its keys from here.
"""
from __future__ import annotations

from br_common.txn_codec import encode_bytes

KEY_SPACE = 65536  # split points are two big-endian bytes before encoding


def split_keys(region_count: int) -> list[bytes]:
    """The K-1 encoded split keys, ascending."""
    if not 1 <= region_count <= KEY_SPACE:
        raise ValueError(f"region count must be between 1 and {KEY_SPACE}, got {region_count}")
    return [encode_bytes((i * KEY_SPACE // region_count).to_bytes(2, "big")) for i in range(1, region_count)]
