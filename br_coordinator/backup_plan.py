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
from br_common.fleet.keyranges import key_before_end, min_end
from br_common.fleet.messages import KeyRange
from br_common.kvproto import metapb_pb2
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
    """Group the (key-ordered) regions overlapping `within` into tasks. Works on bytes and makes
    one KeyRange per task, not per region: 1M regions plan in seconds (bench/planning.py)."""
    groups: list[list] = []  # [store_id, start, end, regions]
    bounds = _BoundsCache(kind_rules)
    for info in regions:
        start, end = bounds.of(info.region)
        start, end = max(start, within.start), min_end(end, within.end)
        if not key_before_end(start, end):
            continue
        leader = info.leader_store_id
        last = groups[-1] if groups else None
        if last is not None and last[0] == leader and leader != 0 and last[2] == start and last[3] < max_regions:
            last[2], last[3] = end, last[3] + 1
        else:
            groups.append([leader, start, end, 1])
    return [PlannedTask(store, KeyRange(start=start, end=end), count) for store, start, end, count in groups]


class _BoundsCache:
    """A region's bounds in the kind's key space; a region's start is its predecessor's end, so
    each encoded bound is mapped once (the mapping decodes memcomparable keys for txn)."""

    def __init__(self, kind_rules: KindRules) -> None:
        self._rules = kind_rules
        self._last: tuple[bytes, bytes] | None = None  # (engine end key, mapped)

    def of(self, region: metapb_pb2.Region) -> tuple[bytes, bytes]:
        if self._rules.is_raw_kv:
            return region.start_key, region.end_key
        last = self._last
        start = last[1] if last is not None and last[0] == region.start_key else self._map(region.start_key)
        end = self._map(region.end_key)
        self._last = (region.end_key, end)
        return start, end

    def _map(self, engine_key: bytes) -> bytes:
        return self._rules.bound_of(engine_key)


def plan_range(pd: PDClient, within: KeyRange, kind: BackupKind = BackupKind.RAW,
               max_regions: int = MAX_REGIONS_PER_TASK) -> list[PlannedTask]:
    """Resolve `within` through PD now (fresh leaders and boundaries) and plan it."""
    kind_rules = RULES[kind]
    return plan(pd.scan_regions(*kind_rules.pd_bounds(within.start, within.end)), within, max_regions, kind_rules)
