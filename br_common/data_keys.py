"""TiKV's data keys (components/keys): the engine and the SST files TiKV writes and reads
(backup files, ImportSST Download input) hold every key as b"z" + key; origin_key undoes it.
"""
from __future__ import annotations

DATA_PREFIX = b"z"


def data_key(key: bytes) -> bytes:
    return DATA_PREFIX + key


def origin_key(key: bytes) -> bytes:
    if not key.startswith(DATA_PREFIX):
        raise ValueError(f"{key[:16].hex()} is not a data key (no {DATA_PREFIX!r} prefix)")
    return key[len(DATA_PREFIX):]
