"""Cap glibc's malloc arenas before the agent starts its threads.

glibc gives each thread that allocates under contention an arena of its own (up to 8 per core)
and keeps freed memory in it: an agent's 8 task threads, their upload and check threads and
s3transfer's pool, each briefly holding tens of MB (an SST read through a scratch RocksDB,
hashing), grew its resident memory to 370 MB on a 1 GB backup here, 430 MB at 4 GB. Two arenas
(what MALLOC_ARENA_MAX=2 does) measured 233 MB at 1 GB, at the same speed
(bench/backup_stages.py). An explicit MALLOC_ARENA_MAX in the environment wins.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc malloc.h
ARENAS = 2


def cap_malloc_arenas(arenas: int = ARENAS) -> bool:
    """mallopt(M_ARENA_MAX, arenas) unless MALLOC_ARENA_MAX is set; False where it is not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        done = bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
    log.debug("malloc arenas capped at %d: %s", arenas, done)
    return done
