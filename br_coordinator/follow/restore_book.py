"""RestoreBook: what is staged where, what is ingested, which file parts are complete (pure).

Per region work (restore_plan.assign_regions): every peer's store downloads its pieces, then the
leader ingests them all together; a region error, failure or lost agent re-places the work through
PD (the resolver: follow.resolvers.RestoreResolver) after a backoff, and after `max_tries` the job
fails. A file part is complete when every piece of it is ingested: a checkpoint then records it
with the checksum of what was restored.

No ingest starts before every file the restore uses was downloaded and checked (size and sha256,
on the agents): ingests are held until the last download succeeds, so a damaged object stops the
restore with nothing written. (The staged SSTs become the restored data at ingest, so holding
them costs no more disk than the restore needs anyway.) A failure after that says exactly how
much was ingested.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from br_common.checksum import Checksum
from br_common.fleet import messages as m
from br_common.fleet.jobs import RangeRecord
from br_common.fleet.messages import FileInfo, KeyRange
from br_common.fleet.restore_messages import DownloadResult, FilePart, IngestResult, Piece, RegionRef, RegionWork, \
    StagedPiece
from br_coordinator.follow.book import Action, Book, Checkpoint, Fail, Progress, Resolve, Send, stopping
from br_coordinator.restore_plan import download_stores, file_checksum, ingest_store

DOWNLOAD, INGEST = "download", "ingest"


@dataclass(frozen=True)
class Ingest:
    """The body of an ingest Send: the region's work and what its leader staged."""

    work: RegionWork
    ssts: list[StagedPiece]


def _gated(method: Callable[..., list[Action]]) -> Callable[..., list[Action]]:
    """The actions of an outermost call pass the ingest gate (RestoreBook._after)."""
    @functools.wraps(method)
    def gated(self: RestoreBook, *args: object, **kwargs: object) -> list[Action]:
        self._depth += 1
        try:
            actions = method(self, *args, **kwargs)
        finally:
            self._depth -= 1
        return self._after(actions) if self._depth == 0 else actions
    return gated


@dataclass
class _WorkState:
    work: RegionWork
    tries: int
    waiting: set[int]
    staged: dict[int, list[StagedPiece]] = field(default_factory=dict)
    phase: str = DOWNLOAD  # download -> ingest -> done | redo -> superseded (or back to ingest)
    ingest_only: bool = False  # while redo: the staged copies may still fit (only the leader moved)
    last_error: str = ""  # why the last try failed: the give-up line says it (e.g. a full staging disk)


class RestoreBook(Book):
    def __init__(self, parts: Iterable[FilePart], works: Iterable[RegionWork] = (), max_tries: int = 8) -> None:
        self.max_tries = max_tries
        self._files: dict[tuple[str, bytes], FileInfo] = {}
        self._outstanding: dict[tuple[str, bytes], set[bytes]] = {}
        self._sums: dict[tuple[str, bytes], Checksum] = {}
        self._parts: dict[tuple[str, bytes], KeyRange] = {}
        # parts of one range (a txn backup's write and default files) are checkpointed together:
        # the job records one RangeRecord per range
        self._range_parts: dict[tuple[bytes, bytes], set[tuple[str, bytes]]] = {}
        self._range_files: dict[tuple[bytes, bytes], list[FileInfo]] = {}
        for p in parts:
            key = (p.file.name, p.range.start)
            self._files[key], self._parts[key] = p.file, p.range
            self._outstanding[key], self._sums[key] = set(), Checksum()
            self._range_parts.setdefault((p.range.start, p.range.end), set()).add(key)
        self._works: dict[int, _WorkState] = {}
        self._next_id = 1
        self._initial = list(works)
        self.regions = len(self._initial)
        self.parts_done = 0
        self.part_bytes = 0
        self.bytes_downloaded = 0
        self.regions_ingested = 0
        self._ingests_open = False  # once every download succeeded
        self._held: list[Send] = []
        self._depth = 0

    # --- Book --------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return not self._works_open() and all(not s for s in self._outstanding.values())

    @_gated
    def start(self) -> list[Action]:
        return [a for work in self._initial for a in self.add(work)]

    @_gated
    def succeeded(self, send: Send, payload: object) -> list[Action]:
        try:
            result = m.parse(DownloadResult if send.lane == DOWNLOAD else IngestResult, payload)
        except m.MessageError as exc:
            return self.task_failed(send.work_id, str(exc))
        if result.skipped:
            return self.task_failed(send.work_id, f"agent skipped the task: {result.skipped}")
        if stopping(result):
            return stopping(result)
        if isinstance(result, DownloadResult):
            self.bytes_downloaded += result.bytes_downloaded
            return self.downloaded(send.work_id, send.store_id or 0, result)
        return self.ingested(send.work_id, result)

    @_gated
    def failed(self, send: Send, error: str) -> list[Action]:
        return self.task_failed(send.work_id, f"{send.lane} on store {send.store_id}: {error}")

    @_gated
    def lost(self, send: Send, reason: str) -> list[Action]:
        return self.task_failed(send.work_id, f"agent of store {send.store_id} lost")

    def progress(self) -> Progress:
        return Progress(self.parts_done, len(self._parts), self.part_bytes)

    # --- the work's life -----------------------------------------------------------------------------
    @_gated
    def add(self, work: RegionWork, tries: int = 0, last_error: str = "") -> list[Action]:
        if tries >= self.max_tries:
            return [Fail(_gave_up(work, tries, last_error))]
        work_id, self._next_id = self._next_id, self._next_id + 1
        self._works[work_id] = _WorkState(work, tries, set(download_stores(work)), last_error=last_error)
        for piece in work.pieces:
            self._outstanding[_part_key(piece)].add(piece.uuid)
        return [Send(work_id, s, DOWNLOAD, work) for s in download_stores(work)]

    def work(self, work_id: int) -> RegionWork:
        return self._works[work_id].work

    def redo_of(self, work_id: int) -> tuple[RegionWork, bool]:
        """The work a Resolve is for, and whether only its ingest needs redoing."""
        state = self._works[work_id]
        return state.work, state.ingest_only

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

    @_gated
    def downloaded(self, work_id: int, store_id: int, result: DownloadResult) -> list[Action]:
        state = self._works[work_id]
        if state.phase != DOWNLOAD or store_id not in state.waiting:
            return []  # a duplicate (resent task) result
        if stopping(result):
            return stopping(result)
        if result.error:
            return self._redo(work_id, f"download on store {store_id}: {result.error}", ingest_only=False)
        state.waiting.discard(store_id)
        state.staged[store_id] = list(result.staged)
        return [] if state.waiting else self._to_ingest(work_id, state)

    @_gated
    def ingested(self, work_id: int, result: IngestResult) -> list[Action]:
        state = self._works[work_id]
        if state.phase != INGEST:
            return []
        if result.error:
            return self._redo(work_id, f"ingest on store {result.store_id}: {result.error}",
                              ingest_only=result.error_kind == "region")
        self.regions_ingested += 1
        return self._finish(work_id, state)

    @_gated
    def task_failed(self, work_id: int, reason: str) -> list[Action]:
        """A task raised or was lost: download again (its staged copies are not to be trusted)."""
        state = self._works.get(work_id)
        if state is None or state.phase not in (DOWNLOAD, INGEST):
            return []
        return self._redo(work_id, reason, ingest_only=False)

    # --- the resolver's answers -------------------------------------------------------------------------
    @_gated
    def unplaced(self, work_id: int, reason: str) -> list[Action]:
        """Re-placing failed (PD down, no leader yet): try again later, counting an attempt."""
        state = self._works[work_id]
        state.tries += 1
        if state.tries >= self.max_tries:
            return [Fail(f"region {state.work.region.id}: gave up re-resolving it: {reason}")]
        return [Resolve(work_id, reason, backoff=state.tries + 1)]

    @_gated
    def reingest(self, work_id: int, region: RegionRef) -> list[Action]:
        """The region kept its peers and epoch, only the leader moved: ingest on the new one."""
        state = self._works[work_id]
        state.work = state.work.model_copy(update={"region": region})
        state.tries += 1
        if state.tries >= self.max_tries:
            return [Fail(_gave_up(state.work, state.tries, state.last_error))]
        return self._to_ingest(work_id, state)

    @_gated
    def replace(self, work_id: int, works: Iterable[RegionWork]) -> list[Action]:
        """The pieces of work_id go to the given (re-resolved) works."""
        state = self._works[work_id]
        state.phase = "superseded"
        for piece in state.work.pieces:
            self._outstanding[_part_key(piece)].discard(piece.uuid)
        works = list(works)
        self.regions += len(works) - 1
        actions: list[Action] = []
        for work in works:
            actions += self.add(work, state.tries + 1, state.last_error)
        return actions

    # --- the ingest gate ------------------------------------------------------------------------------
    def _after(self, actions: list[Action]) -> list[Action]:
        """Ingests wait until every download succeeded; a failure says how much was ingested."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, Send) and action.lane == INGEST and not self._ingests_open:
                self._held.append(action)
            elif isinstance(action, Fail):
                out.append(Fail(action.reason + self._written()))
            else:
                out.append(action)
        if not self._ingests_open and not any(s.phase in (DOWNLOAD, "redo") for s in self._works.values()):
            self._ingests_open = True
            out += self._held
            self._held = []
        return out

    def _written(self) -> str:
        if not self.regions_ingested:
            return "; nothing was ingested into the cluster"
        regions = "1 region was" if self.regions_ingested == 1 else f"{self.regions_ingested} regions were"
        return (f"; {regions} already ingested ({self.parts_done} of {len(self._parts)} file parts complete): "
                "they stay, and a rerun of the same command restores the rest")

    # --- helpers ----------------------------------------------------------------------------------------
    def _works_open(self) -> bool:
        return any(s.phase in (DOWNLOAD, INGEST, "redo") for s in self._works.values())

    def _to_ingest(self, work_id: int, state: _WorkState) -> list[Action]:
        leader = ingest_store(state.work)
        ssts = [s for s in state.staged.get(leader, []) if not s.is_empty]
        if not ssts:  # nothing in these pieces: done without an ingest
            return self._finish(work_id, state)
        state.phase = INGEST
        return [Send(work_id, leader, INGEST, Ingest(state.work, ssts))]

    def _redo(self, work_id: int, reason: str, ingest_only: bool) -> list[Action]:
        state = self._works[work_id]
        state.phase, state.ingest_only, state.last_error = "redo", ingest_only, reason
        return [Resolve(work_id, reason, backoff=state.tries + 1)]

    def _finish(self, work_id: int, state: _WorkState) -> list[Action]:
        state.phase = "done"
        staged = {s.uuid: s for pieces in state.staged.values() for s in pieces}
        actions: list[Action] = []
        for piece in state.work.pieces:
            key = _part_key(piece)
            self._sums[key] = self._sums[key].merge(_piece_checksum(piece, staged.get(piece.uuid)))
            self._outstanding[key].discard(piece.uuid)
            if not self._outstanding[key]:
                actions += self._part_done(key)
        return actions

    def _part_done(self, key: tuple[str, bytes]) -> list[Action]:
        """Once every part of its range is done, the checkpoint: the range, and its files each with
        the checksum of what was restored."""
        file, checksum = self._files[key], self._sums[key]
        self.parts_done += 1
        self.part_bytes += file.size
        restored = file.model_copy(update={"crc64xor": checksum.crc64xor, "total_kvs": checksum.total_kvs,
                                           "total_bytes": checksum.total_bytes})
        rng = self._parts[key]
        done = self._range_files.setdefault((rng.start, rng.end), [])
        done.append(restored)
        if len(done) < len(self._range_parts[(rng.start, rng.end)]):
            return []
        return [Checkpoint(RangeRecord(range=rng, files=sorted(done, key=lambda f: f.name)))]


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
