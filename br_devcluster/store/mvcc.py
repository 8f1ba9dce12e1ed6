"""MVCC key/value encoding of the devcluster store (see docs/ARCHITECTURE.md, "Devcluster model").

An encoded key is memcomparable(user_key) + 8-byte big-endian ~commit_ts: byte order of the
encoded keys is user-key order, then newest version first. memcomparable escapes b"\\x00" as
b"\\x00\\xff" and ends with b"\\x00\\x01", so no encoded user key is a prefix of another and
appending the timestamp keeps the order. Values are b"P" + value (put) or b"D" (tombstone).
"""
from __future__ import annotations

from typing import NamedTuple

TS_BYTES = 8
TS_MAX = (1 << 64) - 1
_ESCAPE = b"\x00\xff"
_TERMINATOR = b"\x00\x01"
PUT_FLAG = b"P"
TOMBSTONE = b"D"


class MvccError(ValueError):
    """An encoded key or value that this store did not write (corrupt data or foreign SST)."""


class Version(NamedTuple):
    user_key: bytes
    commit_ts: int
    value: bytes | None  # None: tombstone


def memcomparable(user_key: bytes) -> bytes:
    return user_key.replace(b"\x00", _ESCAPE) + _TERMINATOR


def encode_key(user_key: bytes, commit_ts: int) -> bytes:
    if not 0 <= commit_ts <= TS_MAX:
        raise MvccError(f"commit ts {commit_ts} out of range")
    return memcomparable(user_key) + (TS_MAX ^ commit_ts).to_bytes(TS_BYTES, "big")


def decode_key(encoded: bytes) -> tuple[bytes, int]:
    """(user_key, commit_ts) of an encoded key."""
    body, ts_bytes = encoded[:-TS_BYTES], encoded[-TS_BYTES:]
    if len(ts_bytes) != TS_BYTES or not body.endswith(_TERMINATOR):
        raise MvccError(f"not an MVCC key: {encoded!r}")
    escaped = body[: -len(_TERMINATOR)]
    # every \x00 of the user key was written as \x00\xff: any other \x00 means corruption
    if escaped.count(b"\x00") != escaped.count(_ESCAPE):
        raise MvccError(f"bad escaping in MVCC key: {encoded!r}")
    return escaped.replace(_ESCAPE, b"\x00"), TS_MAX ^ int.from_bytes(ts_bytes, "big")


def user_key_prefix_len(encoded: bytes) -> int:
    """Length of the memcomparable part: versions of one user key share exactly this prefix."""
    return len(encoded) - TS_BYTES


def encode_put(value: bytes) -> bytes:
    return PUT_FLAG + value


def decode_value(encoded: bytes) -> bytes | None:
    """The user value, or None for a tombstone."""
    if encoded == TOMBSTONE:
        return None
    if encoded[:1] != PUT_FLAG:
        raise MvccError(f"not an MVCC value: {encoded[:16]!r}")
    return encoded[1:]


def lower_bound(user_key: bytes) -> bytes:
    """First encoded key of any version of user_key or of any greater user key."""
    return memcomparable(user_key)


def upper_bound(user_key: bytes) -> bytes | None:
    """Exclusive encoded bound for user keys < user_key; None when user_key is b"" (unbounded)."""
    return memcomparable(user_key) if user_key else None
