"""What the agent reads from a store's SST files: their checksums, counted as TiKV counts them
(crc64xor/total_kvs/total_bytes over origin keys and values; the files hold data keys).

    sst_checksum(path, scratch_parent)           # a backup file, to check the store's numbers
    sst_checksum(path, scratch_parent, rng)      # the part of a file that one restore piece covers
"""
from __future__ import annotations

from pathlib import Path

from br_common.checksum import Checksum
from br_common.data_keys import origin_key
from br_common.fleet.messages import KeyRange
from br_common.sst_files import SstError, read_sst

__all__ = ["SstError", "sst_checksum"]


def sst_checksum(path: Path, scratch_parent: Path, rng: KeyRange | None = None) -> Checksum:
    checksum = Checksum()
    with read_sst(path, scratch_parent) as pairs:
        try:
            for stored, value in pairs:
                key = origin_key(stored)
                if rng is not None and key < rng.start:
                    continue
                if rng is not None and rng.end and key >= rng.end:
                    break
                checksum.add(key, value)
        except ValueError as exc:
            raise SstError(f"SST {path.name}: {exc}") from None
    return checksum
