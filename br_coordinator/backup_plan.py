"""Regions -> per-store range tasks: contiguous regions led by one store, at most N per task.

A task is sent to `br.<cluster>.store.<leader store id>`; the store backs up the regions it leads
in the range and reports the others as region errors, so a plan that went stale (leader moved,
region split) costs a retry, never correctness. Ranges are in the backup kind's key space (a txn
backup's are raw user keys: region bounds are mapped to them, see br_common.backupmeta.kind).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from br_common.backupmeta.kind import RULES, BackupKind, KindRules
from br_common.fleet.keyranges import intersect
from br_common.fleet.messages import KeyRange
from br_common.pd_client import PDClient, RegionInfo

MAX_REGIONS_PER_TASK = 8


@dataclass(frozen=True)
class PlannedTask:
    store_id: int  # 0: the region has no leader right now (retry later)
    range: KeyRange
    regions: int

    def label(self) -> str:
        return f"store={self.store_id} {self.range.label()}"


def plan(regions: Iterable[RegionInfo], within: KeyRange, max_regions: int = MAX_REGIONS_PER_TASK,
         kind_rules: KindRules = RULES[BackupKind.RAW]) -> list[PlannedTask]:
    """Group the (key-ordered) regions overlapping `within` into tasks."""
    tasks: list[PlannedTask] = []
    for info in regions:
        start, end = kind_rules.region_bounds(info.region)
        piece = intersect(KeyRange(start=start, end=end), within)
        if piece is None:
            continue
        last = tasks[-1] if tasks else None
        if last is not None and last.store_id == info.leader_store_id and last.store_id != 0 \
                and last.range.end == piece.start and last.regions < max_regions:
            tasks[-1] = PlannedTask(last.store_id, KeyRange(start=last.range.start, end=piece.end), last.regions + 1)
        else:
            tasks.append(PlannedTask(info.leader_store_id, piece, 1))
    return tasks


def plan_range(pd: PDClient, within: KeyRange, kind: BackupKind = BackupKind.RAW,
               max_regions: int = MAX_REGIONS_PER_TASK) -> list[PlannedTask]:
    """Resolve `within` through PD now (fresh leaders and boundaries) and plan it."""
    kind_rules = RULES[kind]
    return plan(pd.scan_regions(*kind_rules.pd_bounds(within.start, within.end)), within, max_regions, kind_rules)
