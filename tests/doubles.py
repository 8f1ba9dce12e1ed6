"""Test doubles shared by the unit tests (one of each, not one per test file)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from br_common.kvproto import metapb_pb2
from br_common.pd_client import RegionInfo
from br_devcluster.store.cf_engine import CFS, CFEngine


def _overlaps(region: metapb_pb2.Region, start: bytes, end: bytes) -> bool:
    return (not end or region.start_key < end) and (not region.end_key or region.end_key > start)


class FakePD:
    """PD as br_common.pd_client.PDClient answers, over in-memory regions and stores (no gRPC).
    Tests change `regions` to play splits, leader moves and merges between calls."""

    def __init__(self, regions: Iterable[RegionInfo] = (), stores: Iterable[metapb_pb2.Store] = (),
                 cluster_id: int = 1, address: str = "10.0.1.11:2379", safe_point: int = 0) -> None:
        self.regions = list(regions)
        self.safe_point = safe_point
        self._stores = list(stores)
        self.cluster_id = cluster_id
        self.address = address

    @classmethod
    def from_bounds(cls, bounds: list[bytes], leaders: list[int], **kwargs: object) -> "FakePD":
        """Regions split at `bounds` (ids 1, 2, ...), led by the stores in `leaders`."""
        pd = cls(**kwargs)  # type: ignore[arg-type]
        pd.set_bounds(bounds, leaders)
        return pd

    def set_bounds(self, bounds: list[bytes], leaders: list[int]) -> None:
        edges = [b"", *bounds, b""]
        self.regions = [RegionInfo(metapb_pb2.Region(id=i + 1, start_key=edges[i], end_key=edges[i + 1],
                                                     peers=[metapb_pb2.Peer(store_id=s)]),
                                   metapb_pb2.Peer(store_id=s)) for i, s in enumerate(leaders)]

    def region(self, key: bytes) -> RegionInfo:
        return next(r for r in self.regions if _overlaps(r.region, key, key + b"\0"))

    def region_by_id(self, region_id: int) -> RegionInfo | None:
        return next((r for r in self.regions if r.id == region_id), None)

    def scan_regions(self, start: bytes = b"", end: bytes = b"") -> list[RegionInfo]:
        return [r for r in self.regions if _overlaps(r.region, start, end)]

    def gc_safe_point(self) -> int:
        return self.safe_point

    def stores(self) -> list[metapb_pb2.Store]:
        return self._stores

    def store(self, store_id: int) -> metapb_pb2.Store:
        """A listed store, else one at 10.0.0.<id>:20160."""
        listed = next((s for s in self._stores if s.id == store_id), None)
        return listed or metapb_pb2.Store(id=store_id, address=f"10.0.0.{store_id}:20160")


class MemoryCFs:
    """TiKV's default/lock/write column families as dicts: a CFReader for
    br_devcluster.store.txn_reader (iterate returns a snapshot list) plus apply() for a
    command's batch."""

    def __init__(self) -> None:
        self.data: dict[str, dict[bytes, bytes]] = {"default": {}, "lock": {}, "write": {}}

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self.data[cf].get(key)

    def iterate(self, cf: str, lower: bytes, upper: bytes | None,
                reverse: bool = False) -> list[tuple[bytes, bytes]]:
        keys = sorted(k for k in self.data[cf] if k >= lower and (upper is None or k < upper))
        return [(k, self.data[cf][k]) for k in (reversed(keys) if reverse else keys)]

    def apply(self, modifies: Iterable) -> None:
        for cf, key, value in modifies:
            if value is None:
                self.data[cf].pop(key, None)
            else:
                self.data[cf][key] = value

    def delete_ranges(self, ranges: Iterable) -> None:
        for cf, start, end in ranges:
            for key in [k for k in self.data[cf] if k >= start and (end is None or k < end)]:
                del self.data[cf][key]


class EngineCFs:
    """The same interface as MemoryCFs over a real CFEngine (RocksDB, data keys): each read takes
    a fresh snapshot, `data` reads every CF back; so the percolator tests run on both."""

    def __init__(self, path: Path) -> None:
        self.engine = CFEngine(path)

    def close(self) -> None:
        self.engine.close()

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self.engine.snapshot_cfs().get(cf, key)

    def iterate(self, cf: str, lower: bytes, upper: bytes | None,
                reverse: bool = False) -> list[tuple[bytes, bytes]]:
        return list(self.engine.snapshot_cfs().iterate(cf, lower, upper, reverse))

    def apply(self, modifies: Iterable) -> None:
        self.engine.apply(modifies)

    def delete_ranges(self, ranges: Iterable) -> None:
        self.engine.apply((), ranges)

    @property
    def data(self) -> dict[str, dict[bytes, bytes]]:
        snapshot = self.engine.snapshot_cfs()
        return {cf: dict(snapshot.iterate(cf, b"", None)) for cf in CFS}
