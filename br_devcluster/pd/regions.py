"""The region map: regions sorted by start key, located by key or id, split at keys (pure logic)."""
from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable

from br_devcluster.pd.models import Region

Allocator = Callable[[int], int]  # count -> first of count consecutive fresh ids


class SplitError(ValueError):
    """The key cannot split anything (empty, already a boundary, or no region holds it)."""


class RegionMap:
    def __init__(self, regions: Iterable[Region] = ()) -> None:
        ordered = sorted(regions, key=lambda r: r.start_key)
        self._starts = [r.start_key for r in ordered]
        self._regions = ordered
        self._by_id = {r.id: r for r in ordered}

    def __len__(self) -> int:
        return len(self._regions)

    def all(self) -> list[Region]:
        return list(self._regions)

    def by_id(self, region_id: int) -> Region | None:
        return self._by_id.get(region_id)

    def locate(self, key: bytes) -> Region | None:
        index = bisect.bisect_right(self._starts, key) - 1
        if index < 0 or not self._regions[index].contains(key):
            return None
        return self._regions[index]

    def previous(self, key: bytes) -> Region | None:
        """The region just before the one holding key (PD's GetPrevRegionByKey)."""
        index = bisect.bisect_right(self._starts, key) - 1
        if index < 1 or not self._regions[index].contains(key):
            return None
        return self._regions[index - 1]

    def is_boundary(self, key: bytes) -> bool:
        index = bisect.bisect_left(self._starts, key)
        return index < len(self._starts) and self._starts[index] == key

    def scan(self, start_key: bytes, end_key: bytes = b"", limit: int = 0) -> list[Region]:
        """Regions overlapping [start_key, end_key) in key order; end b"" = unbounded, limit 0 = all."""
        index = max(0, bisect.bisect_right(self._starts, start_key) - 1)
        found: list[Region] = []
        for region in itertools.islice(self._regions, index, None):  # no copy of the tail
            if end_key and region.start_key >= end_key or limit and len(found) >= limit:
                break
            if region.end_key == b"" or region.end_key > start_key:
                found.append(region)
        return found

    def split(self, key: bytes, alloc: Allocator) -> tuple[Region, Region]:
        """Split the region holding key at key: left keeps its id, right gets fresh region/peer ids."""
        if key == b"":
            raise SplitError("split key must not be empty")
        if self.is_boundary(key):
            raise SplitError(f"key {key.hex()} is already a region boundary")
        region = self.locate(key)
        if region is None:
            raise SplitError(f"no region holds key {key.hex()}")
        first = alloc(1 + len(region.peers))
        left = region.model_copy(update={"end_key": key, "version": region.version + 1})
        right = region.model_copy(update={
            "id": first, "start_key": key, "version": region.version + 1,
            "peers": [p.model_copy(update={"id": first + 1 + i}) for i, p in enumerate(region.peers)]})
        self.replace(left)
        self._insert(right)
        return left, right

    def replace(self, region: Region) -> None:
        """Swap in a new version of an existing region (same id and start key)."""
        index = bisect.bisect_left(self._starts, region.start_key)
        if index >= len(self._regions) or self._regions[index].id != region.id:
            raise KeyError(f"region {region.id} is not in the map at its start key")
        self._regions[index] = region
        self._by_id[region.id] = region

    def _insert(self, region: Region) -> None:
        index = bisect.bisect_left(self._starts, region.start_key)
        self._starts.insert(index, region.start_key)
        self._regions.insert(index, region)
        self._by_id[region.id] = region
