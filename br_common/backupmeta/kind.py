"""What a backup holds, and the request fields that follow from it.

Each kind fixes what the store is asked for (BackupRequest.is_raw_kv and cf, Download's
is_raw_kv) and which column families its files may belong to. Task messages carry the kind and
the start version (0 = full) so that no agent or coordinator module spells them as literals.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class BackupKind(str, Enum):
    RAW = "raw"  # raw KV (API V1), column family default


@dataclass(frozen=True)
class KindRules:
    label: str  # for messages: "raw KV"
    is_raw_kv: bool
    request_cf: str  # BackupRequest.cf: raw backups name their CF; TiKV ignores it for txn backups
    file_cfs: tuple[str, ...]  # the CFs a backup file of this kind may hold ("" = TiKV's default)
    # File.crc64xor/total_kvs/total_bytes count exactly the file's pairs (origin key, value), so the
    # agent can check them by reading the file (TiKV's txn files count decoded entries instead)
    checksum_of_file_pairs: bool


RULES: dict[BackupKind, KindRules] = {
    BackupKind.RAW: KindRules(label="raw KV", is_raw_kv=True, request_cf="default", file_cfs=("", "default"),
                               checksum_of_file_pairs=True),
}


def rules(kind: BackupKind) -> KindRules:
    return RULES[kind]


def sst_cf(cf: str) -> str:
    """A file's CF as ImportSST wants it (SSTMeta.cf_name): TiKV's File.cf "" means default."""
    return cf or "default"
