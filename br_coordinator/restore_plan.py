"""Restore planning (pure: no I/O): backupmeta -> checked files -> split keys -> per-region work.

    backup = backupmeta.parse(data)                   # br_common.backupmeta: checked by one rule set
    ranges = restore_ranges(backupmeta.ranges(backup), wanted)
    parts = select_parts(backupmeta.files(backup), ranges)  # the part of each file to restore
    pd.split_regions(split_keys(parts))               # every part starts/ends on a region boundary
    works = assign_regions(parts, regions, job_id)    # one RegionWork per target region
    downloads = download_stores(work)                 # every peer downloads ...
    ingest_store(work)                                # ... then the leader ingests

A part normally lies inside one region after the split; if PD split it again meanwhile it is
cut into several pieces (Download cuts the file to a piece's range, as TiKV does; the agent
counts the piece's checksum, see br_agent.restore_tasks). Keys are bytes; an empty end key means "unbounded".
Ranges are in the backup kind's key space: a txn backup's are raw user keys, split at their
encodings and cut at the raw keys regions hold (br_common.backupmeta.kind), so the write and
default files of one range always land in the same region and are ingested together.
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence

from br_common.backupmeta.kind import RULES, BackupKind, KindRules
from br_common.checksum import Checksum
from br_common.fleet.keyranges import contains, intersect
from br_common.fleet.messages import FileInfo, KeyRange
from br_common.import_files import JOB_TAG_BYTES
from br_common.fleet.restore_messages import FilePart, PeerRef, Piece, RegionRef, RegionWork
from br_common.pd_client import RegionInfo

_UUID_NAMESPACE = uuid.UUID("6f1b7c52-3b0e-4c51-9a57-0f6c9e0c2b11")  # fixed: uuids stay stable across runs
RAW_RULES = RULES[BackupKind.RAW]


class PlanError(ValueError):
    """The backup or the target cannot be restored as asked; str() is one line for the operator."""


# --- key ranges (arithmetic in br_common.fleet.keyranges; end b"" = unbounded) ---------------
def region_range(region: RegionInfo, kind_rules: KindRules = RAW_RULES) -> KeyRange:
    start, end = kind_rules.region_bounds(region.region)
    return KeyRange(start=start, end=end)


# --- what to restore ----------------------------------------------------------------------
def restore_ranges(backed_up: Sequence[KeyRange], wanted: KeyRange | None) -> list[KeyRange]:
    """What to restore: the backed-up ranges, cut to `wanted` (restore raw --start/--end)."""
    if wanted is None:
        return list(backed_up)
    if wanted.end and wanted.end <= wanted.start:
        raise PlanError(f"--end must be greater than --start, got {wanted.label()}")
    out = [r for r in (intersect(b, wanted) for b in backed_up) if r is not None]
    if not out:
        raise PlanError(f"the range {wanted.label()} is outside the backup's ranges "
                        + ", ".join(b.label() for b in backed_up))
    return out


# --- files -> parts -> split keys ------------------------------------------------------------
def file_range(f: FileInfo) -> KeyRange:
    return KeyRange(start=f.start_key, end=f.end_key)


def file_checksum(f: FileInfo) -> Checksum:
    return Checksum(crc64xor=f.crc64xor, total_kvs=f.total_kvs, total_bytes=f.total_bytes)


def select_parts(files: Iterable[FileInfo], ranges: Sequence[KeyRange]) -> list[FilePart]:
    """The part of each file inside the restore ranges (a file lies in one backed-up range)."""
    parts = []
    for f in files:
        for r in ranges:
            cut = intersect(file_range(f), r)
            if cut is not None:
                parts.append(FilePart(file=f, range=cut))
    return sorted(parts, key=lambda p: p.range.start)


def split_keys(parts: Iterable[FilePart], kind_rules: KindRules = RAW_RULES) -> list[bytes]:
    """Every part boundary (b"" is no boundary), as PD splits (a txn key at its encoding): after
    splitting there, a part fills its regions."""
    keys = {k for p in parts for k in kind_rules.pd_bounds(p.range.start, p.range.end) if k}
    return sorted(keys)


# --- parts -> regions ----------------------------------------------------------------------
def region_ref(info: RegionInfo) -> RegionRef:
    r = info.region
    peers = [PeerRef(id=p.id, store_id=p.store_id) for p in r.peers]
    leader = PeerRef(id=info.leader.id, store_id=info.leader.store_id) if info.leader is not None else None
    return RegionRef(id=r.id, start_key=r.start_key, end_key=r.end_key, conf_ver=r.region_epoch.conf_ver,
                     version=r.region_epoch.version, peers=peers, leader=leader)


def piece_uuid(job_id: str, file_name: str, region: RegionRef, rng: KeyRange) -> bytes:
    """Deterministic: a resent task stages the same file, a new region epoch a new one. The first
    bytes are the job's tag, so that whatever a killed run staged under an epoch that changed since
    can still be found and removed once the job completes (import_files.staged_ssts_of_job)."""
    name = f"{job_id}/{file_name}/{region.id}/{region.conf_ver}.{region.version}/{rng.start.hex()}"
    tag = job_tag(job_id)
    return tag + uuid.uuid5(_UUID_NAMESPACE, name).bytes[len(tag):]


def job_tag(job_id: str) -> bytes:
    return hashlib.sha256(job_id.encode()).digest()[:JOB_TAG_BYTES]


def assign_regions(parts: Sequence[FilePart], regions: Sequence[RegionInfo], job_id: str,
                   kind_rules: KindRules = RAW_RULES) -> list[RegionWork]:
    """Cut every part at region boundaries; group the pieces by region (regions in key order)."""
    return _assign([(p.file, p.range, p.range) for p in parts], regions, job_id, kind_rules)


def reassign(pieces: Sequence[Piece], regions: Sequence[RegionInfo], job_id: str,
             kind_rules: KindRules = RAW_RULES) -> list[RegionWork]:
    """Pieces whose region changed, onto the current regions (each keeps its part)."""
    return _assign([(p.file, p.range, p.part) for p in pieces], regions, job_id, kind_rules)


def _assign(items: Sequence[tuple[FileInfo, KeyRange, KeyRange]], regions: Sequence[RegionInfo],
            job_id: str, kind_rules: KindRules) -> list[RegionWork]:
    ordered = sorted(regions, key=lambda r: r.region.start_key)
    works: dict[int, RegionWork] = {}
    for f, rng, part in items:
        for info, cut in _cover(f.name, rng, ordered, kind_rules):
            ref = region_ref(info)
            work = works.setdefault(ref.id, RegionWork(region=ref, pieces=[]))
            piece = Piece(uuid=piece_uuid(job_id, f.name, ref, cut), file=f, range=cut, part=part)
            works[ref.id] = work.model_copy(update={"pieces": [*work.pieces, piece]})
    return list(works.values())


def _cover(name: str, rng: KeyRange, regions: Sequence[RegionInfo],
           kind_rules: KindRules) -> list[tuple[RegionInfo, KeyRange]]:
    """(region, piece) pairs tiling rng exactly; PlanError on a hole in PD's region list."""
    out = []
    cursor = rng.start
    for info in regions:
        piece = intersect(rng, region_range(info, kind_rules))
        if piece is None:
            continue
        if piece.start != cursor:
            break
        out.append((info, piece))
        cursor = piece.end
        if not cursor or (rng.end and cursor >= rng.end):
            return out
    raise PlanError(f"no region holds key {cursor!r} of file {name}: PD's region list has a hole")


def download_stores(work: RegionWork) -> list[int]:
    """Every peer's store downloads (the leader ingests, and each follower ingests its own copy)."""
    return sorted({p.store_id for p in work.region.peers})


def ingest_store(work: RegionWork) -> int:
    if work.region.leader is None:
        raise PlanError(f"region {work.region.id} has no leader")
    return work.region.leader.store_id


# --- verification ----------------------------------------------------------------------------
def expected_checksums(ranges: Sequence[KeyRange], restored: Iterable[tuple[KeyRange, Checksum]]
                       ) -> list[tuple[KeyRange, Checksum]]:
    """Per restore range, the XOR/sums of what its file parts hold."""
    totals = [Checksum() for _ in ranges]
    for part_range, checksum in restored:
        for i, r in enumerate(ranges):
            if contains(r, part_range):
                totals[i] = totals[i].merge(checksum)
                break
    return list(zip(ranges, totals))
