"""What the agent reads from a store's SST files: their checksums, counted as TiKV counts them
(crc64xor/total_kvs/total_bytes over origin keys and values; the files hold data keys).

    sst_checksum(path, scratch_parent)           # a backup file, to check the store's numbers
    sst_checksum(path, scratch_parent, rng)      # the part of a file that one restore piece covers
    file_checksum(path, scratch_parent, kind, cf, rng)   # either, counted as the backup kind counts
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastcrc import crc64

from br_common.backupmeta.kind import BackupKind, rules
from br_common.checksum import Checksum
from br_common.data_keys import DATA_PREFIX
from br_common.fleet.messages import KeyRange
from br_common.sst_files import SstError, read_sst
from br_common.txn_files import txn_file_checksum

__all__ = ["SstError", "file_checksum", "sst_checksum"]

# Each read opens a scratch RocksDB over the file (a few MB without a block cache, see
# br_common.sst_files), and the checks are CPU-bound Python loops: more at once than this only
# grows the agent's memory with the tasks in flight (8 per store), not its speed.
SST_READS_AT_ONCE = 2
_read_slots = threading.BoundedSemaphore(SST_READS_AT_ONCE)


@contextmanager
def _read_pairs(path: Path, scratch_parent: Path) -> Iterator[Iterator[tuple[bytes, bytes]]]:
    """read_sst, at most SST_READS_AT_ONCE at a time in this agent."""
    with _read_slots, read_sst(path, scratch_parent) as pairs:
        yield pairs


def file_checksum(path: Path, scratch_parent: Path, kind: BackupKind, cf: str,
                  rng: KeyRange | None = None) -> Checksum:
    """A backup file's counters (or those of its part in rng), by its kind's rule: raw files count
    their pairs, txn files each logical key once (br_common.txn_files)."""
    if rules(kind).is_raw_kv:
        return sst_checksum(path, scratch_parent, rng)
    start, end = (rng.start, rng.end) if rng is not None else (b"", b"")
    try:
        with _read_pairs(path, scratch_parent) as pairs:
            return txn_file_checksum(pairs, cf, start, end)
    except ValueError as exc:
        raise SstError(f"SST {path.name}: {exc}") from None


def sst_checksum(path: Path, scratch_parent: Path, rng: KeyRange | None = None) -> Checksum:
    """One pass in plain Python with no call per pair but the crc (the agent checks every file of a
    backup with it: 2-3x faster than Checksum.add per pair)."""
    start, end = (rng.start, rng.end) if rng is not None else (b"", b"")
    prefix, skip = DATA_PREFIX, len(DATA_PREFIX)
    xz = crc64.xz
    crc = kvs = size = 0
    with _read_pairs(path, scratch_parent) as pairs:
        for stored, value in pairs:
            if not stored.startswith(prefix):
                raise SstError(f"SST {path.name}: {stored[:16].hex()} is not a data key (no {prefix!r} prefix)")
            key = stored[skip:]
            if key < start:
                continue
            if end and key >= end:
                break
            pair = key + value
            crc ^= xz(pair)
            kvs += 1
            size += len(pair)
    return Checksum(crc64xor=crc, total_kvs=kvs, total_bytes=size)
