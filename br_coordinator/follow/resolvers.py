"""Where a book's work lives now: the PD lookups behind a Resolve, answered with the book's actions.

The books stay pure; these are the only follow code that asks PD about regions.
"""
from __future__ import annotations

from dataclasses import dataclass

from br_common.backupmeta.kind import BackupKind, rules
from br_common.pd_client import PDClient, PDError
from br_coordinator import restore_plan as plan
from br_coordinator.backup_plan import plan_range
from br_coordinator.follow.backup_book import BackupBook
from br_coordinator.follow.book import Action, Resolve
from br_coordinator.follow.restore_book import RestoreBook


@dataclass
class BackupResolver:
    """A piece of the key space -> per-leader tasks over PD's current regions."""

    pd: PDClient
    book: BackupBook
    kind: BackupKind = BackupKind.RAW  # the key space the book's ranges are in

    def __call__(self, resolve: Resolve) -> list[Action]:
        try:
            tasks = plan_range(self.pd, self.book.range_of(resolve.work_id), self.kind)
        except PDError as exc:
            return self.book.unplaced(resolve.work_id, f"PD: {exc}")
        return self.book.placed(resolve.work_id, tasks)


@dataclass
class RestoreResolver:
    """A region's work after a region error: the same peers -> ingest on the new leader; else the
    pieces go to the regions that hold them now (downloaded again on every peer)."""

    pd: PDClient
    book: RestoreBook
    job_id: str
    kind: BackupKind = BackupKind.RAW  # the key space the pieces' ranges are in

    def __call__(self, resolve: Resolve) -> list[Action]:
        work, ingest_only = self.book.redo_of(resolve.work_id)
        try:
            if ingest_only:
                info = self.pd.region_by_id(work.region.id)
                if info is not None and info.leader is not None:
                    current = plan.region_ref(info)
                    if current.same_placement(work.region):
                        return self.book.reingest(resolve.work_id, current)
            kind_rules = rules(self.kind)
            regions = [info for p in work.pieces
                       for info in self.pd.scan_regions(*kind_rules.pd_bounds(p.range.start, p.range.end))]
        except PDError as exc:
            return self.book.unplaced(resolve.work_id, f"PD: {exc}")
        if any(info.leader is None for info in regions):
            return self.book.unplaced(resolve.work_id, "a region has no leader yet")
        unique = list({info.id: info for info in regions}.values())
        return self.book.replace(resolve.work_id, plan.reassign(work.pieces, unique, self.job_id, rules(self.kind)))
