"""How a raw KV write becomes an engine entry under TiKV's API V1: the key and the value as
given, no timestamp, a delete removes the key (engine.write takes value None as a delete).

The names are those of the devcluster's former MVCC encoding of raw keys, kept so that the raw
service builds its write entries unchanged; commit_ts is accepted and not stored.
"""
from __future__ import annotations

TS_MAX = (1 << 64) - 1
TOMBSTONE = None  # a raw delete


def encode_key(user_key: bytes, commit_ts: int = 0) -> bytes:
    """The engine key of a raw key (without the data prefix, which cf_engine adds)."""
    return user_key


def encode_put(value: bytes) -> bytes:
    return value
