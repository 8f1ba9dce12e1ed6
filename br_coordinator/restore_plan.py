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
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from br_common.checksum import Checksum
from br_common.fleet.keyranges import contains, intersect
from br_common.fleet.messages import FileInfo, KeyRange
from br_common.import_files import JOB_TAG_BYTES
from br_common.fleet.restore_messages import (DownloadResult, FilePart, IngestResult, PeerRef, Piece, RegionRef,
                                              RegionWork, StagedPiece)
from br_common.pd_client import RegionInfo

_UUID_NAMESPACE = uuid.UUID("6f1b7c52-3b0e-4c51-9a57-0f6c9e0c2b11")  # fixed: uuids stay stable across runs


class PlanError(ValueError):
    """The backup or the target cannot be restored as asked; str() is one line for the operator."""


# --- key ranges (arithmetic in br_common.fleet.keyranges; end b"" = unbounded) ---------------
def region_range(region: RegionInfo) -> KeyRange:
    return KeyRange(start=region.region.start_key, end=region.region.end_key)


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


def split_keys(parts: Iterable[FilePart]) -> list[bytes]:
    """Every part boundary (b"" is no boundary): after splitting there, a part fills its regions."""
    keys = {k for p in parts for k in (p.range.start, p.range.end) if k}
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


def assign_regions(parts: Sequence[FilePart], regions: Sequence[RegionInfo], job_id: str) -> list[RegionWork]:
    """Cut every part at region boundaries; group the pieces by region (regions in key order)."""
    return _assign([(p.file, p.range, p.range) for p in parts], regions, job_id)


def reassign(pieces: Sequence[Piece], regions: Sequence[RegionInfo], job_id: str) -> list[RegionWork]:
    """Pieces whose region changed, onto the current regions (each keeps its part)."""
    return _assign([(p.file, p.range, p.part) for p in pieces], regions, job_id)


def _assign(items: Sequence[tuple[FileInfo, KeyRange, KeyRange]], regions: Sequence[RegionInfo],
            job_id: str) -> list[RegionWork]:
    ordered = sorted(regions, key=lambda r: r.region.start_key)
    works: dict[int, RegionWork] = {}
    for f, rng, part in items:
        for info, cut in _cover(f.name, rng, ordered):
            ref = region_ref(info)
            work = works.setdefault(ref.id, RegionWork(region=ref, pieces=[]))
            piece = Piece(uuid=piece_uuid(job_id, f.name, ref, cut), file=f, range=cut, part=part)
            works[ref.id] = work.model_copy(update={"pieces": [*work.pieces, piece]})
    return list(works.values())


def _cover(name: str, rng: KeyRange, regions: Sequence[RegionInfo]) -> list[tuple[RegionInfo, KeyRange]]:
    """(region, piece) pairs tiling rng exactly; PlanError on a hole in PD's region list."""
    out = []
    cursor = rng.start
    for info in regions:
        piece = intersect(rng, region_range(info))
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


# --- bookkeeping of the follow loop -------------------------------------------------------
@dataclass(frozen=True)
class SendDownload:
    work_id: int
    store_id: int
    work: RegionWork


@dataclass(frozen=True)
class SendIngest:
    work_id: int
    store_id: int
    work: RegionWork
    ssts: list[StagedPiece]


@dataclass(frozen=True)
class Redo:
    """Re-resolve the work's region through PD: ingest on a new leader, or download again."""

    work_id: int
    work: RegionWork
    reason: str
    ingest_only: bool  # the staged copies may still fit (only the leader moved)


@dataclass(frozen=True)
class Fail:
    reason: str


@dataclass(frozen=True)
class PartDone:
    file: FileInfo
    range: KeyRange
    checksum: Checksum


Action = SendDownload | SendIngest | Redo | Fail | PartDone


@dataclass
class _WorkState:
    work: RegionWork
    tries: int
    waiting: set[int]
    staged: dict[int, list[StagedPiece]] = field(default_factory=dict)
    phase: str = "download"  # download -> ingest -> done | superseded
    last_error: str = ""  # why the last try failed: the give-up line says it (e.g. a full staging disk)


class RestoreBook:
    """What is staged where, what is ingested, which file parts are complete (pure state machine).

    The coordinator feeds it task results and carries out the actions it returns; results of a
    superseded work (after a Redo) are the coordinator's to drop before they get here.
    """

    def __init__(self, parts: Iterable[FilePart], max_tries: int = 8) -> None:
        self.max_tries = max_tries
        self._files: dict[tuple[str, bytes], FileInfo] = {}
        self._outstanding: dict[tuple[str, bytes], set[bytes]] = {}
        self._sums: dict[tuple[str, bytes], Checksum] = {}
        self._parts: dict[tuple[str, bytes], KeyRange] = {}
        for p in parts:
            key = (p.file.name, p.range.start)
            self._files[key], self._parts[key] = p.file, p.range
            self._outstanding[key], self._sums[key] = set(), Checksum()
        self._works: dict[int, _WorkState] = {}
        self._next_id = 1

    @property
    def done(self) -> bool:
        return not self._works_open() and all(not s for s in self._outstanding.values())

    def _works_open(self) -> bool:
        return any(s.phase in ("download", "ingest") for s in self._works.values())

    def add(self, work: RegionWork, tries: int = 0, last_error: str = "") -> list[Action]:
        if tries >= self.max_tries:
            return [Fail(_gave_up(work, tries, last_error))]
        work_id, self._next_id = self._next_id, self._next_id + 1
        self._works[work_id] = _WorkState(work, tries, set(download_stores(work)), last_error=last_error)
        for piece in work.pieces:
            self._outstanding[_part_key(piece)].add(piece.uuid)
        return [SendDownload(work_id, s, work) for s in download_stores(work)]

    def work(self, work_id: int) -> RegionWork:
        return self._works[work_id].work

    def tries(self, work_id: int) -> int:
        return self._works[work_id].tries

    def is_current(self, work_id: int) -> bool:
        state = self._works.get(work_id)
        return state is not None and state.phase in ("download", "ingest")

    def unconsumed(self) -> dict[int, set[bytes]]:
        """Per store, the uuids staged (or being staged) there that no finished work ingested: what
        a failed, superseded or interrupted work left in the stores' import directories."""
        ingested = {p.uuid for s in self._works.values() if s.phase == "done" for p in s.work.pieces}
        out: dict[int, set[bytes]] = {}
        for state in self._works.values():
            if state.phase == "done":
                continue
            left = {p.uuid for p in state.work.pieces} - ingested
            for store_id in download_stores(state.work) if left else ():
                out.setdefault(store_id, set()).update(left)
        return out

    def downloaded(self, work_id: int, store_id: int, result: DownloadResult) -> list[Action]:
        state = self._works[work_id]
        if state.phase != "download" or store_id not in state.waiting:
            return []  # a duplicate (resent task) result
        if result.error_kind == "integrity":
            return [Fail(result.error)]
        if result.error:
            return self._redo(work_id, f"download on store {store_id}: {result.error}", ingest_only=False)
        state.waiting.discard(store_id)
        state.staged[store_id] = list(result.staged)
        return [] if state.waiting else self._to_ingest(work_id, state)

    def _to_ingest(self, work_id: int, state: _WorkState) -> list[Action]:
        leader = ingest_store(state.work)
        ssts = [s for s in state.staged.get(leader, []) if not s.is_empty]
        if not ssts:  # nothing in these pieces: done without an ingest
            return self._finish(work_id, state)
        state.phase = "ingest"
        return [SendIngest(work_id, leader, state.work, ssts)]

    def ingested(self, work_id: int, result: IngestResult) -> list[Action]:
        state = self._works[work_id]
        if state.phase != "ingest":
            return []
        if result.error:
            return self._redo(work_id, f"ingest on store {result.store_id}: {result.error}",
                              ingest_only=result.error_kind == "region")
        return self._finish(work_id, state)

    def task_failed(self, work_id: int, reason: str) -> list[Action]:
        """A task raised or was lost: download again (its staged copies are not to be trusted)."""
        if not self.is_current(work_id):
            return []
        return self._redo(work_id, reason, ingest_only=False)

    def bump(self, work_id: int) -> bool:
        """Count a failed attempt at re-resolving; False once the work is out of attempts."""
        state = self._works[work_id]
        state.tries += 1
        return state.tries < self.max_tries

    def reingest(self, work_id: int, region: RegionRef) -> list[Action]:
        """After a Redo with ingest_only: the region kept its peers and epoch, the leader moved."""
        state = self._works[work_id]
        state.work = state.work.model_copy(update={"region": region})
        state.tries += 1
        if state.tries >= self.max_tries:
            return [Fail(_gave_up(state.work, state.tries, state.last_error))]
        return self._to_ingest(work_id, state)

    def replace(self, work_id: int, works: Iterable[RegionWork]) -> list[Action]:
        """After a Redo: the pieces of work_id go to the given (re-resolved) works."""
        state = self._works[work_id]
        state.phase = "superseded"
        for piece in state.work.pieces:
            self._outstanding[_part_key(piece)].discard(piece.uuid)
        actions: list[Action] = []
        for work in works:
            actions += self.add(work, state.tries + 1, state.last_error)
        return actions

    def _redo(self, work_id: int, reason: str, ingest_only: bool) -> list[Action]:
        state = self._works[work_id]
        state.phase, state.last_error = "redo", reason
        return [Redo(work_id, state.work, reason, ingest_only)]

    def _finish(self, work_id: int, state: _WorkState) -> list[Action]:
        state.phase = "done"
        staged = {s.uuid: s for pieces in state.staged.values() for s in pieces}
        actions: list[Action] = []
        for piece in state.work.pieces:
            key = _part_key(piece)
            self._sums[key] = self._sums[key].merge(_piece_checksum(piece, staged.get(piece.uuid)))
            self._outstanding[key].discard(piece.uuid)
            if not self._outstanding[key]:
                actions.append(PartDone(self._files[key], self._parts[key], self._sums[key]))
        return actions


def _gave_up(work: RegionWork, tries: int, last_error: str) -> str:
    return f"region {work.region.id} {_label(work)}: gave up after {tries} attempts" + \
        (f"; the last: {last_error}" if last_error else "")


def _part_key(piece: Piece) -> tuple[str, bytes]:
    return piece.file.name, piece.part.start


def _piece_checksum(piece: Piece, staged: StagedPiece | None) -> Checksum:
    if piece.whole_file:
        return file_checksum(piece.file)
    if staged is None or staged.checksum is None:
        return Checksum()  # nothing of the file in the piece; a missing count shows up in verification
    return staged.checksum


def _label(work: RegionWork) -> str:
    names = sorted({p.file.name for p in work.pieces})
    return f"(files {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
