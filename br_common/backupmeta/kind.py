"""What a backup holds, and the request fields that follow from it.

Each kind fixes what the store is asked for (BackupRequest.is_raw_kv and cf, Download's
is_raw_kv), which column families its files may belong to, and the key space its ranges are in.
Task messages carry the kind and the start version (0 = full) so that no agent or coordinator
module spells them as literals.

Key spaces: a raw backup's ranges are the keys as stored, compared with PD's region bounds as
they are; a transactional backup's ranges are raw user keys (TiKV's BackupRequest and File keys
for txn backups), while regions hold their encodings (Key::from_raw), so region bounds are mapped
to raw keys (br_common.txn_keys) before a txn range is cut at them.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from br_common.kvproto import metapb_pb2
from br_common.txn_keys import engine_bound, raw_bounds, smallest_raw_at_or_after


class BackupKind(str, Enum):
    RAW = "raw"  # raw KV (API V1), column family default
    TXN = "txn"  # the transactional key space (what TiDB stores): write + default CFs at a ts


@dataclass(frozen=True)
class KindRules:
    label: str  # for messages: "raw KV"
    is_raw_kv: bool
    request_cf: str  # BackupRequest.cf: raw backups name their CF; TiKV ignores it for txn backups
    file_cfs: tuple[str, ...]  # the CFs a backup file of this kind may hold ("" = TiKV's default)
    # File.crc64xor/total_kvs/total_bytes can be recounted from the file alone (raw: its pairs; txn:
    # TiKV's rule, br_common.txn_files), so the agent checks them by reading the file
    files_recountable: bool

    @property
    def is_txn_kv(self) -> bool:
        return not self.is_raw_kv

    def region_bounds(self, region: metapb_pb2.Region) -> tuple[bytes, bytes]:
        """The region's [start, end) in this kind's key space (b"" end: unbounded)."""
        if self.is_raw_kv:
            return region.start_key, region.end_key
        lower, upper = raw_bounds(region)
        return lower, upper or b""

    def bound_of(self, engine_key: bytes) -> bytes:
        """One region bound (start or end; b"" stays b"") in this kind's key space."""
        return engine_key if self.is_raw_kv else smallest_raw_at_or_after(engine_key)

    def pd_bounds(self, start: bytes, end: bytes) -> tuple[bytes, bytes]:
        """A range of this kind's key space as PD compares it with region bounds."""
        if self.is_raw_kv:
            return start, end
        return engine_bound(start), engine_bound(end)


RULES: dict[BackupKind, KindRules] = {
    BackupKind.RAW: KindRules(label="raw KV", is_raw_kv=True, request_cf="default", file_cfs=("", "default"),
                               files_recountable=True),
    # TiKV counts each logical key once, in the default file if its value is there (not per pair)
    BackupKind.TXN: KindRules(label="transactional KV", is_raw_kv=False, request_cf="",
                               file_cfs=("default", "write"), files_recountable=True),
}


def rules(kind: BackupKind) -> KindRules:
    return RULES[kind]


def sst_cf(cf: str) -> str:
    """A file's CF as ImportSST wants it (SSTMeta.cf_name): TiKV's File.cf "" means default."""
    return cf or "default"
