"""BackupBook: which pieces of the key space are backed up, placed, or waiting (pure).

A piece is placed through PD (the resolver plans it into per-leader tasks, backup_plan); each task
becomes a piece of its own, sent to its leader's queue. A success records its covered ranges as
checkpoints and puts its uncovered ones (region errors) back to be placed again; a failure puts
the whole piece back with backoff; after `max_attempts` the job fails naming the range and the last
error. A lost agent's piece is placed again at once without spending an attempt.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from br_common.fleet import messages as m
from br_common.fleet.jobs import RangeRecord
from br_coordinator.backup_plan import PlannedTask
from br_common.fleet.task_errors import STOPS_THE_JOB
from br_coordinator.follow.book import Action, Book, Checkpoint, Fail, Progress, Resolve, Send, stopping

log = logging.getLogger(__name__)

LANE = "backup"


@dataclass
class _Piece:
    range: m.KeyRange
    attempts: int = 0
    last_error: str = ""
    task: PlannedTask | None = None  # set while sent
    bytes_seen: int = 0


@dataclass
class BackupTotals:
    done_regions: int = 0
    bytes_done: int = 0
    files_done: int = 0


class BackupBook(Book):
    def __init__(self, todo: list[m.KeyRange], max_attempts: int = 10, totals: BackupTotals | None = None) -> None:
        self.max_attempts = max_attempts
        self.totals = totals or BackupTotals()
        self._pieces: dict[int, _Piece] = {}
        self._next_id = 1
        self._todo = todo

    # --- Book ------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return not self._pieces

    def start(self) -> list[Action]:
        return [Resolve(self._add(_Piece(r))) for r in self._todo]

    def succeeded(self, send: Send, payload: object) -> list[Action]:
        piece = self._pieces.pop(send.work_id)
        try:
            result = m.parse(m.BackupRangeResult, payload)
        except m.MessageError as exc:
            return self._retry(piece, str(exc))
        if result.skipped:
            return self._retry(piece, f"agent skipped the task: {result.skipped}")
        if stopping(result):
            return stopping(result)
        actions: list[Action] = []
        for covered in result.covered:
            actions.append(Checkpoint(RangeRecord(range=covered.range, files=covered.files)))
            self.totals.done_regions += 1
            self.totals.files_done += len(covered.files)
            self.totals.bytes_done += sum(f.size for f in covered.files)
        for gap in result.uncovered:
            if gap.error_kind in STOPS_THE_JOB:
                return [Fail(f"backup of range {gap.range.label()} on store {result.store_id}: {gap.reason}")]
            log.info("range %s uncovered on store %d: %s; re-resolving", gap.range.label(), result.store_id,
                     gap.reason)
            actions += self._retry(_Piece(gap.range, piece.attempts, piece.last_error), gap.reason)
        return actions

    def failed(self, send: Send, error: str) -> list[Action]:
        piece = self._pieces.pop(send.work_id)
        log.warning("backup of %s on store %s failed: %s", piece.range.label(), send.store_id, error)
        return self._retry(piece, error)

    def lost(self, send: Send, reason: str) -> list[Action]:
        """Not the range's fault: placed again now, without spending an attempt."""
        piece = self._pieces.pop(send.work_id)
        return [Resolve(self._add(_Piece(piece.range, piece.attempts, reason)))]

    def running(self, send: Send, info: dict) -> None:
        piece = self._pieces.get(send.work_id)
        if piece is not None:
            piece.bytes_seen = int(info.get("bytes_uploaded", piece.bytes_seen) or 0)

    def progress(self) -> Progress:
        """Regions done of regions known (a piece not yet placed counts as one)."""
        pending = sum(p.task.regions if p.task else 1 for p in self._pieces.values())
        nbytes = self.totals.bytes_done + sum(p.bytes_seen for p in self._pieces.values())
        return Progress(self.totals.done_regions, self.totals.done_regions + pending, nbytes)

    # --- placement (the resolver's answers) ----------------------------------------------------------
    def range_of(self, work_id: int) -> m.KeyRange:
        return self._pieces[work_id].range

    def placed(self, work_id: int, tasks: list[PlannedTask]) -> list[Action]:
        """PD's answer for a piece: one piece per task, sent to its leader."""
        piece = self._pieces.pop(work_id)
        actions: list[Action] = []
        for task in tasks:
            part = _Piece(task.range, piece.attempts, piece.last_error)
            if task.store_id == 0:
                actions += self._retry(part, f"no leader for the region at {task.range.label()}")
            else:
                part.task = task
                actions.append(Send(self._add(part), task.store_id, LANE, task))
        return actions

    def unplaced(self, work_id: int, reason: str) -> list[Action]:
        """PD could not place the piece (down, no answer): later, spending an attempt."""
        return self._retry(self._pieces.pop(work_id), reason)

    # --- helpers ---------------------------------------------------------------------------------------
    def _add(self, piece: _Piece) -> int:
        work_id, self._next_id = self._next_id, self._next_id + 1
        self._pieces[work_id] = piece
        return work_id

    def _retry(self, piece: _Piece, reason: str) -> list[Action]:
        attempts = piece.attempts + 1
        if attempts >= self.max_attempts:
            return [Fail(f"backup of range {piece.range.label()} failed after {attempts} attempts; "
                         f"last error: {reason}")]
        return [Resolve(self._add(_Piece(piece.range, attempts, reason)), reason, backoff=attempts)]
