"""backupmeta (protobuf backup.BackupMeta): built by br, read and checked by agents and br with
ONE rule set, so a backup the agent hands over is one the coordinator can plan from.

    data = meta.build(kind, cluster_id=..., files=..., ranges=..., end_version=ts).SerializeToString()
    backup = meta.parse(data, where="s3://b/p/backupmeta")   # MetaError: one line, names the problem
    meta.kind_of(backup), meta.ranges(backup), meta.files(backup)
"""
from __future__ import annotations

from google.protobuf.message import DecodeError

from br_common.backupmeta.kind import RULES, BackupKind, rules, sst_cf
from br_common.fleet.keyranges import contains
from br_common.fleet.messages import FileInfo, KeyRange
from br_common.kvproto import brpb_pb2, kvrpcpb_pb2

BR_VERSION_PREFIX = "br-fleet"
SHA256_BYTES = 32


class MetaError(ValueError):
    """The backupmeta cannot be restored faithfully; str() is one line for the operator."""


def build(kind: BackupKind, *, cluster_id: int, cluster_version: str, br_version: str, files: list[FileInfo],
          ranges: list[KeyRange], end_version: int, start_version: int = 0) -> brpb_pb2.BackupMeta:
    """backup_size is serialized last, so a truncated backupmeta shows as a size mismatch. The flags
    are BR's: a txn backup has is_txn_kv (and is_raw_kv false), API V1. raw_ranges record the
    backed-up range for both kinds (for a txn backup: raw user keys; BR leaves it empty because
    its txn backup always takes everything, and its readers ignore the field for txn backups)."""
    kind_rules = rules(kind)
    protos = [f.to_proto() for f in files]
    return brpb_pb2.BackupMeta(
        cluster_id=cluster_id, cluster_version=cluster_version, br_version=br_version, version=brpb_pb2.V1,
        files=protos, start_version=start_version, end_version=end_version, is_raw_kv=kind_rules.is_raw_kv,
        is_txn_kv=kind_rules.is_txn_kv, api_version=kvrpcpb_pb2.V1, mode=brpb_pb2.SCAN,
        raw_ranges=[brpb_pb2.RawRange(start_key=r.start, end_key=r.end, cf=kind_rules.request_cf) for r in ranges],
        backup_size=sum(f.size for f in protos))


def parse(data: bytes, where: str = "backupmeta") -> brpb_pb2.BackupMeta:
    backup = brpb_pb2.BackupMeta()
    try:
        backup.ParseFromString(data)
    except DecodeError:
        raise MetaError(f"{where} is not a backup.BackupMeta protobuf (truncated or another format)") from None
    check(backup, where)
    return backup


def check(backup: brpb_pb2.BackupMeta, where: str = "backupmeta") -> BackupKind:
    """Refuse what br-fleet cannot restore faithfully; MetaError names the first problem."""
    if backup.version != brpb_pb2.V1:
        raise MetaError(f"{where} is of meta version {backup.version}: br-fleet reads version 1 backupmeta")
    kind = kind_of(backup, where)
    if backup.api_version != kvrpcpb_pb2.V1:
        raise MetaError(f"{where}: the backup uses API version {kvrpcpb_pb2.APIVersion.Name(backup.api_version)}: "
                        "br-fleet restores API V1 backups only")
    if backup.end_version == 0 or backup.cluster_id == 0:
        raise MetaError(f"{where} has no backup ts or cluster id: it is not a complete backup")
    if backup.br_version.startswith(BR_VERSION_PREFIX) and backup.backup_size != sum(f.size for f in backup.files):
        raise MetaError(f"{where} is truncated or corrupt (its file sizes do not add up)")
    backed_up = ranges(backup)
    seen: set[str] = set()
    for f in backup.files:
        _check_file(f, kind, backed_up, seen, where)
    _check_disjoint(files(backup), where)
    return kind


def kind_of(backup: brpb_pb2.BackupMeta, where: str = "backupmeta") -> BackupKind:
    """By BR's flags: is_raw_kv (raw), is_txn_kv (`br backup txn`, ours and BR's). Neither is a
    TiDB table backup, whose files must be rewritten to new table ids: not ours to restore."""
    if backup.is_raw_kv and backup.is_txn_kv:
        raise MetaError(f"{where} says it is both a raw and a transactional backup: it is corrupt")
    for kind, kind_rules in RULES.items():
        if kind_rules.is_raw_kv == backup.is_raw_kv and kind_rules.is_txn_kv == backup.is_txn_kv:
            return kind
    raise MetaError(f"{where} holds a TiDB table backup (neither is_raw_kv nor is_txn_kv): br-fleet restores "
                    "raw and transactional (is_txn_kv) backups")


def ranges(backup: brpb_pb2.BackupMeta) -> list[KeyRange]:
    """The backed-up ranges (raw_ranges); a backupmeta without them covers the whole key space."""
    out = [KeyRange(start=r.start_key, end=r.end_key) for r in backup.raw_ranges]
    return sorted(out, key=lambda r: r.start) or [KeyRange()]


def files(backup: brpb_pb2.BackupMeta) -> list[FileInfo]:
    return [FileInfo.from_proto(f) for f in backup.files]


def _check_file(f: brpb_pb2.File, kind: BackupKind, backed_up: list[KeyRange], seen: set[str], where: str) -> None:
    name = f.name or "<unnamed>"
    if not f.name or f.name.startswith("/") or any(p in ("", ".", "..") for p in f.name.split("/")):
        raise MetaError(f"{where} lists an invalid file name {f.name!r}")
    if f.name in seen:
        raise MetaError(f"{where} lists file {name} twice")
    seen.add(f.name)
    if len(f.sha256) != SHA256_BYTES:
        raise MetaError(f"{where}: file {name} has no sha256: cannot check it before use")
    kind_rules = rules(kind)
    if f.cf not in kind_rules.file_cfs:
        raise MetaError(f"{where}: file {name} is of column family {f.cf!r}; a {kind_rules.label} backup holds "
                        + " or ".join(repr(cf) for cf in kind_rules.file_cfs if cf))
    if f.end_key and f.end_key <= f.start_key:
        raise MetaError(f"{where}: file {name} has an empty or inverted key range")
    rng = KeyRange(start=f.start_key, end=f.end_key)
    if not any(contains(r, rng) for r in backed_up):
        raise MetaError(f"{where}: file {name} {rng.label()} lies outside the backup's ranges")


def _check_disjoint(listed: list[FileInfo], where: str) -> None:
    """Files of one CF never overlap (a txn backup's write and default files of a range may)."""
    by_cf: dict[str, list[FileInfo]] = {}
    for f in listed:
        by_cf.setdefault(sst_cf(f.cf), []).append(f)
    for cf_files in by_cf.values():
        ordered = sorted(cf_files, key=lambda f: f.start_key)
        for prev, cur in zip(ordered, ordered[1:]):
            if not prev.end_key or cur.start_key < prev.end_key:
                raise MetaError(f"{where}: files {prev.name} and {cur.name} overlap")
